"""Regenerate the golden containers and their manifest: ``python tests/golden/make_golden.py``.

Goldens pin the bytes that ``compress`` writes and the pixels that ``decompress`` returns for one
fixed input (``input.png``, ``smooth_image(64, 96)`` from ``tests/conftest.py``), for the test preset
(weights ``tests/data/test-image.safetensors``) and every preset that ships weights, at every
quality. ``tests/test_reliability.py`` checks them. Rerun this script, and bump the preset's
``version`` in ``registry.py``, whenever shipped weights change on purpose (the bytes a preset
writes are then different, and files written before need the old weights to decode).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEST_WEIGHTS = ROOT / "tests" / "data" / "test-image.safetensors"
INPUT = HERE / "input.png"
MANIFEST = HERE / "manifest.json"
INPUT_SIZE = (64, 96)


def md5_pixels(arr) -> str:
    """md5 of a uint8 image's shape and bytes."""
    return hashlib.md5(f"{tuple(arr.shape)}".encode() + arr.tobytes()).hexdigest()


def targets() -> list[tuple[str, str]]:
    """(preset, weights) pairs: the test fixture, then every preset with shipped weights."""
    from wavelatent.registry import get_config, list_presets
    from wavelatent.weights import has_shipped_weights

    out = [("test-image", str(TEST_WEIGHTS.relative_to(ROOT)))]
    out += [(name, "shipped") for name in list_presets()
            if has_shipped_weights(name) and name != "test-image" and get_config(name).modality == "image"]
    return out


def load(weights: str, preset: str):
    import wavelatent as wl

    return wl.load_codec(preset if weights == "shipped" else ROOT / weights)


def read_input():
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(INPUT).convert("RGB"))


def main() -> int:
    import numpy as np
    import torch
    from PIL import Image

    import wavelatent as wl

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from tests.conftest import smooth_image

    image = smooth_image(*INPUT_SIZE)
    if not INPUT.exists() or not np.array_equal(read_input(), image):
        Image.fromarray(image).save(INPUT)
    image = read_input()
    for old in HERE.glob("*.wlt"):
        old.unlink()
    entries = []
    for preset, weights in targets():
        codec = load(weights, preset)
        cfg = codec.config
        for quality in range(1, cfg.qualities + 1):
            data = wl.compress(image if cfg.channels == 3 else image[:, :, 0], codec, quality)  # gray presets: channel 0
            name = f"{preset}-q{quality}.wlt"
            (HERE / name).write_bytes(data)
            entries.append({
                "preset": preset,
                "preset_version": cfg.version,
                "weights": weights,
                "weights_sha256": codec.weights_sha256,
                "quality": quality,
                "file": name,
                "md5_wlt": hashlib.md5(data).hexdigest(),
                "md5_decoded": md5_pixels(wl.decompress(data, codec)),
                "wavelatent_version": wl.__version__,
            })
            print(f"{name}: {len(data)} bytes", file=sys.stderr)
    manifest = {"input": INPUT.name, "input_size": list(INPUT_SIZE), "md5_input": md5_pixels(image), "goldens": entries}
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {MANIFEST} ({len(entries)} goldens)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
