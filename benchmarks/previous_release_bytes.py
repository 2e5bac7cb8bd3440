"""Bytes of the files the previous release (git 8fb0355: per-channel tables for 16x, gray and audio,
the checkerboard model for 4x, the longer header) writes for the sets of ``entropy_coding.py``.

Run from a checkout of that release, with this file copied in (its API is the same for these calls):

    git worktree add /tmp/old 8fb0355 && cp benchmarks/previous_release_bytes.py /tmp/old/
    cd /tmp/old && PYTHONPATH=src python previous_release_bytes.py > OUT.json

Writes JSON to stdout: total bytes per preset and set.
"""
import json
from pathlib import Path

import torch

import wavelatent as wl
from wavelatent.audio import compress_audio
from wavelatent.data import list_images, load_images
from wavelatent.data.audio import list_audio, read_clip

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DATA = Path("/work/shared/data") if not DATA.is_dir() else DATA
HELD_MUSIC = ("sweet-waltz", "Vibe_Ace", "Drum-bass")
out = {"release": "8fb0355", "images": {}, "audio": {}}
kodak = list_images(DATA / "images" / "kodak")
held = list_images(DATA / "images" / "train")[::5]
for preset in ("image-rgb-16x", "image-rgb-4x", "image-gray-16x"):
    codec = wl.load_codec(preset)
    for name, paths in (("kodak", kodak), ("held-out photos", held)):
        ims = load_images(paths, codec.config.channels)
        total = sum(len(wl.compress(im if codec.config.channels == 3 else im[:, :, 0], codec)) for im in ims)
        pixels = sum(im.shape[0] * im.shape[1] for im in ims)
        out["images"][f"{preset}/{name}"] = {"bytes": total, "bpp": 8 * total / pixels}
music = [p for p in list_audio(DATA / "audio" / "music") if any(h in p.name for h in HELD_MUSIC)]
music += list_audio(DATA / "audio" / "music-cc")
fsdd = [p for p in list_audio(DATA / "audio" / "fsdd") if int(p.stem.split("_")[2]) < 5]
for preset, files, seconds in (("audio-stereo-5x", music, 20.0), ("audio-stereo-20x", music, 20.0),
                               ("audio-mono-2x", fsdd, None)):
    codec = wl.load_codec(preset)
    rate = 44100 if codec.config.channels == 2 else 8000
    total = 0
    for path in files:
        x = read_clip(path, rate, codec.config.channels)
        if seconds is not None:
            n = int(seconds * 44100)
            start = max(0, (len(x) - n) // 2)
            x = x[start : start + n]
        total += len(compress_audio(x, rate, codec))
    out["audio"][preset] = {"bytes": total, "files": len(files)}
print(json.dumps(out, indent=1))
