"""Pin per-image rate and PSNR of the shipped image presets on a few Kodak images.

    PYTHONPATH=src python scripts/pin_kodak_rd.py            # writes results/image/kodak/pinned.json

``results/image/kodak/*.json`` hold means over all 24 images only; this table holds per-image values
(bytes from the file ``compress`` returned, PSNR-RGB of what ``decompress`` returned, as
``wavelatent evaluate`` computes them) for every quality of every image preset on a cheap subset,
so that ``tests/test_shipped.py::test_rd_pinned`` can check them in seconds (PSNR within 0.05 dB,
bytes within 1 %). Rerun it when shipped weights change on purpose.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "results" / "image" / "kodak" / "pinned.json"
KODAK = ROOT.parent / "shared" / "data" / "images" / "kodak"
IMAGES = ("kodim05.png", "kodim23.png")
COMMAND = "PYTHONPATH=src python scripts/pin_kodak_rd.py"


def image_presets() -> list[str]:
    from wavelatent.registry import get_config, list_presets
    from wavelatent.weights import has_shipped_weights

    return [p for p in list_presets() if has_shipped_weights(p) and get_config(p).modality == "image"
            and not p.startswith("test-")]


def measure(preset: str, path: Path) -> list[dict]:
    """Per quality: bytes, bpp and PSNR-RGB of ``preset`` on the image at ``path`` (gray presets: its luma)."""
    import numpy as np
    from PIL import Image

    import wavelatent as wl
    from wavelatent.evaluate.metrics import psnr

    codec = wl.load_codec(preset)
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB" if codec.config.channels == 3 else "L"))
    rows = []
    for quality in range(1, codec.config.qualities + 1):
        data = wl.compress(image, codec, quality)
        rows.append({"quality": quality, "bytes": len(data), "bpp": 8 * len(data) / (image.shape[0] * image.shape[1]),
                     "psnr": psnr(image, wl.decompress(data, codec))})
    return rows


def provenance() -> dict:
    import torch

    import wavelatent as wl

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", None
    return {"git_commit": commit, "src_dirty": dirty, "machine": platform.machine(), "processor": platform.processor(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "wavelatent": wl.__version__}


def main(argv: list[str] | None = None) -> int:
    import torch

    import wavelatent as wl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kodak", type=Path, default=KODAK)
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = {"command": COMMAND, "images": list(IMAGES), "provenance": provenance(), "presets": {}}
    for preset in image_presets():
        codec = wl.load_codec(preset)
        table["presets"][preset] = {"version": codec.config.version, "weights_sha256": codec.weights_sha256,
                                    "images": {name: measure(preset, args.kodak / name) for name in IMAGES}}
        print(f"{preset}: done", file=sys.stderr)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    os.replace(tmp, args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
