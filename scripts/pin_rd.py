"""Pin per-file rate and quality of every shipped preset (images and audio), for the tests.

    PYTHONPATH=src python scripts/pin_rd.py     # writes results/image/kodak/pinned.json, results/audio/pinned.json

``results/image/kodak/*.json`` hold means over all 24 images only; the image table holds per-image
values (bytes from the file ``compress`` returned, PSNR-RGB of what ``decompress`` returned, as
``wavelatent evaluate`` computes them) for every quality of every image preset on two Kodak images;
the audio table the same (bytes, waveform SNR) on the middle 5 s of a held-out file per audio preset.
``tests/test_shipped.py::test_rd_pinned`` and ``tests/test_audio.py::test_shipped_audio_quality``
check them in seconds (PSNR/SNR within 0.05 dB, bytes within 1 %) and name this command when the
weights no longer match. Rerun it when shipped weights change on purpose.
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
AUDIO_OUTPUT = ROOT / "results" / "audio" / "pinned.json"
DATA = ROOT.parent / "shared" / "data"
IMAGES = ("kodim05.png", "kodim23.png")
# held-out material (never trained on) per audio preset, relative to DATA/audio; the middle 5 s are coded
HELD_OUT = {"audio-mono-2x": "fsdd/7_jackson_3.wav",
            "audio-stereo-5x": "music/admiralbob77_-_Choice_-_Drum-bass.hq.ogg",
            "audio-stereo-20x": "music/admiralbob77_-_Choice_-_Drum-bass.hq.ogg"}
COMMAND = "PYTHONPATH=src python scripts/pin_rd.py"


def image_presets() -> list[str]:
    from wavelatent.registry import get_config, list_presets
    from wavelatent.weights import has_shipped_weights

    return [p for p in list_presets() if has_shipped_weights(p) and get_config(p).modality == "image"]


def held_out_excerpt(path: Path):
    """The middle 5 s of an audio file: (float32 samples [frames, channels], rate)."""
    from wavelatent.io.audio import read_audio

    x, info = read_audio(path)
    start = max(0, (len(x) - 5 * info.sample_rate) // 2)
    return x[start : start + 5 * info.sample_rate], info.sample_rate


def measure_audio(preset: str, path: Path) -> list[dict]:
    """Per quality: bytes, kbps and waveform SNR of ``preset`` on the middle 5 s of ``path``."""
    import numpy as np

    import wavelatent as wl
    from wavelatent.audio import compress_audio, decompress_audio

    x, rate = held_out_excerpt(path)
    codec = wl.load_codec(preset)
    ref = x.astype(np.float64)
    rows = []
    for quality in range(1, codec.config.qualities + 1):
        data = compress_audio(x, rate, codec, quality)
        y, _ = decompress_audio(data, codec, noise_fill=False)  # waveform SNR of the MSE output
        snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - y.astype(np.float64)) ** 2))
        rows.append({"quality": quality, "bytes": len(data), "kbps": 8 * len(data) / (len(x) / rate) / 1000,
                     "snr": float(snr)})
    return rows


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
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = {"command": COMMAND, "images": list(IMAGES), "provenance": provenance(), "presets": {}}
    for preset in image_presets():
        codec = wl.load_codec(preset)
        table["presets"][preset] = {"version": codec.config.version, "weights_sha256": codec.weights_sha256,
                                    "images": {name: measure(preset, args.data / "images" / "kodak" / name)
                                               for name in IMAGES}}
        print(f"{preset}: done", file=sys.stderr)
    write(OUTPUT, table)
    audio = {"command": COMMAND, "excerpt": "middle 5 s", "provenance": table["provenance"], "presets": {}}
    for preset, name in HELD_OUT.items():
        codec = wl.load_codec(preset)
        audio["presets"][preset] = {"version": codec.config.version, "weights_sha256": codec.weights_sha256,
                                    "file": name, "rows": measure_audio(preset, args.data / "audio" / name)}
        print(f"{preset}: done", file=sys.stderr)
    write(AUDIO_OUTPUT, audio)
    return 0


def write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
