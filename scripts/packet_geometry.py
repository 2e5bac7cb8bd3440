"""Packet geometry study (issue 18, item 1): the ideal linear ceiling of a stereo wavelet-packet codec
at J = 6, 7 and 8 levels, for 5x and 20x fewer values.

    PYTHONPATH=src python scripts/packet_geometry.py               # writes results/audio/geometry.json
    PYTHONPATH=src python scripts/packet_geometry.py --more-data   # writes results/audio/geometry-more-data.json

For each level count J, a stereo signal ``[2, L]`` maps (the project's own periodized bior4.4
packet analysis, :func:`wavelatent.transforms.wavelets.analysis_1d`) to ``D = 2 * 2**J`` coefficient
channels at ``L / 2**J`` positions. The ideal linear codec keeps ``K = round(D / ratio)`` dimensions:
the top-``K`` eigenvectors of the coefficient vectors' second-moment matrix (PCA without
centring; float64, no quantization). The coefficients are projected onto them, synthesized back
(the packet transform is biorthogonal, so the error is measured on the signal, not on the
coefficients) and scored as waveform SNR (dB, both channels).

Two ceilings per file:

* ``oracle``: PCA fitted on that very excerpt (an upper bound for any linear encoder);
* ``transfer``: PCA fitted on the training music (the 11 ``audio/music`` files the shipped stereo
  presets were trained on), applied to the file: what a fixed linear encoder can reach.

Files: the training music (whole files) and music not used in training: the three held-out
``audio/music`` files (waltz, Vibe Ace, drum-and-bass) and the 11 ``audio/music-cc`` files (middle
30 s of each). Mono files are coded as L = R, other rates resampled to 44.1 kHz. WaLLoC's own J = 8
stereo choice (108 and 27 latent channels) is measured beside ``round(512 / ratio)``.

``--more-data`` asks whether more training music would lift the fixed encoder's ceiling: the
``transfer`` PCA is fitted on the 11 training files plus the 9 ``music-cc`` songs that the held-out
music table (``results/audio/music/``) does not use, and scored on that table's 5 files. Both modes
report ``held_out_music_table_*``: the mean over those 5 files, comparable between the two runs,
and ``reduction_sweep``: the transfer ceiling on those files at J = 6 for fewer kept dimensions
(5x down to 1.5x): what reduction a fixed linear encoder would need for a given SNR.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "audio"
OUTPUT = ROOT / "results" / "audio" / "geometry.json"
HELD_OUT = ("147793__setuniman__sweet-waltz-0i-22mi.hq.ogg", "Kevin_MacLeod_-_Vibe_Ace.hq.ogg",
            "admiralbob77_-_Choice_-_Drum-bass.hq.ogg")
MUSIC_TABLE_CC = ("unwrittenstories_its_simple.mp3", "maddirtmonkey_electronic_happy_song.mp3")
"""The two music-cc songs of the held-out music table (scripts/regenerate_figures.sh audio)."""
RATE = 44100
LEVELS = (6, 7, 8)
RATIOS = (5, 20)
SWEEP_K = (26, 32, 43, 52, 64, 86)  # J = 6 (128 packet channels): 4.9x, 4x, 3x, 2.5x, 2x, 1.5x
WALLOC_J8 = {5: 108, 20: 27}  # WaLLoC's stereo codecs at J=8: latent channels per stereo pair
COMMAND = "PYTHONPATH=src python scripts/packet_geometry.py"


def load(path: Path, seconds: float | None) -> np.ndarray:
    """float64 stereo ``[2, L]`` at 44.1 kHz (mono as L = R), the middle ``seconds`` if given."""
    from wavelatent.io.audio import read_audio, resample

    x, info = read_audio(path)
    if info.sample_rate != RATE:
        x = resample(x, info.sample_rate, RATE)
    x = np.repeat(x[:, :1], 2, axis=1) if x.shape[1] == 1 else x[:, :2]
    if seconds is not None:
        n = int(seconds * RATE)
        start = max(0, (len(x) - n) // 2)
        x = x[start : start + n]
    return np.ascontiguousarray(x.T, dtype=np.float64)


def packets(x: np.ndarray, levels: int) -> np.ndarray:
    """``[2, L]`` -> coefficients ``[D, M]`` (L cropped to a multiple of ``2**levels``)."""
    import torch

    from wavelatent.transforms.wavelets import analysis_1d

    s = 2**levels
    n = (x.shape[1] // s) * s
    with torch.inference_mode():
        return analysis_1d(torch.from_numpy(x[None, :, :n]), levels)[0].numpy()


def synthesize(coeffs: np.ndarray, levels: int) -> np.ndarray:
    import torch

    from wavelatent.transforms.wavelets import synthesis_1d

    with torch.inference_mode():
        return synthesis_1d(torch.from_numpy(coeffs[None]), levels)[0].numpy()


def basis(moment: np.ndarray) -> np.ndarray:
    """Eigenvectors ``[D, D]`` of a second-moment matrix, largest eigenvalue first."""
    w, v = np.linalg.eigh(moment)
    return v[:, np.argsort(w)[::-1]]


def ceiling_snr(x: np.ndarray, c: np.ndarray, vecs: np.ndarray, k: int, levels: int) -> float:
    """Waveform SNR (dB) of ``x [2, L]`` rebuilt from its coefficients ``c [D, M]`` projected on ``vecs[:, :k]``."""
    v = vecs[:, :k]
    x_hat = synthesize(v @ (v.T @ c), levels)
    ref = x[:, : x_hat.shape[1]]
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - x_hat) ** 2), 1e-300)))


def dims(levels: int, ratio: int) -> list[int]:
    D = 2 * 2**levels
    out = [round(D / ratio)]
    if levels == 8 and WALLOC_J8[ratio] not in out:
        out.append(WALLOC_J8[ratio])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", type=Path, default=None,
                   help=f"JSON to write (default {OUTPUT.name}, or geometry-more-data.json with --more-data)")
    p.add_argument("--more-data", action="store_true",
                   help="fit the transfer PCA on the training music plus 9 music-cc songs; score the music table's 5 files")
    p.add_argument("--seconds", type=float, default=30.0, help="excerpt of each held-out file (middle)")
    p.add_argument("--train-seconds", type=float, default=None, help="excerpt of each training file (default: whole)")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "scripts"))
    from provenance import provenance

    t0 = time.time()
    music = sorted((DATA / "music").glob("*.ogg"))
    train = [f for f in music if f.name not in HELD_OUT]
    held = [DATA / "music" / n for n in HELD_OUT] + sorted((DATA / "music-cc").glob("*.mp3"))
    table = set(HELD_OUT) | set(MUSIC_TABLE_CC)
    if a.more_data:
        train += [f for f in held if f.name not in table]
        held = [f for f in held if f.name in table]
    output = a.output or (OUTPUT.with_name("geometry-more-data.json") if a.more_data else OUTPUT)
    train_x = {f.name: load(f, a.train_seconds) for f in train}
    held_x = {f.name: load(f, a.seconds) for f in held}
    groups = {"train": train_x, "held_out": held_x}
    rows: list[dict] = []
    summary: dict = {}
    for levels in LEVELS:
        coeffs = {g: {n: packets(x, levels) for n, x in xs.items()} for g, xs in groups.items()}
        D = 2 * 2**levels
        moment = sum(c @ c.T for c in coeffs["train"].values())
        train_vecs = basis(moment)
        oracle = {g: {n: basis(c @ c.T) for n, c in cs.items()} for g, cs in coeffs.items()}  # once per file
        for ratio in RATIOS:
            for k in dims(levels, ratio):
                key = f"J{levels}_K{k}"
                summary[key] = {"levels": levels, "packet_channels": D, "latent_channels": k, "ratio": D / k,
                                "target_ratio": ratio}
                for g, xs in groups.items():
                    for mode in ("oracle", "transfer"):
                        vals = []
                        for n, x in xs.items():
                            c = coeffs[g][n]
                            vecs = oracle[g][n] if mode == "oracle" else train_vecs
                            snr = ceiling_snr(x, c, vecs, k, levels)
                            vals.append(snr)
                            rows.append({"file": n, "group": g, "levels": levels, "latent_channels": k,
                                         "ratio": D / k, "pca": mode, "snr_db": snr})
                        summary[key][f"{g}_{mode}_mean_snr_db"] = float(np.mean(vals))
                        if g == "held_out":
                            three = [r["snr_db"] for r in rows[-len(vals):] if r["file"] in HELD_OUT]
                            summary[key][f"held_out_music3_{mode}_mean_snr_db"] = float(np.mean(three))
                            five = [r["snr_db"] for r in rows[-len(vals):] if r["file"] in table]
                            summary[key][f"held_out_music_table_{mode}_mean_snr_db"] = float(np.mean(five))
                print(key, {k2: round(v, 2) for k2, v in summary[key].items() if k2.endswith("snr_db")}, flush=True)
    coeffs6 = {n: packets(x, 6) for n, x in train_x.items()}
    vecs6 = basis(sum(c @ c.T for c in coeffs6.values()))
    sweep = []
    for k in SWEEP_K:
        snrs = {n: ceiling_snr(x, packets(x, 6), vecs6, k, 6) for n, x in held_x.items() if n in table}
        sweep.append({"levels": 6, "latent_channels": k, "ratio": 128 / k,
                      "music_table_transfer_mean_snr_db": float(np.mean(list(snrs.values()))), "per_file": snrs})
        print(f"J6 K{k} ({128 / k:.1f}x): transfer {sweep[-1]['music_table_transfer_mean_snr_db']:.2f} dB", flush=True)
    doc = {
        "description": __doc__.split("\n\n")[0].strip(),
        "method": "PCA (uncentred second moments, float64) of wavelet packet coefficient vectors; keep K; "
                  "synthesize; waveform SNR in dB. oracle = PCA of the file itself; transfer = PCA of the training music"
                  + (" plus the 9 music-cc songs outside the music table." if a.more_data else "."),
        "train_files": [f.name for f in train],
        "held_out_files": [f.name for f in held],
        "held_out_music3": list(HELD_OUT),
        "held_out_music_table": sorted(table),
        "excerpt_seconds": {"train": a.train_seconds, "held_out": a.seconds},
        "summary": summary,
        "reduction_sweep": sweep,
        "rows": rows,
        "seconds": time.time() - t0,
        "provenance": provenance(COMMAND + (" --more-data" if a.more_data else ""), 1),
    }
    from wavelatent.io.files import atomic_write_json

    atomic_write_json(output, doc)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
