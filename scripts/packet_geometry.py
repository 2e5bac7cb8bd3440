"""Packet geometry study (issue 18, item 1): the ideal linear ceiling of a stereo wavelet-packet codec
at J = 6, 7 and 8 levels, for 5x and 20x fewer values.

    PYTHONPATH=src python scripts/packet_geometry.py            # writes results/audio/geometry.json

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
RATE = 44100
LEVELS = (6, 7, 8)
RATIOS = (5, 20)
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
    p.add_argument("-o", "--output", type=Path, default=OUTPUT)
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
                print(key, {k2: round(v, 2) for k2, v in summary[key].items() if k2.endswith("snr_db")}, flush=True)
    doc = {
        "description": __doc__.split("\n\n")[0].strip(),
        "method": "PCA (uncentred second moments, float64) of wavelet packet coefficient vectors; keep K; "
                  "synthesize; waveform SNR in dB. oracle = PCA of the file itself; transfer = PCA of the training music.",
        "train_files": [f.name for f in train],
        "held_out_files": [f.name for f in held],
        "held_out_music3": list(HELD_OUT),
        "excerpt_seconds": {"train": a.train_seconds, "held_out": a.seconds},
        "summary": summary,
        "rows": rows,
        "seconds": time.time() - t0,
        "provenance": provenance(COMMAND, 1),
    }
    from wavelatent.io.files import atomic_write_json

    atomic_write_json(a.output, doc)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
