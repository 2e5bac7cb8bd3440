"""Encode/decode throughput of wavelatent presets against Pillow JPEG and WebP, in one run."""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError


@dataclass
class BenchRow:
    """One codec at one thread count. Throughputs in megapixels per second (10^6 pixels)."""

    codec: str
    kind: str                      # "wavelatent" or "baseline"
    quality: Any
    threads: int                   # torch threads of the run (Pillow codecs ignore it)
    encode_mps: float              # uint8 array -> bytes
    decode_mps: float              # bytes -> uint8 array
    bpp: float
    latent_mps: float | None = None  # uint8 array -> latent y (no quantization, no entropy coding)
    peak_rss_mb: float | None = None
    coding_rss_mb: float | None = None
    params: dict[str, int] | None = None
    macs_per_pixel: dict[str, float] | None = None


@dataclass
class BenchResult:
    rows: list[BenchRow]
    images: int
    megapixels: float
    repeats: int
    warmup: int
    memory_method: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d

    def table(self) -> str:
        return format_table(self)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _images(images, limit: int | None, max_size: int | None) -> list[np.ndarray]:
    from ..evaluate.run import centre_crop, find_images, load_rgb

    if isinstance(images, (str, os.PathLike)):
        return [load_rgb(p, max_size) for p in find_images(images, limit)]
    out = []
    for im in list(images)[:limit]:
        if isinstance(im, (str, os.PathLike)):
            out.append(load_rgb(im, max_size))
        else:
            arr = np.asarray(im)
            if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
                raise InputError(f"bench takes uint8 [H, W, 3] images, got {arr.dtype} {arr.shape}")
            out.append(np.ascontiguousarray(centre_crop(arr, max_size)))
    if not out:
        raise InputError("no images to benchmark")
    return out


def _pass(fn: Callable[[Any], Any], items: list) -> tuple[float, list]:
    """One pass over ``items``: the summed time of the calls alone, and their results."""
    total, results = 0.0, []
    for x in items:
        t0 = time.perf_counter()
        results.append(fn(x))
        total += time.perf_counter() - t0
    return total, results


def _latent_fn(codec) -> Callable[[np.ndarray], Any]:
    import torch

    from ..io.images import to_tensor

    model = codec.codec
    device = next(model.parameters()).device

    def latent(im: np.ndarray):
        with torch.inference_mode():
            return model.encode(to_tensor(im, device))

    return latent


def _measure_all(codecs: list[tuple[Any, Any]], imgs: list[np.ndarray], mp: float, repeats: int, warmup: int,
                 threads: int) -> list[BenchRow]:
    """Every codec, interleaved: each repeat times one pass of every codec in turn, so a change
    of machine load during the run affects all of them alike. Medians over repeats."""
    from .macs import count_macs, count_parameters

    jobs = []
    for codec, quality in codecs:
        fns = {"enc": lambda im, c=codec, q=quality: c.compress(im, q), "dec": codec.decompress}
        if getattr(codec, "kind", "") == "wavelatent":
            fns["lat"] = _latent_fn(codec)
        elif hasattr(codec, "latent"):  # TAEF2: array -> float latents
            fns["lat"] = codec.latent
        jobs.append((codec, quality, fns, {k: [] for k in fns}))
    blobs: dict[int, list] = {}
    for rep in range(warmup + repeats):
        for i, (codec, quality, fns, times) in enumerate(jobs):
            t, blobs[i] = _pass(fns["enc"], imgs)
            t_dec, _ = _pass(fns["dec"], blobs[i])
            t_lat = _pass(fns["lat"], imgs)[0] if "lat" in fns else None
            if rep >= warmup:
                times["enc"].append(t)
                times["dec"].append(t_dec)
                if t_lat is not None:
                    times["lat"].append(t_lat)
    pixels = sum(im.shape[0] * im.shape[1] for im in imgs)
    rows = []
    for i, (codec, quality, fns, times) in enumerate(jobs):
        row = BenchRow(codec.name, getattr(codec, "kind", "other"), quality, threads,
                       mp / statistics.median(times["enc"]), mp / statistics.median(times["dec"]),
                       8.0 * sum(len(b) for b in blobs[i]) / pixels)
        if "lat" in times:
            row.latent_mps = mp / statistics.median(times["lat"])
            wl = getattr(codec, "kind", "") == "wavelatent"
            row.params = count_parameters(codec.codec) if wl else codec.count_parameters()
            row.macs_per_pixel = count_macs(codec.codec) if wl else codec.macs_per_pixel()
        rows.append(row)
    return rows


def bench(
    images,
    presets: Sequence[str] | None = None,
    threads: int | Sequence[int] = 1,
    repeats: int = 5,
    warmup: int = 1,
    *,
    weights: Sequence[str | os.PathLike] = (),
    baselines: Sequence[str] = ("jpeg", "webp"),
    baseline_quality: int = 75,
    memory: bool = True,
    limit: int | None = None,
    max_size: int | None = None,
    log: Callable[[str], None] | None = _stderr,
) -> BenchResult:
    """Throughput of wavelatent presets (default quality) and of Pillow baselines at quality 75.

    ``images``: a folder or file, or a list of paths or uint8 ``[H, W, 3]`` arrays. ``presets``:
    preset names (``None``: every shipped RGB preset; ones without weights are skipped with a
    message); ``weights``: extra weights files. ``threads``: torch threads, one int or several
    (each measured; Pillow's encoders are single-threaded). ``baselines``: Pillow baselines at
    ``baseline_quality``, and/or ``taef2`` (TAEF2 png8 + float32) or ``taef2-<variant>``. Each throughput is the total
    megapixels over the median of ``repeats`` timed passes over all images after ``warmup``
    untimed ones; the codecs take turns pass by pass, so load changes hit all of them alike.
    ``memory``: peak RSS per codec in a fresh subprocess (see
    :mod:`wavelatent.bench.memory`).
    """
    import torch

    from ..evaluate.codecs import PillowCodec, load_wavelatent_codecs, make_baselines

    if repeats < 1 or warmup < 0:
        raise InputError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    thread_counts = [threads] if isinstance(threads, int) else list(threads)
    if not thread_counts or any(not isinstance(t, int) or t < 1 for t in thread_counts):
        raise InputError(f"threads must be positive integers, got {threads!r}")
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        if log is not None:
            log(msg)

    imgs = _images(images, limit, max_size)
    mp = sum(im.shape[0] * im.shape[1] for im in imgs) / 1e6
    ours = load_wavelatent_codecs(list(presets) if presets is not None else None, list(weights), log=note)
    if not ours:
        note("no wavelatent codec to benchmark (no shipped weights?): baselines only")
    base = make_baselines(list(baselines), (baseline_quality,)) if baselines else []
    for b in (b for b in base if isinstance(b, PillowCodec)):  # TAEF2 ones keep their one point
        b_name = f"{b.name}-q{baseline_quality}"
        object.__setattr__(b, "name", b_name)

    rows: list[BenchRow] = []
    before = torch.get_num_threads()
    try:
        for t in thread_counts:
            torch.set_num_threads(t)
            pairs = [(c, c.points()[0]) for c in base] + [(c, c.default_point) for c in ours]
            rows += _measure_all(pairs, imgs, mp, repeats, warmup, t)
    finally:
        torch.set_num_threads(before)

    if memory:
        _add_memory(rows, imgs, [*base, *ours], thread_counts[0], note)
    return BenchResult(rows, len(imgs), mp, repeats, warmup, _memory_method() if memory else None, notes)


def _memory_method() -> str:
    from .memory import METHOD

    return METHOD


def _add_memory(rows: list[BenchRow], imgs: list[np.ndarray], codecs: list, threads: int, note) -> None:
    from ..weights import save_weights
    from .memory import measure

    with tempfile.TemporaryDirectory(prefix="wavelatent-bench-") as tmp:
        paths = []
        for i, im in enumerate(imgs):
            p = Path(tmp) / f"{i}.npy"
            np.save(p, im)
            paths.append(str(p))
        for c in codecs:
            if getattr(c, "kind", "") == "wavelatent":
                source = c.source
                if not isinstance(source, (str, os.PathLike)):
                    source = Path(tmp) / f"{c.name}.safetensors"
                    save_weights(c.codec, source)
                spec_codec = {"kind": "wavelatent", "source": str(source), "quality": c.default_point}
                spec_threads = threads
            elif getattr(c, "kind", "") == "taef2":
                spec_codec = {"kind": "taef2", **c.spec(), "quality": c.points()[0]}
                spec_threads = threads
            else:
                spec_codec = {"kind": "pillow", "name": c.name, "format": c.format, "quality": c.qualities[0],
                              "options": [list(o) for o in c.options]}
                spec_threads = 1
            result = measure({"codec": spec_codec, "images": paths, "threads": spec_threads})
            if "error" in result:
                note(f"peak memory of {c.name} not measured: {result['error']}")
            for r in rows:
                if r.codec == c.name and "peak_mb" in result:
                    r.peak_rss_mb = result["peak_mb"]
                    r.coding_rss_mb = result["coding_peak_mb"] - result["baseline_mb"]


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def _human(n: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def format_table(result: BenchResult) -> str:
    """The rows as a text table with throughput ratios to JPEG and WebP of the same thread block."""
    lines = [
        f"{result.images} images, {result.megapixels:.2f} MP per pass; throughput = MP / median of "
        f"{result.repeats} timed passes after {result.warmup} warm-up; enc = array -> bytes, dec = bytes -> "
        "array, latent = array -> latents (no entropy coding)",
    ]
    if result.memory_method:
        lines.append(f"memory: {result.memory_method}")
    head = (f"{'codec':<30} {'q':>3} {'thr':>3} {'enc MP/s':>9} {'dec MP/s':>9} {'enc/JPEG':>8} {'enc/WebP':>8} "
            f"{'dec/JPEG':>8} {'dec/WebP':>8} {'latent':>8} {'bpp':>6} {'peak MB':>8} {'coding':>7} "
            f"{'params enc/dec':>15} {'MAC/px enc/dec':>15}")
    blocks: dict[int, list[BenchRow]] = {}
    for r in result.rows:
        blocks.setdefault(r.threads, []).append(r)
    for threads, g in blocks.items():
        jpeg = next((r for r in g if r.codec.startswith("jpeg")), None)
        webp = next((r for r in g if r.codec.startswith("webp")), None)
        lines += ["", f"torch threads: {threads} (Pillow's encoders and decoders are single-threaded)", head,
                  "-" * len(head)]
        for r in g:
            mem = (f"{r.peak_rss_mb:>8.0f} {r.coding_rss_mb:>7.0f}" if r.peak_rss_mb is not None
                   else f"{'-':>8} {'-':>7}")
            params = f"{_human(r.params['encoder'])}/{_human(r.params['decoder'])}" if r.params else "-"
            macs = (f"{r.macs_per_pixel['encoder']:.0f}/{r.macs_per_pixel['decoder']:.0f}"
                    if r.macs_per_pixel else "-")
            ratios = " ".join(f"{_ratio(mine, ref and getattr(ref, key)):>8}"
                              for mine, key in ((r.encode_mps, "encode_mps"), (r.decode_mps, "decode_mps"))
                              for ref in (jpeg, webp))
            latent = f"{r.latent_mps:.1f}" if r.latent_mps else "-"
            lines.append(
                f"{r.codec:<30} {str(r.quality):>3} {r.threads:>3} {r.encode_mps:>9.2f} {r.decode_mps:>9.2f} "
                f"{ratios} {latent:>8} {r.bpp:>6.3f} {mem} {params:>15} {macs:>15}"
            )
    for n in result.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)
