"""Regenerate every golden file and the manifest, from the repository root:

    PYTHONPATH=src python tests/golden/make_golden.py

Run it whenever a preset's weights change on purpose (and bump that preset's ``version`` in
``registry.py``: files written before need the old weights to decode); ``tests/test_golden.py``
fails with this command in its message when the shipped weights no longer match the manifest.
``--sources`` also cuts the source signals again from ``../shared/data`` (they are committed, so
regeneration needs nothing but the package). See ``golden.py`` for what each file is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import golden as g  # noqa: E402


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def make_sources(data: Path) -> None:
    import numpy as np
    import soundfile as sf
    from PIL import Image

    with Image.open(data / "images" / "kodak" / "kodim23.png") as im:
        atomic_write(HERE / g.IMAGE_SOURCE, g.png_bytes(np.asarray(im.convert("RGB"))[200:275, 300:400]))
    speech, rate = sf.read(data / "audio" / "fsdd" / "7_jackson_32.wav", dtype="int16")
    assert rate == 8000
    atomic_write(HERE / g.SPEECH_SOURCE, g.npy_bytes(speech[:4000]))
    music, rate = sf.read(data / "audio" / "music-cc" / "hyde_acoustically_driven_instrumental.mp3",
                          dtype="int16", start=60 * 44100, frames=22050, always_2d=True)
    assert rate == 44100 and music.shape == (22050, 2)
    atomic_write(HERE / g.MUSIC_SOURCE, g.npy_bytes(music))


def targets() -> list[str]:
    """Every preset that ships weights (the tiny test presets included)."""
    from wavelatent.registry import list_presets
    from wavelatent.weights import has_shipped_weights

    return [name for name in list_presets() if has_shipped_weights(name)]


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    import wavelatent as wl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", action="store_true", help="cut the source signals again from --data")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.sources:
        make_sources(args.data)
    for old in [*HERE.glob("*.wlt"), *HERE.glob("*.symbols.npy"), *HERE.glob("*.decoded.*")]:
        old.unlink()
    entries = []
    for preset in targets():
        codec = wl.load_codec(preset)
        cfg = codec.config
        source, signal, rate = g.source_for(preset)
        for quality in g.qualities(cfg):
            data = g.compress(codec, signal, rate, quality)
            symbols = g.stream_symbols(data, codec)
            out = g.decoded(codec, data)
            stem = f"{preset}-q{quality}"
            decoded_name = f"{stem}.decoded.png" if out.dtype == np.uint8 else f"{stem}.decoded.npy"
            atomic_write(HERE / f"{stem}.wlt", data)
            atomic_write(HERE / f"{stem}.symbols.npy", g.npy_bytes(symbols))
            atomic_write(HERE / decoded_name, g.png_bytes(out) if out.dtype == np.uint8 else g.npy_bytes(out))
            entries.append({
                "preset": preset,
                "preset_version": cfg.version,
                "weights_sha256": codec.weights_sha256,
                "quality": quality,
                "source": source,
                "file": f"{stem}.wlt",
                "file_sha256": g.sha256(data),
                "symbols": f"{stem}.symbols.npy",
                "decoded": decoded_name,
                "nonzero_fraction": round(float(np.count_nonzero(symbols)) / symbols.size, 4),
            })
            print(f"{stem}: {len(data)} bytes, {entries[-1]['nonzero_fraction']:.1%} nonzero symbols", file=sys.stderr)
    manifest = {
        "regenerate": g.REGENERATE,
        "wavelatent_version": wl.__version__,
        "torch_version": torch.__version__,
        "sources": {name: g.file_sha256(HERE / name) for name in (g.IMAGE_SOURCE, g.SPEECH_SOURCE, g.MUSIC_SOURCE)},
        "goldens": entries,
    }
    atomic_write(g.MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    print(f"wrote {g.MANIFEST} ({len(entries)} goldens)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
