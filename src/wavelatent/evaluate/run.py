"""Rate-distortion evaluation of codecs on a folder of images: every codec point on every image."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError, OutputExistsError
from .codecs import ImageCodec, load_wavelatent_codecs, make_baselines, unique_names
from .metrics import bpp, image_metrics, torch_threads

CSV_COLUMNS = (
    "image", "codec", "param", "width", "height", "bytes", "bpp",
    "psnr_rgb", "psnr_y", "ms_ssim", "ms_ssim_scales", "encode_s", "decode_s",
)


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured and wrote."""

    out_dir: Path
    rows: list[dict]                    # one per image, codec and point (the CSV)
    curves: dict[str, dict]             # codec name -> CompressAI-schema JSON document
    bd: list[dict]                      # BD table against the anchor ([] without one)
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- images
def load_rgb(path: str | os.PathLike, max_size: int | None = None) -> np.ndarray:
    """An image file as RGB uint8 ``[H, W, 3]`` (alpha dropped, gray repeated), centre-cropped to
    at most ``max_size`` pixels on each side."""
    from ..io.images import read_image

    arr, mode = read_image(path)
    color = arr[:, :, : (1 if mode in ("L", "LA") else 3)]
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    return np.ascontiguousarray(centre_crop(color, max_size))


def centre_crop(img: np.ndarray, size: int | None) -> np.ndarray:
    """The central ``min(H, size) x min(W, size)`` window (``size=None``: unchanged)."""
    if size is None:
        return img
    if size < 1:
        raise InputError(f"max size must be positive, got {size}")
    h, w = img.shape[:2]
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top : top + ch, left : left + cw]


def find_images(folder: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted), or the file itself; the first ``limit``."""
    from ..data.images import list_images

    paths = list_images(folder)
    if not paths:
        raise InputError(f"{folder}: no images found")
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be positive, got {limit}")
        paths = paths[:limit]
    return paths


# --------------------------------------------------------------------------- the work
class _Evaluator:
    """Runs every point of every codec on one image. One per process (pool workers build their own)."""

    def __init__(self, codecs: Sequence[ImageCodec], max_size: int | None) -> None:
        self.codecs = list(codecs)
        self.max_size = max_size
        self.warm = False

    def warm_up(self, img: np.ndarray) -> None:
        """Code a small crop once per codec so that first-call costs stay out of the timings."""
        small = np.ascontiguousarray(centre_crop(img, 64))
        for c in self.codecs:
            for p in c.points():
                c.decompress(c.compress(small, p))
        self.warm = True

    def __call__(self, path: Path) -> list[dict]:
        img = load_rgb(path, self.max_size)
        if not self.warm:
            self.warm_up(img)
        h, w = img.shape[:2]
        rows, decoded = [], []
        for c in self.codecs:
            for p in c.points():
                t0 = time.perf_counter()
                data = c.compress(img, p)
                t1 = time.perf_counter()
                rec = c.decompress(data)
                t2 = time.perf_counter()
                rows.append({"image": path.name, "codec": c.name, "param": p, "width": w, "height": h,
                             "bytes": len(data), "bpp": bpp(data, h, w), "encode_s": t1 - t0, "decode_s": t2 - t1})
                decoded.append(rec)
        with torch_threads(1):  # after the timed coding, so codecs keep the caller's thread count
            for row, rec in zip(rows, decoded):
                row.update(image_metrics(img, rec))
        return rows


_WORKER: _Evaluator | None = None


def _init_worker(codecs: Sequence[ImageCodec], max_size: int | None) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    _WORKER = _Evaluator(codecs, max_size)


def _work(path: Path) -> list[dict]:
    assert _WORKER is not None
    return _WORKER(path)


def _run_all(paths: list[Path], codecs: list, max_size, jobs: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(paths), desc="evaluating", unit="img", disable=not progress, file=sys.stderr)
    by_image: dict[Path, list[dict]] = {}
    try:
        if jobs <= 1:
            ev = _Evaluator(codecs, max_size)
            for p in paths:
                by_image[p] = ev(p)
                bar.update(1)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # spawn: forking a process whose torch thread pools are running can deadlock
            with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=mp.get_context("spawn"),
                                     initializer=_init_worker, initargs=(codecs, max_size)) as pool:
                futures = {pool.submit(_work, p): p for p in paths}
                for f in as_completed(futures):
                    by_image[futures[f]] = f.result()
                    bar.update(1)
    finally:
        bar.close()
    return [r for p in paths for r in by_image[p]]


# --------------------------------------------------------------------------- entry point
def default_codecs(
    presets: list[str] | None = None,
    weights: Sequence[str | os.PathLike] = (),
    baselines: str | Sequence[str] | None = None,
    *,
    log: Callable[[str], None] | None = _stderr,
) -> list:
    """Wavelatent codecs (shipped RGB presets by default, plus weights files) and baselines
    (JPEG, WebP, AVIF, and JPEG XL where installed, by default)."""
    return [*load_wavelatent_codecs(presets, list(weights), log=log), *make_baselines(baselines, log=log)]


def evaluate(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    codecs: Sequence[ImageCodec] | None = None,
    *,
    jobs: int = 1,
    progress: bool = True,
    limit: int | None = None,
    max_size: int | None = None,
    reference: str | os.PathLike | None = None,
    anchor: str | list[str] | None = ("jpeg", "webp", "avif"),
    bd_method: str = "cubic",
    crop_size: int = 192,
    force: bool = True,
    log: Callable[[str], None] | None = _stderr,
) -> EvaluationResult:
    """Evaluate ``codecs`` (default: :func:`default_codecs`) on the images under ``folder``.

    For every image and codec point: bpp from the real bytes, PSNR (RGB and BT.601 Y), MS-SSIM,
    encode and decode seconds. Writes into ``out_dir``: ``<codec>.json`` (CompressAI schema,
    averages over images per point), ``results.csv`` (every row), ``rd_psnr`` and ``rd_msssim``
    plots (PNG and SVG; the ``*.json`` curves of ``reference`` overlaid dashed), ``bd.json``
    (BD measures against each codec of ``anchor`` that was evaluated), crops beside ``report.html``.

    ``jobs > 1``: a process pool over images, one torch thread per worker (timings then share the
    CPU). ``limit``: the first N images; ``max_size``: centre-crop each image to at most that.
    ``force=False`` refuses to write into a folder that already holds a report.
    """
    from . import report

    if jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    if max_size is not None and max_size < 1:
        raise InputError(f"--max-size must be positive, got {max_size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if not force and (out / "report.html").exists():
        raise OutputExistsError(f"{out / 'report.html'} exists; use --force to overwrite")
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        if log is not None:
            log(msg)

    refs = report.load_references(reference, log=note) if reference is not None else []
    paths = find_images(folder, limit)
    codecs = list(codecs) if codecs is not None else default_codecs(log=note)
    if not codecs:
        raise InputError("no codecs to evaluate")
    unique_names(codecs)
    names = [c.name for c in codecs]
    anchors = [anchor] if isinstance(anchor, str) else list(anchor or [])
    missing = [a for a in anchors if a not in names]
    if missing:
        note(f"anchor(s) {', '.join(missing)} not among the codecs ({', '.join(names)}): no BD table against them")
    anchors = [a for a in anchors if a in names]

    t0 = time.perf_counter()
    rows = _run_all(paths, codecs, max_size, jobs, progress)
    seconds = time.perf_counter() - t0
    few = sorted({(r["image"], r["ms_ssim_scales"]) for r in rows if r["ms_ssim_scales"] < 5})
    if few:
        note(f"MS-SSIM: {len(few)} image(s) too small for 5 scales (short side <= 160 px) use fewer scales "
             f"with renormalised weights, or NaN below 11 px: " + ", ".join(f"{i} ({s})" for i, s in few[:6])
             + (" ..." if len(few) > 6 else ""))

    curves = {c.name: report.summarize(c, rows, len(paths), max_size) for c in codecs}
    bd = []
    if anchors:
        from .bd import bd_table

        for a in anchors:  # one table per anchor: every codec against JPEG, WebP, AVIF ...
            bd += bd_table({n: d["results"] for n, d in curves.items()}, a, method=bd_method)

    out.mkdir(parents=True, exist_ok=True)
    files = report.write_json(out, curves)
    files["csv"] = report.write_csv(out / "results.csv", rows, CSV_COLUMNS)
    from .summary import write_summary

    files["summary"] = write_summary(out / "summary.md", curves, rows)
    if bd:
        files["bd"] = report.write_bd(out / "bd.json", bd)
    subtitle = f"{len(paths)} image(s) from {Path(folder).name}"
    if max_size:
        subtitle += f", centre crops of {max_size} px"
    if refs:
        subtitle += "; dashed: published results (other images, settings)"
    files.update(report.plot_rd(out, curves, refs, kinds={c.name: getattr(c, "kind", "other") for c in codecs},
                                subtitle=subtitle))
    crops = _crops(out, paths[0], codecs, rows, max_size, crop_size, note)
    settings = {
        "images": f"{len(paths)} from {folder}" + (f" (first {limit})" if limit else ""),
        "max size": f"centre crop to {max_size} px" if max_size else "full images",
        "jobs": str(jobs),
        "wall time": f"{seconds:.1f} s",
        "BD": (f"against {', '.join(anchors)}, {bd_method} interpolation (see wavelatent.evaluate.bd)" if bd else "none"),
    }
    files["html"] = report.write_html(out / "report.html", curves, bd, crops, refs, settings, notes, files)
    return EvaluationResult(out, rows, curves, bd, files, notes)


def _crops(out: Path, path: Path, codecs: list, rows: list[dict], max_size, size: int, note) -> list[dict]:
    """Crops of the first image: original, the first wavelatent codec at its default quality, and
    JPEG and WebP at the point whose bpp on this image is closest to it (and TAEF2 png8 if evaluated)."""
    from ..io.images import save_image

    main = next((c for c in codecs if getattr(c, "kind", "") == "wavelatent"), None)
    if main is None:
        note("no wavelatent codec evaluated: no side-by-side crops")
        return []
    for old in out.glob("crop_*.png"):  # crops of an earlier run in the same folder
        old.unlink()
    img = load_rgb(path, max_size)
    mine = [r for r in rows if r["image"] == path.name]

    def row(codec: str, param) -> dict:
        return next(r for r in mine if r["codec"] == codec and r["param"] == param)

    target = row(main.name, main.default_point)["bpp"]
    picks = [(main, main.default_point)]
    for name in ("jpeg", "webp", "taef2-png8"):
        c = next((c for c in codecs if c.name == name), None)
        if c is not None:
            best = min(c.points(), key=lambda p: abs(row(name, p)["bpp"] - target))
            picks.append((c, best))
    h, w = img.shape[:2]
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2, (w - cw) // 2
    window = (slice(top, top + ch), slice(left, left + cw))
    crops = [{"label": f"original ({path.name}, {cw}x{ch} crop)", "file": "crop_original.png"}]
    save_image(np.ascontiguousarray(img[window]), out / crops[0]["file"], force=True)
    for c, p in picks:
        rec = c.decompress(c.compress(img, p))
        r = row(c.name, p)
        file = f"crop_{c.name}_q{p}.png"
        save_image(np.ascontiguousarray(rec[window]), out / file, force=True)
        crops.append({"label": f"{c.name} q{p}: {r['bpp']:.3f} bpp, {r['psnr_rgb']:.2f} dB", "file": file})
    return crops
