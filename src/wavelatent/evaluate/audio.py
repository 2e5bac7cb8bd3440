"""Audio evaluation: wavelatent audio presets against FLAC, Opus, Vorbis and MP3 (all through
soundfile / libsndfile), measured in the same run on the same excerpts.

Per file, codec and rate point: kbps from the bytes each codec returns, SNR (dB, all channels),
log-spectral distance (dB, :func:`log_spectral_distance`), PESQ and STOI for speech at 8/16 kHz when ``pesq`` / ``pystoi`` are
installed, and encode/decode speed in source frames per second (the codec call only: reading the
file and, for Opus, resampling to 48 kHz are outside the timing). Speeds are reported as ratios
to Opus measured in the same run, since absolute numbers depend on the machine.

Baselines are coded at target bitrates (:data:`TARGET_KBPS`; Opus also lower, to meet our low
rates): libsndfile takes a ``compression_level``, not a bitrate, so the level that lands nearest
the target is found by bisection on the middle 8 s of the excerpt (outside the timing) and the achieved kbps are
reported; a target a codec cannot reach within 25 % (Vorbis below ~70 kbps) is skipped and logged.
Wavelatent presets are measured at every quality twice: the MSE decoder's output (``noise_fill=False``)
and the listening output with noise filling (``+nf``).

Outputs in OUT: ``results.json`` (one document per codec: ``{"name", "description", "results":
{"kbps", "snr", "lsd", "pesq", "stoi", "encode_fps", "decode_fps"}}``, means over files per point),
``rows.csv`` (every measurement), ``rd.png`` (SNR vs kbps), ``spectrogram.png`` (original,
wavelatent and Opus at the nearest rate) and ``report.md`` (tables, matched-rate SNR gaps).
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError, OutputExistsError

BASELINES = ("flac", "opus", "vorbis", "mp3")
# compression_level grids (libsndfile maps them to bitrates / qualities), dense at low rates
OPUS_LEVELS = (1.0, 0.99, 0.98, 0.97, 0.96, 0.94, 0.92, 0.9, 0.87, 0.83, 0.78, 0.7)
VORBIS_LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
MP3_LEVELS = (0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
TARGET_KBPS = (32.0, 64.0, 96.0, 128.0)
OPUS_TARGET_KBPS = (16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0)
TARGET_TOLERANCE = 0.25  # a target is met when the achieved kbps lie within 25 % of it
PROBE_SECONDS = 8.0  # the level search codes this much of each excerpt
MAX_SPECTROGRAMS = 5  # spectrograms of the first files
CSV_COLUMNS = ("file", "codec", "param", "level", "seconds", "rate", "channels", "bytes", "kbps", "snr", "lsd", "pesq",
               "stoi", "encode_s", "decode_s")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- metrics
def snr(ref: np.ndarray, x: np.ndarray) -> float:
    """SNR in dB over all samples (``inf`` when equal)."""
    ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
    err = float(np.sum((ref - x) ** 2))
    return math.inf if err == 0 else 10 * math.log10(max(float(np.sum(ref**2)), 1e-30) / err)


def log_spectral_distance(ref: np.ndarray, x: np.ndarray, rate: int, *, floor_db: float = -100.0) -> float:
    """Log-spectral distance (dB) of ``x`` against ``ref``, both ``[frames, channels]`` at ``rate``.

    For each channel: the STFT with a Hann window ``w`` (``numpy.hanning``) of
    ``N = 2**round(log2(0.046 rate))`` samples (2048 at 44.1 and 48 kHz, 512 at 8 kHz), hop ``N / 4``,
    frames starting at ``0, N/4, ...`` while they fit (signals shorter than ``N`` are zero-padded to
    one frame), gives for frame ``t`` and each of the ``N/2 + 1`` bins ``f`` the power
    ``P(t, f) = max(|sum_n w[n] x[t N/4 + n] exp(-2 pi i f n / N)|^2 / sum_n w[n]^2, eps)``, floored at
    ``eps = 10^(floor_db / 10)`` (1e-10: white noise at -100 dBFS, about 16-bit quantization noise,
    per bin) so that digital silence does not dominate. Then
    ``LSD_channel = mean_t sqrt(mean_f (10 log10(P_ref(t, f) / P_x(t, f)))^2)``; the result is the mean
    over channels. 0 for identical signals; large where ``x`` has holes (bands decoded as silence)
    or adds energy where ``ref`` has none.
    """
    n_fft = 1 << max(6, round(math.log2(rate * 0.046)))
    hop = n_fft // 4
    ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
    if len(ref) < n_fft:
        pad = ((0, n_fft - len(ref)), (0, 0))
        ref, x = np.pad(ref, pad), np.pad(x, pad)
    win = np.hanning(n_fft)
    starts = np.arange(0, len(ref) - n_fft + 1, hop)
    floor = 10 ** (floor_db / 10) * np.sum(win**2)
    out = []
    for c in range(ref.shape[1]):
        frames_ref = np.stack([ref[s : s + n_fft, c] for s in starts]) * win
        frames_x = np.stack([x[s : s + n_fft, c] for s in starts]) * win
        p_ref = np.maximum(np.abs(np.fft.rfft(frames_ref, axis=1)) ** 2, floor)
        p_x = np.maximum(np.abs(np.fft.rfft(frames_x, axis=1)) ** 2, floor)
        d = 10 * np.log10(p_ref / p_x)
        out.append(np.mean(np.sqrt(np.mean(d**2, axis=1))))
    return float(np.mean(out))


def speech_scores(ref: np.ndarray, x: np.ndarray, rate: int) -> dict[str, float]:
    """PESQ (narrowband at 8 kHz, wideband at 16 kHz) and STOI of the first channel, where installed."""
    out: dict[str, float] = {}
    a, b = np.asarray(ref[:, 0], np.float64), np.asarray(x[:, 0], np.float64)
    if rate in (8000, 16000):
        try:
            from pesq import pesq

            out["pesq"] = float(pesq(rate, a, b, "nb" if rate == 8000 else "wb"))
        except ImportError:
            pass
        except Exception:  # pesq raises for clips without detectable speech
            out["pesq"] = math.nan
    try:
        from pystoi import stoi

        out["stoi"] = float(stoi(a, b, rate, extended=False))
    except ImportError:
        pass
    return out


def align(ref: np.ndarray, x: np.ndarray, max_lag: int = 4096) -> np.ndarray:
    """``x`` shifted by the lag (within ``max_lag``) that best matches ``ref`` and cut/padded to its
    length: some decoders (MP3 at low rates) return a few frames more, or shifted."""
    n = len(ref)
    if len(x) == n:
        return x
    a, b = ref[:, 0].astype(np.float64), x[:, 0].astype(np.float64)
    size = 1 << int(math.ceil(math.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    max_lag = min(max_lag, size // 2 - 1)  # short clips: the circular correlation holds fewer lags
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    lag = int(lags[np.argmax(corr[lags])])  # x[t + lag] ~ ref[t]
    out = np.zeros_like(ref, dtype=np.float32)
    src = x[max(lag, 0) : max(lag, 0) + n - max(-lag, 0)]
    out[max(-lag, 0) : max(-lag, 0) + len(src)] = src
    return out


# --------------------------------------------------------------------------- codecs
@dataclass
class SoundfileCodec:
    """A format libsndfile writes, swept over ``compression_level``."""

    name: str
    format: str
    subtype: str
    levels: tuple[float, ...]
    native_rates: tuple[int, ...] = ()  # encode at the nearest of these (Opus), resampled outside the timing
    options: dict = field(default_factory=dict)
    description: str = ""
    kind: str = "baseline"
    targets: tuple[float, ...] = ()  # target kbps: the points, instead of ``levels``
    max_level: float = 1.0  # the highest compression_level libsndfile accepts for this format

    def points(self) -> list:
        return list(self.targets) if self.targets else list(self.levels)

    def level_for(self, x: np.ndarray, rate: int, param: Any) -> Any:
        """The ``compression_level`` to code ``x [frames, channels]`` at: ``param`` itself, or for a
        target kbps the level nearest it (bisection, kbps fall as the level rises). Raises InputError
        when the nearest level misses the target by more than :data:`TARGET_TOLERANCE`."""
        if not self.targets or param is None:
            return param
        n = min(len(x), int(PROBE_SECONDS * rate))  # the search codes the middle PROBE_SECONDS
        x = x[(len(x) - n) // 2 : (len(x) - n) // 2 + n]
        target, seconds = float(param), n / rate
        tried: dict[float, float] = {}

        def kbps(level: float) -> float:
            if level not in tried:
                tried[level] = 8 * len(self.compress(x, rate, level)) / seconds / 1000
            return tried[level]

        lo, hi = 0.0, self.max_level
        if kbps(hi) < target < kbps(lo):
            for _ in range(9):
                mid = round((lo + hi) / 2, 4)
                if kbps(mid) > target:
                    lo = mid
                else:
                    hi = mid
        best = min(tried, key=lambda lv: abs(math.log(tried[lv] / target)))
        if abs(tried[best] / target - 1) > TARGET_TOLERANCE:
            raise InputError(f"{self.name} cannot reach {target:g} kbps here (nearest {tried[best]:.1f} kbps)")
        return best

    def coding_rate(self, rate: int) -> int:
        if not self.native_rates or rate in self.native_rates:
            return rate
        return min((r for r in self.native_rates if r >= rate), default=max(self.native_rates))

    def compress(self, x: np.ndarray, rate: int, param: Any) -> bytes:
        import soundfile as sf

        buf = io.BytesIO()
        kw = dict(self.options)
        if param is not None:
            kw["compression_level"] = float(param)
        sf.write(buf, x, rate, format=self.format, subtype=self.subtype, **kw)
        return buf.getvalue()

    def decompress(self, data: bytes) -> tuple[np.ndarray, int]:
        import soundfile as sf

        y, r = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return y, r


class WavelatentAudioCodec:
    """``compress_audio`` / ``decompress_audio`` at every quality of one audio preset or weights file;
    ``noise_fill`` chooses the decoder's output (the name gets ``+nf`` when filled)."""

    kind = "wavelatent"

    def __init__(self, source: Any, *, name: str | None = None, noise_fill: bool = False) -> None:
        from ..models import load_codec
        from ..weights import weights_sha256

        self.codec = load_codec(source) if not hasattr(source, "config") else source
        cfg = self.codec.config
        if cfg.modality != "audio":
            raise InputError(f"{cfg.name} codes {cfg.modality}, not audio")
        self.noise_fill = noise_fill
        self.name = (name or f"wavelatent-{cfg.name}") + ("+nf" if noise_fill else "")
        self.preset = cfg.name
        self.default_point = cfg.default_quality
        self.description = (f"wavelatent {cfg.name}: {cfg.description} weights sha256 {weights_sha256(self.codec)[:12]}; "
                            + ("noise filling on (the listening output)" if noise_fill else "MSE output (no noise filling)"))

    def points(self) -> list:
        return list(range(1, self.codec.config.qualities + 1))

    def coding_rate(self, rate: int) -> int:
        return rate  # resampling, if any, is part of the codec

    def level_for(self, x: np.ndarray, rate: int, param: Any) -> Any:
        return param

    def compress(self, x: np.ndarray, rate: int, param: Any) -> bytes:
        from ..audio import compress_audio

        return compress_audio(x, rate, self.codec, int(param))

    def decompress(self, data: bytes) -> tuple[np.ndarray, int]:
        from ..audio import decompress_audio

        return decompress_audio(data, self.codec, noise_fill=self.noise_fill)


def make_baselines(names: list[str] | None = None, *, targets: bool = True) -> list[SoundfileCodec]:
    """FLAC (lossless, one point), Opus, Vorbis and MP3 through soundfile; unavailable ones raise.
    ``targets``: lossy codecs at target bitrates (:data:`TARGET_KBPS`, Opus :data:`OPUS_TARGET_KBPS`),
    else over their compression-level grids."""
    import soundfile as sf

    names = list(BASELINES) if names is None else names
    lib = f"libsndfile {sf.__libsndfile_version__}, soundfile {sf.__version__}"
    out = []
    for n in names:
        if n == "flac":
            out.append(SoundfileCodec("flac", "FLAC", "PCM_16", (None,), description=f"FLAC 16-bit, lossless size; {lib}"))
        elif n == "opus":
            out.append(SoundfileCodec("opus", "OGG", "OPUS", OPUS_LEVELS, OPUS_RATES,
                                      description=f"Ogg Opus (libopus defaults, VBR), at 48 kHz for 44.1 kHz sources; {lib}",
                                      targets=OPUS_TARGET_KBPS if targets else ()))
        elif n == "vorbis":
            out.append(SoundfileCodec("vorbis", "OGG", "VORBIS", VORBIS_LEVELS, description=f"Ogg Vorbis (VBR); {lib}",
                                      targets=TARGET_KBPS if targets else ()))
        elif n == "mp3":
            out.append(SoundfileCodec("mp3", "MP3", "MPEG_LAYER_III", MP3_LEVELS, options={"bitrate_mode": "CONSTANT"},
                                      description=f"MP3 (LAME), constant bitrate; {lib}",
                                      targets=TARGET_KBPS if targets else (), max_level=0.99))
        else:
            raise InputError(f"unknown audio baseline {n!r}; known: {', '.join(BASELINES)}")
    return out


# --------------------------------------------------------------------------- the run
@dataclass
class AudioEvaluation:
    out_dir: Path
    rows: list[dict]
    curves: dict[str, dict]
    matched: list[dict]
    files: dict[str, Path] = field(default_factory=dict)


def load_excerpts(folder: str, max_seconds: float | None, limit: int | None) -> list[tuple[str, np.ndarray, int]]:
    """(name, float32 samples, rate) of each audio file, the middle ``max_seconds`` of each."""
    from ..data.audio import list_audio
    from ..io.audio import read_audio

    paths = list_audio(folder)
    if not paths:
        raise InputError(f"{folder}: no audio files found")
    out = []
    for p in paths[:limit] if limit else paths:
        x, info = read_audio(p)
        if max_seconds:
            n = int(max_seconds * info.sample_rate)
            start = max(0, (len(x) - n) // 2)
            x = x[start : start + n]
        out.append((p.name, np.ascontiguousarray(x), info.sample_rate))
    return out


def round_trip(codec, x: np.ndarray, rate: int, param: Any) -> tuple[np.ndarray, bytes, Any, float, float]:
    """Code ``x [frames, channels]`` (float32 at ``rate``) with ``codec`` at ``param`` and decode it:
    ``(decoded [frames, channels] aligned to x, at rate; the bytes; the level coded at; encode s;
    decode s)``. A codec with ``level_for`` turns a target kbps into its level first (untimed); a
    codec that codes at another rate gets ``x`` resampled there and back. Raises InputError when the
    decoded channels or rate are not those coded."""
    from ..io.audio import resample

    coding_rate = codec.coding_rate(rate)
    sig = resample(x, rate, coding_rate) if coding_rate != rate else x
    level = codec.level_for(sig, coding_rate, param) if hasattr(codec, "level_for") else param
    t0 = time.perf_counter()
    data = codec.compress(sig, coding_rate, level)
    t1 = time.perf_counter()
    y, r = codec.decompress(data)
    t2 = time.perf_counter()
    if r != coding_rate or y.shape[1] != x.shape[1]:
        raise InputError(f"{getattr(codec, 'name', codec)} decoded {y.shape[1]} channel(s) at {r} Hz for "
                         f"{x.shape[1]} at {coding_rate} Hz")
    y = align(sig, np.asarray(y, np.float32))
    if coding_rate != rate:
        y = resample(y, coding_rate, rate)
    return np.ascontiguousarray(y[: len(x)], np.float32), data, level, t1 - t0, t2 - t1


def _measure(codec, x: np.ndarray, rate: int, param: Any, speech: bool) -> dict[str, Any]:
    y, data, level, enc_s, dec_s = round_trip(codec, x, rate, param)
    seconds = len(x) / rate
    row = {"param": param, "level": level, "seconds": seconds, "rate": rate, "channels": x.shape[1], "bytes": len(data),
           "kbps": 8 * len(data) / seconds / 1000, "snr": snr(x, y), "lsd": log_spectral_distance(x, y, rate),
           "encode_s": enc_s, "decode_s": dec_s}
    if speech:
        row.update(speech_scores(x, y, rate))
    return row


def evaluate_audio(
    folder: str,
    out: str,
    codecs: list,
    *,
    max_seconds: float | None = 30.0,
    limit: int | None = None,
    threads: int = 1,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
) -> AudioEvaluation:
    """Run every point of every codec on every file; write the report to ``out``."""
    import torch
    from tqdm import tqdm

    out_dir = Path(out)
    if (out_dir / "results.json").exists() and not force:
        raise OutputExistsError(f"{out_dir} holds a report; use --force to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    excerpts = load_excerpts(folder, max_seconds, limit)
    rows: list[dict] = []
    name, x, rate = excerpts[0]
    for codec in codecs:  # warm up (imports, caches, first-call costs) outside the timings
        try:
            _measure(codec, x[: rate // 2 + 1], rate, codec.points()[0], False)
        except Exception:
            pass
    jobs = [(f, c, p) for f in excerpts for c in codecs for p in c.points()]
    for (name, x, rate), codec, param in tqdm(jobs, disable=not progress, unit="point", leave=False):
        speech = rate <= 16000 and x.shape[1] == 1
        try:
            row = _measure(codec, x, rate, param, speech)
        except Exception as e:  # a baseline that cannot code this file (rate, channels): note and go on
            if codec.kind == "wavelatent":
                raise
            log(f"{codec.name} {param} on {name}: {type(e).__name__}: {e}")
            continue
        rows.append({"file": name, "codec": codec.name, **row})
    curves = _curves(rows, codecs)
    matched = _matched(curves)
    files = _write(out_dir, rows, curves, matched, excerpts, codecs)
    return AudioEvaluation(out_dir, rows, curves, matched, files)


def _curves(rows: list[dict], codecs: list) -> dict[str, dict]:
    """Per codec and point: means over files (kbps, SNR, LSD, speech scores) and total speeds."""
    curves = {}
    for c in codecs:
        res: dict[str, list] = {k: [] for k in ("param", "kbps", "snr", "lsd", "pesq", "stoi", "encode_fps",
                                                 "decode_fps")}
        for p in c.points():
            rs = [r for r in rows if r["codec"] == c.name and r["param"] == p]
            if not rs:
                continue
            frames = sum(r["seconds"] * r["rate"] for r in rs)
            res["param"].append(p)
            res["kbps"].append(float(np.mean([r["kbps"] for r in rs])))
            res["snr"].append(float(np.mean([r["snr"] for r in rs])))
            res["lsd"].append(float(np.mean([r["lsd"] for r in rs])))
            for k in ("pesq", "stoi"):
                vals = [r[k] for r in rs if k in r and not math.isnan(r[k])]
                res[k].append(float(np.mean(vals)) if vals else None)
            res["encode_fps"].append(frames / max(sum(r["encode_s"] for r in rs), 1e-9))
            res["decode_fps"].append(frames / max(sum(r["decode_s"] for r in rs), 1e-9))
        curves[c.name] = {"name": c.name, "description": c.description, "kind": c.kind, "results": res}
    return curves


def _interp(kbps: float, xs: list[float], ys: list[float]) -> float:
    """``ys`` at ``kbps``, linear in log rate, inside the measured range only (else NaN)."""
    pts = sorted(zip(xs, ys))
    if len(pts) < 2 or not pts[0][0] <= kbps <= pts[-1][0]:
        return math.nan
    lx = np.log([p[0] for p in pts])
    return float(np.interp(math.log(kbps), lx, [p[1] for p in pts]))


def _speed(curve: dict, key: str) -> float:
    vals = curve["results"][key]
    return float(np.exp(np.mean(np.log(vals)))) if vals else math.nan


def _matched(curves: dict[str, dict]) -> list[dict]:
    """Each wavelatent point against each lossy baseline at the same kbps (SNR gap), with speed ratios to Opus."""
    opus = curves.get("opus")
    out = []
    for name, c in curves.items():
        if c["kind"] != "wavelatent":
            continue
        r = c["results"]
        for i, p in enumerate(r["param"]):
            row = {"codec": name, "quality": p, "kbps": r["kbps"][i], "snr": r["snr"][i], "lsd": r["lsd"][i]}
            for b, bc in curves.items():
                if bc["kind"] == "baseline" and b != "flac":
                    row[f"snr_{b}"] = _interp(r["kbps"][i], bc["results"]["kbps"], bc["results"]["snr"])
                    row[f"lsd_{b}"] = _interp(r["kbps"][i], bc["results"]["kbps"], bc["results"]["lsd"])
            if opus is not None:
                row["encode_vs_opus"] = r["encode_fps"][i] / _speed(opus, "encode_fps")
                row["decode_vs_opus"] = r["decode_fps"][i] / _speed(opus, "decode_fps")
            out.append(row)
    return out


# --------------------------------------------------------------------------- report
def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def _write(out_dir: Path, rows, curves, matched, excerpts, codecs) -> dict[str, Path]:
    files = {"json": out_dir / "results.json", "csv": out_dir / "rows.csv", "md": out_dir / "report.md"}
    files["json"].write_text(json.dumps({"curves": curves, "matched": matched}, indent=1, default=str) + "\n")
    with open(files["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in CSV_COLUMNS})
    try:
        files["rd"] = _plot_rd(out_dir / "rd.png", curves)
        for i, excerpt in enumerate(excerpts[:MAX_SPECTROGRAMS]):  # spectrogram.png: the first file; -2.png ...
            key = "spectrogram" if i == 0 else f"spectrogram-{i + 1}"
            files[key] = _plot_spectrogram(out_dir / f"{key}.png", excerpt, codecs, curves)
    except ImportError:  # matplotlib is optional
        pass
    lines = ["# Audio evaluation\n", f"{len(excerpts)} file(s): " + ", ".join(
        f"{n} ({len(x) / r:.1f} s, {r} Hz, {x.shape[1]} ch)" for n, x, r in excerpts) + "\n"]
    lines.append("Means over files. Speeds: source frames per second of the codec call alone, "
                 "1 torch thread; ratios to Opus (geometric mean over its points) from the same run.\n")
    lines.append("| codec | param | kbps | SNR dB | LSD dB | PESQ | STOI | encode fps | decode fps |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name, c in curves.items():
        r = c["results"]
        for i, p in enumerate(r["param"]):
            lines.append(f"| {name} | {_fmt(p, 'g')} | {r['kbps'][i]:.2f} | {_fmt(r['snr'][i])} | {_fmt(r['lsd'][i])} "
                         f"| {_fmt(r['pesq'][i])} | {_fmt(r['stoi'][i], '.3f')} | {r['encode_fps'][i]:.3g} "
                         f"| {r['decode_fps'][i]:.3g} |")
    if matched:
        base = [b for b in curves if curves[b]["kind"] == "baseline" and b != "flac"]
        lines.append("\n## wavelatent vs baselines at the same kbps (SNR dB; '-' = outside the baseline's range)\n")
        lines.append("| codec | q | kbps | SNR | " + " | ".join(f"SNR {b}" for b in base)
                     + " | encode vs Opus | decode vs Opus |")
        lines.append("|---|---|---|---|" + "---|" * len(base) + "---|---|")
        for m in matched:
            lines.append(f"| {m['codec']} | {m['quality']} | {m['kbps']:.2f} | {m['snr']:.2f} | "
                         + " | ".join(_fmt(m.get(f"snr_{b}")) for b in base)
                         + f" | {_fmt(m.get('encode_vs_opus'), '.1f')}x | {_fmt(m.get('decode_vs_opus'), '.1f')}x |")
        lines.append("\n## Log-spectral distance at the same kbps (dB, lower is better; '-' = outside the baseline's range)\n")
        lines.append("| codec | q | kbps | LSD | " + " | ".join(f"LSD {b}" for b in base) + " |")
        lines.append("|---|---|---|---|" + "---|" * len(base))
        for m in matched:
            lines.append(f"| {m['codec']} | {m['quality']} | {m['kbps']:.2f} | {m['lsd']:.2f} | "
                         + " | ".join(_fmt(m.get(f"lsd_{b}")) for b in base) + " |")
    lines.append("\n## Codecs\n")
    lines += [f"- **{c['name']}**: {c['description']}" for c in curves.values()]
    if "rd" in files:
        lines.append(f"\n## SNR vs kbps\n\n![SNR vs kbps]({files['rd'].name})")
    spectrograms = [k for k in files if k.startswith("spectrogram")]
    if spectrograms:
        lines.append("\n## Spectrograms\n\nFirst channel, first 10 s of the first excerpts: the original, each wavelatent "
                     "codec at its default quality, Opus at the target nearest the first one's kbps.\n")
        lines += [f"![{k}]({files[k].name})" for k in spectrograms]
    files["md"].write_text("\n".join(lines) + "\n")
    return files


def _plot_rd(path: Path, curves: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        r = c["results"]
        if len(r["kbps"]) < 2:
            continue
        style = "-o" if c["kind"] == "wavelatent" else "--."
        ax.plot(r["kbps"], r["snr"], style, label=name, ms=4)
    ax.set_xscale("log")
    ax.set_xlabel("kbps (real bytes)")
    ax.set_ylabel("SNR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_spectrogram(path: Path, excerpt, codecs, curves) -> Path:
    """Original, each wavelatent codec at its default quality, and Opus at the point nearest the first
    one's kbps: one file's first channel, up to 10 s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, x, rate = excerpt
    x = x[: int(10 * rate)]
    panels = [("original", x[:, 0])]
    opus = next((c for c in codecs if c.name == "opus"), None)
    first_kbps = None
    for c in codecs:
        if c.kind != "wavelatent":
            continue
        data = c.compress(x, rate, c.default_point)
        y = align(x, c.decompress(data)[0])
        kbps = 8 * len(data) / (len(x) / rate) / 1000
        first_kbps = kbps if first_kbps is None else first_kbps
        panels.append((f"{c.name} q{c.default_point}: {kbps:.1f} kbps, SNR {snr(x, y):.1f} dB, "
                       f"LSD {log_spectral_distance(x, y, rate):.1f} dB", y[:, 0]))
    if opus is not None and first_kbps is not None and curves.get("opus", {}).get("results", {}).get("kbps"):
        r = curves["opus"]["results"]
        param = r["param"][int(np.argmin([abs(math.log(k / first_kbps)) for k in r["kbps"]]))]
        try:
            y, kbps = _measure_signal(opus, x, rate, param)
            panels.append((f"opus (target {param:g}): {kbps:.1f} kbps, SNR {snr(x, y):.1f} dB, "
                           f"LSD {log_spectral_distance(x, y, rate):.1f} dB", y[:, 0]))
        except InputError:  # the target is out of reach on this short excerpt
            pass
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.2 * len(panels)), sharex=True)
    axes = np.atleast_1d(axes)
    n_fft = 1 << max(6, round(math.log2(rate * 0.046)))
    for ax, (title, sig) in zip(axes, panels):
        ax.specgram(sig, NFFT=n_fft, Fs=rate, noverlap=n_fft * 3 // 4, cmap="magma", vmin=-130, vmax=-20)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("Hz")
    axes[-1].set_xlabel(f"seconds ({name})")
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def _measure_signal(codec, x: np.ndarray, rate: int, param) -> tuple[np.ndarray, float]:
    y, data, *_ = round_trip(codec, x, rate, param)
    return y, 8 * len(data) / (len(x) / rate) / 1000
