"""Machine perceptual quality: what each codec's compression costs a frozen classifier.

After Jacobellis et al. 2024 ("Machine Perceptual Quality"): a classifier trained once on clean
data (:mod:`wavelatent.evaluate.classifier`) is frozen; every codec at every rate point codes every
validation item *as stored* (full-resolution images, whole clips); the classifier's own input
convention (resize and centre crop, or centring) follows decoding. Per codec point:

* rate from the real bytes each codec returns (headers included): bpp per image / kbps per clip,
  averaged over items;
* top-1 of the classifier on the decoded items and its drop from the clean top-1 (the ceiling);
  an item a codec fails on is recorded (``meta.failed_items``) and counted as misclassified;
* distortion: PSNR (RGB) and MS-SSIM for images, SNR and log-spectral distance for audio
  (identical signals count as 100 dB), and the feature distance: the mean over items of
  ``||f(decoded) - f(clean)|| / ||f(clean)||`` in the classifier's penultimate layer.

Across every codec point, the Spearman rank correlation of each metric with the top-1 drop says
which metric tracks what the machine loses. Each codec's JSON is written as soon as it is done;
a rerun skips codecs whose JSON matches (same items, classifier and points), so a killed run
resumes. Outputs in OUT: ``<codec>.json``, ``results.csv`` (one row per codec point),
``correlation.json``, ``summary.md`` (rate thresholds within 1 and 5 points of clean),
``accuracy.png``/``.svg`` and ``report.html``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..io.files import atomic_write_json
from ..provenance import provenance
from .classifier import Classifier, ClassifierError
from .report import finite

CAP_DB = 100.0  # PSNR / SNR of identical (or nearly identical) signals
# quality sweeps including severe points (<= 0.1 bpp where the format reaches it)
MPQ_QUALITIES = {
    "jpeg": (1, 2, 5, 10, 15, 20, 30, 50, 75, 90),
    "webp": (0, 2, 5, 10, 20, 30, 50, 75, 90),
    "avif": (0, 5, 10, 20, 30, 40, 50, 65, 80),
}
RESIZE_FACTORS = (8, 6, 4, 3, 2)
AUDIO_RESAMPLE_RATES = (2000, 4000)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Item:
    name: str
    label: int
    signal: np.ndarray  # uint8 [H, W, 3] image, or float32 [L, 1] clip
    rate: int = 0  # audio sample rate


@dataclass
class MPQResult:
    """What :func:`evaluate_classify` measured and wrote."""

    out_dir: Path
    clean_top1: float
    curves: dict[str, dict]
    correlation: dict[str, dict]
    thresholds: list[dict]
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Modality:
    """What differs between images and audio: the rate unit and the distortion metrics."""

    name: str
    rate_key: str  # "bpp" or "kbps"
    metrics: tuple[tuple[str, str, int], ...]  # (result key, label, sign: +1 when higher means more distortion)


IMAGE = Modality("image", "bpp", (("psnr-rgb", "PSNR-RGB", -1), ("ms-ssim-rgb", "MS-SSIM", -1),
                                  ("feature_distance", "feature distance", 1)))
AUDIO = Modality("audio", "kbps", (("snr", "SNR", -1), ("lsd", "log-spectral distance", 1),
                                   ("feature_distance", "feature distance", 1)))


# --------------------------------------------------------------------------- data
def load_image_split(folder: str | Path, classes: Sequence[str], limit_per_class: int | None = None,
                     progress: bool = True) -> list[Item]:
    """``folder/<class>/*`` images as stored (RGB uint8, gray replicated), labelled by the
    classifier's ``classes``. A missing or empty folder raises :class:`InputError`; folder classes
    that differ from the classifier's raise :class:`ClassifierError`."""
    from tqdm import tqdm

    from ..data.cache import list_sources
    from .run import load_rgb

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such split folder (expected <class>/<image> folders)")
    try:
        paths, labels, found = list_sources(folder, "from-folders")
    except InputError as e:
        raise InputError(f"{folder}: {e}") from None
    if not paths:
        raise InputError(f"{folder}: no images in class folders")
    if list(found) != list(classes):
        raise ClassifierError(f"{folder} holds classes {list(found)[:12]} but the classifier has {len(classes)}: "
                              f"{list(classes)[:12]}")
    chosen, count = [], {}
    for p, lab in zip(paths, labels):
        if limit_per_class is None or count.get(lab, 0) < limit_per_class:
            chosen.append((p, int(lab)))
            count[lab] = count.get(lab, 0) + 1
    return [Item(p.relative_to(folder).as_posix(), lab, load_rgb(p))
            for p, lab in tqdm(chosen, desc="reading", unit="img", disable=not progress, leave=False, file=sys.stderr)]


def load_fsdd_test(folder: str | Path, classes: Sequence[str], rate: int, limit_per_class: int | None = None) -> list[Item]:
    """The spoken-digit test split (recordings ``{digit}_{speaker}_{n}.wav`` with ``n`` 0-4) as
    float32 clips ``[L, 1]``; refuses other rates or channel counts."""
    from ..data.audio import fsdd_split
    from ..io.audio import read_audio

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder of spoken-digit recordings")
    test = fsdd_split(folder, limit_per_class)["test"]
    if not test:
        raise InputError(f"{folder}: no test-split recordings ({{digit}}_{{speaker}}_{{0-4}}.wav)")
    if [str(d) for d in range(10)] != list(classes):
        raise ClassifierError(f"the spoken-digit classes are 0-9; the classifier has {list(classes)[:12]}")
    items = []
    for p, d in test:
        x, info = read_audio(p)
        if info.sample_rate != rate or info.channels != 1:
            raise InputError(f"{p}: expected {rate} Hz mono, got {info.sample_rate} Hz, {info.channels} channels")
        items.append(Item(p.name, d, np.ascontiguousarray(x, np.float32), rate))
    return items


# --------------------------------------------------------------------------- codecs
def default_image_codecs(presets: list[str] | None = None, baselines: list[str] | None = None, weights=(), *,
                         log: Callable[[str], None] | None = _stderr) -> list:
    """Every shipped image preset and the ``weights`` files (gray ones wrapped by
    :class:`~.codecs.GrayToRGB`) at every quality, and the baselines (default: JPEG, WebP, AVIF over
    :data:`MPQ_QUALITIES`, TAEF2 png8, resolution reduction)."""
    from .codecs import ResizeCodec, baseline_available, load_wavelatent_codecs, make_baseline

    out = load_wavelatent_codecs(presets, list(weights), log=log, gray=True)
    for b in (["jpeg", "webp", "avif", "taef2-png8", "resize"] if baselines is None else baselines):
        if b == "resize":
            out.append(ResizeCodec(factors=RESIZE_FACTORS))
            continue
        if baselines is None:
            ok, why = baseline_available(b)
            if not ok:
                if log is not None:
                    log(f"skipping baseline {b}: {why}")
                continue
        out.append(make_baseline(b, MPQ_QUALITIES.get(b)))
    return out


class ResampleAudioCodec:
    """Sample-rate reduction, the no-codec audio baseline: resampled to the point's rate
    (``resample_poly``), stored as 16-bit FLAC at that rate after a 4-byte header (the source rate,
    uint32 big-endian), resampled back to the source rate."""

    kind = "no-codec"

    def __init__(self, rates: Sequence[int] = AUDIO_RESAMPLE_RATES, name: str = "resample") -> None:
        import soundfile as sf

        self.rates = tuple(int(r) for r in rates)
        self.name = name
        self.description = (f"sample-rate reduction: resample_poly down, 16-bit FLAC at the low rate (+4-byte rate "
                            f"header), resample_poly back; libsndfile {sf.__libsndfile_version__}")

    def points(self) -> list[int]:
        return list(self.rates)

    def coding_rate(self, rate: int) -> int:
        return rate

    def compress(self, x: np.ndarray, rate: int, param: Any) -> bytes:
        import io

        import soundfile as sf

        from ..io.audio import resample

        y = np.clip(resample(np.asarray(x, np.float32), rate, int(param)), -1.0, 1.0)
        buf = io.BytesIO()
        sf.write(buf, y, int(param), format="FLAC", subtype="PCM_16")
        return int(rate).to_bytes(4, "big") + buf.getvalue()

    def decompress(self, data: bytes) -> tuple[np.ndarray, int]:
        import io

        import soundfile as sf

        from ..io.audio import resample

        source = int.from_bytes(data[:4], "big")
        y, r = sf.read(io.BytesIO(data[4:]), dtype="float32", always_2d=True)
        return resample(y, r, source), source


def default_audio_codecs(presets: list[str] | None = None, baselines: list[str] | None = None) -> list:
    """``audio-mono-2x`` at every quality, FLAC, Opus, Vorbis, MP3 and resampling to 2 / 4 kHz."""
    from .audio import WavelatentAudioCodec, make_baselines

    out: list = [WavelatentAudioCodec(p) for p in (["audio-mono-2x"] if presets is None else presets)]
    names = ["flac", "opus", "vorbis", "mp3", "resample"] if baselines is None else list(baselines)
    # levels, not target kbps: a sweep from severe to transparent on clips too short to aim at a rate
    out += make_baselines([b for b in names if b != "resample"], targets=False)
    if "resample" in names:
        out.append(ResampleAudioCodec())
    return out


# --------------------------------------------------------------------------- coding one item
def _code_image(codec, item: Item, param) -> tuple[np.ndarray, int, dict]:
    from .metrics import ms_ssim, psnr

    img = item.signal
    data = codec.compress(img, param)
    rec = np.asarray(codec.decompress(data))
    if rec.ndim == 2:
        rec = np.repeat(rec[:, :, None], 3, axis=2)
    if rec.shape != img.shape:
        raise InputError(f"decoded shape {rec.shape} for an image of shape {img.shape}")
    h, w = img.shape[:2]
    m = {"bpp": 8.0 * len(data) / (h * w), "psnr-rgb": min(psnr(img, rec), CAP_DB), "ms-ssim-rgb": ms_ssim(img, rec)[0]}
    return rec, len(data), m


def _code_audio(codec, item: Item, param) -> tuple[np.ndarray, int, dict]:
    from .audio import log_spectral_distance, round_trip, snr

    x, rate = item.signal, item.rate
    y, data, *_ = round_trip(codec, x, rate, param)
    m = {"kbps": 8 * len(data) / (len(x) / rate) / 1000, "snr": min(snr(x, y), CAP_DB),
         "lsd": log_spectral_distance(x, y, rate)}
    return y, len(data), m


# --------------------------------------------------------------------------- the run
def _items_sha(items: list[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.name}\t{it.label}\t{it.signal.shape}\n".encode())
    return h.hexdigest()[:16]


def _feature_distance(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per item ``||g - f|| / ||f||`` of penultimate features ``[N, D]``."""
    num = np.linalg.norm(g.astype(np.float64) - f, axis=1)
    return num / np.maximum(np.linalg.norm(f.astype(np.float64), axis=1), 1e-12)


def evaluate_classify(
    data: str | Path,
    out_dir: str | Path,
    classifier: Classifier,
    codecs: Sequence[Any] | None = None,
    *,
    limit_per_class: int | None = None,
    items: list[Item] | None = None,
    jobs: int = 1,
    chunk: int = 250,
    force: bool = False,
    progress: bool = True,
    command: str | None = None,
    log: Callable[[str], None] | None = _stderr,
) -> MPQResult:
    """Run the machine-perceptual-quality evaluation (see the module docstring).

    ``data``: an image split folder (``<class>/<image>``, e.g. Imagenette ``val``) for an image
    classifier, or the spoken-digit folder for an audio one (its test split, ``n`` 0-4).
    ``codecs``: default :func:`default_image_codecs` / :func:`default_audio_codecs`.
    ``items``: already loaded items instead of reading ``data``. ``force``: redo finished codecs.
    ``jobs > 1``: a process pool (one torch thread each) over tasks of ``chunk`` items of one codec
    point; the results do not depend on ``jobs``.
    """
    from tqdm import tqdm

    from .codecs import unique_names

    cfg = classifier.config
    mod = IMAGE if cfg.modality == "image" else AUDIO
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        if log is not None:
            log(msg)

    if jobs < 1 or chunk < 1:
        raise InputError("jobs and chunk must be positive")
    given_items = items is not None
    if items is None:
        items = (load_image_split(data, cfg.classes, limit_per_class, progress) if mod is IMAGE
                 else load_fsdd_test(data, cfg.classes, int(cfg.rate), limit_per_class))
    if not items:
        raise InputError(f"{data}: no items to evaluate")
    if codecs is None:
        codecs = default_image_codecs(log=note) if mod is IMAGE else default_audio_codecs()
    codecs = list(codecs)
    if not codecs:
        raise InputError("no codecs to evaluate")
    unique_names(codecs)
    labels = np.array([it.label for it in items], np.int64)
    t0 = time.perf_counter()
    clean_pred, clean_feat = classifier.run(np.stack([classifier.window(it.signal) for it in items]))
    clean_top1 = float(np.mean(clean_pred == labels))
    if limit_per_class is None and cfg.val_top1 is not None and cfg.val_samples == len(items) \
            and abs(clean_top1 - cfg.val_top1) > 1e-6:  # older files: float32
        note(f"clean top-1 {100 * clean_top1:.2f} % differs from the classifier's recorded validation top-1 "
             f"{100 * cfg.val_top1:.2f} % on the same number of items (another split or preprocessing?)")
    meta_key = {"items": len(items), "items_sha": _items_sha(items), "classifier_sha256": classifier.sha256}
    out.mkdir(parents=True, exist_ok=True)
    curves: dict[str, dict] = {}
    todo = []
    for c in codecs:
        doc = None if force else _load_done(out / f"{c.name}.json", meta_key, c)
        if doc is not None:
            curves[c.name] = doc
            if log is not None:
                log(f"{c.name}: done before, skipped")
        else:
            todo.append(c)
    done_tasks: dict[str, dict] = {c.name: {} for c in todo}
    chunks = [(a, min(a + chunk, len(items))) for a in range(0, len(items), chunk)]
    tasks = [(ci, p, a, b) for ci, c in enumerate(codecs) if c in todo for p in c.points() for a, b in chunks]
    bar = tqdm(total=sum(b - a for _, _, a, b in tasks), desc="codec points", unit="item",
               disable=not progress, file=sys.stderr)

    def finish(c) -> None:
        parts = done_tasks[c.name]
        doc = _assemble(c, [(p, [parts[(p, a)] for a, _ in chunks]) for p in c.points()], labels, clean_top1,
                        meta_key, mod)
        atomic_write_json(out / f"{c.name}.json", doc)
        curves[c.name] = doc
        r = doc["results"]
        if log is not None:
            log(f"{c.name}: " + ", ".join(f"{b:.3g} {mod.rate_key} {100 * t:.1f} %"
                                          for b, t in zip(r[mod.rate_key], r["top1"]) if b is not None))
        for f in doc["meta"]["failed_items"][:3]:
            note(f"{c.name} {f['param']} failed on {f['item']}: {f['error']}")
        if doc["meta"]["failed_items"]:
            note(f"{c.name}: {len(doc['meta']['failed_items'])} item(s) failed (counted as misclassified)")

    def collect(task, res) -> None:
        ci, p, a, b = task
        c = codecs[ci]
        done_tasks[c.name][(p, a)] = res
        bar.update(b - a)
        if len(done_tasks[c.name]) == len(c.points()) * len(chunks):
            finish(c)

    try:
        if jobs <= 1 or len(tasks) <= 1:
            _init_worker(items, None, classifier, codecs, clean_feat)
            for t in tasks:
                collect(t, _task(*t))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # workers reload the items from `data` (cheaper than pickling them) unless they were given
            source = None if given_items else (str(data), limit_per_class, mod.name)
            with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=mp.get_context("spawn"),
                                     initializer=_init_worker,
                                     initargs=(items if given_items else None, source, classifier, codecs,
                                               clean_feat)) as pool:
                futures = {pool.submit(_task, *t): t for t in tasks}
                for fut in as_completed(futures):
                    collect(futures[fut], fut.result())
    finally:
        bar.close()
    curves = {c.name: curves[c.name] for c in codecs}
    seconds = time.perf_counter() - t0
    from . import report

    corr = correlations(curves, mod)
    thresholds = rate_thresholds(curves, clean_top1, mod)
    files = {f"json:{n}": out / f"{n}.json" for n in curves}
    files["csv"] = _write_csv(out / "results.csv", curves, mod)
    summary = {"task": "classify", "modality": mod.name, "data": str(data), "items": len(items),
               "limit_per_class": limit_per_class, "clean_top1": clean_top1,
               "classifier": {"file": classifier.source, "sha256": classifier.sha256, "val_top1": cfg.val_top1,
                              "val_samples": cfg.val_samples, "width": cfg.width, "trained": cfg.trained},
               "rate_key": mod.rate_key, "correlation": corr, "thresholds": thresholds, "seconds": seconds,
               "provenance": provenance(command)}
    files["correlation"] = atomic_write_json(out / "correlation.json", summary)
    files["summary"] = out / "summary.md"
    from ..io.files import atomic_write_bytes

    atomic_write_bytes(files["summary"], (summary_markdown(curves, clean_top1, corr, thresholds, mod) + "\n").encode(),
                       force=True)
    try:
        files.update(report.plot_accuracy(out, curves, clean_top1, mod.rate_key,
                                          f"{len(items)} {'images' if mod is IMAGE else 'clips'} from {Path(data).name}"))
    except ImportError:
        note("matplotlib is not installed: no plot")
    settings = {
        "data": f"{len(items)} {'images' if mod is IMAGE else 'clips'} from {data}"
                + (f" (first {limit_per_class} per class)" if limit_per_class else ""),
        "classifier": f"{classifier.source} (sha256 {classifier.sha256[:12]}), its own validation top-1 "
                      + (f"{100 * cfg.val_top1:.2f} %" if cfg.val_top1 is not None else "unknown"),
        "clean top-1": f"{100 * clean_top1:.2f} %",
        "wall time": f"{seconds:.0f} s (this run; resumed codecs not counted)",
    }
    files["html"] = report.write_mpq_html(out / "report.html", curves, clean_top1, corr, thresholds, mod.rate_key,
                                          settings, notes)
    return MPQResult(out, clean_top1, curves, corr, thresholds, files, notes)


def _load_done(path: Path, meta_key: dict, codec) -> dict | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    meta = doc.get("meta", {})
    if doc.get("task") != "classify" or any(meta.get(k) != v for k, v in meta_key.items()):
        return None
    if meta.get("points") != json.loads(json.dumps(list(codec.points()))) or doc.get("description") != codec.description:
        return None
    return doc


_STATE: dict[str, Any] = {}


def _init_worker(items: list[Item] | None, source: tuple | None, classifier: Classifier, codecs: list,
                 clean_feat: np.ndarray) -> None:
    """Per process: the items, the classifier, its clean features (computed once, by the parent) and
    the codecs (one torch thread in pool workers)."""
    if source is not None:
        import torch

        torch.set_num_threads(1)
        data, limit, modality = source
        cfg = classifier.config
        items = (load_image_split(data, cfg.classes, limit, False) if modality == "image"
                 else load_fsdd_test(data, cfg.classes, int(cfg.rate), limit))
    assert items is not None
    _STATE.update(items=items, clean_feat=clean_feat, classifier=classifier, codecs=codecs,
                  code=_code_image if classifier.config.modality == "image" else _code_audio)


def _task(ci: int, param: Any, a: int, b: int) -> dict:
    """Codec ``ci`` at ``param`` on items ``a:b``: per item the prediction (-1: failed), the
    feature distance, bytes and metrics, and the failures."""
    st = _STATE
    codec, items, clf, code = st["codecs"][ci], st["items"], st["classifier"], st["code"]
    windows, ok, rows, failed = [], [], [], []
    for i in range(a, b):
        try:
            rec, n, m = code(codec, items[i], param)
            windows.append(clf.window(rec))
            ok.append(i)
            rows.append({**m, "bytes": n})
        except Exception as e:  # noqa: BLE001  one item's failure is recorded, the run goes on
            failed.append({"param": param, "item": items[i].name, "error": f"{type(e).__name__}: {e}"[:300]})
    pred = np.full(b - a, -1, np.int64)
    fd = np.full(b - a, np.nan)
    if ok:
        p, feat = clf.run(np.stack(windows))
        idx = np.array(ok)
        pred[idx - a] = p
        fd[idx - a] = _feature_distance(st["clean_feat"][idx], feat)
    return {"pred": pred, "fd": fd, "rows": rows, "failed": failed}


def _assemble(codec, parts: list[tuple[Any, list[dict]]], labels: np.ndarray, clean_top1: float, meta_key: dict,
              mod: Modality) -> dict:
    """One codec's JSON document from its per-point, per-chunk task results."""
    keys = [mod.rate_key] + [k for k, _, _ in mod.metrics if k != "feature_distance"]
    res: dict[str, list] = {k: [] for k in [*keys, "bytes", "top1", "top1_drop", "feature_distance", "failures"]}
    failed: list[dict] = []
    for p, chunks in parts:
        pred = np.concatenate([c["pred"] for c in chunks])
        fd = np.concatenate([c["fd"] for c in chunks])
        rows = [r for c in chunks for r in c["rows"]]
        failed += [f for c in chunks for f in c["failed"]]
        top1 = float(np.mean(pred == labels))  # failed items (-1) count as misclassified
        for k in [*keys, "bytes"]:
            vals = np.array([r[k] for r in rows], np.float64)
            vals = vals[np.isfinite(vals)]
            res[k].append(finite(float(vals.mean())) if len(vals) else None)
        res["top1"].append(top1)
        res["top1_drop"].append(clean_top1 - top1)
        res["feature_distance"].append(finite(float(np.nanmean(fd))) if np.isfinite(fd).any() else None)
        res["failures"].append(int(np.sum(pred < 0)))
    return {
        "name": codec.name,
        "description": codec.description,
        "kind": getattr(codec, "kind", "other"),
        "reduction": finite(float(codec.reduction)) if getattr(codec, "reduction", None) else None,
        "task": "classify",
        "clean_top1": clean_top1,
        "results": res,
        "meta": {**meta_key, "points": list(codec.points()), "failed_items": failed,
                 "notes": ("means over items per point; rate from the bytes the codec returned; failed items count as "
                           f"misclassified; PSNR/SNR capped at {CAP_DB:g} dB; feature_distance = mean "
                           "||f(decoded)-f(clean)||/||f(clean)|| in the classifier's penultimate layer")},
    }


def _write_csv(path: Path, curves: dict[str, dict], mod: Modality) -> Path:
    import io

    from ..io.files import atomic_write_bytes

    keys = [mod.rate_key, "bytes", "top1", "top1_drop"] + [k for k, _, _ in mod.metrics] + ["failures"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["codec", "param", *keys])
    for name, doc in curves.items():
        r = doc["results"]
        for i, p in enumerate(doc["meta"]["points"]):
            w.writerow([name, p, *("" if r[k][i] is None else r[k][i] for k in keys)])
    atomic_write_bytes(path, buf.getvalue().encode(), force=True)
    return path


# --------------------------------------------------------------------------- analysis
def correlations(curves: dict[str, dict], mod: Modality) -> dict[str, dict]:
    """Spearman rank correlation of each metric (and the rate) with the top-1 drop over every
    codec point where both are known. ``agreement`` = rho times the metric's sign, so that 1 means
    "more distortion by this metric, larger drop" for every metric."""
    from scipy.stats import spearmanr

    out = {}
    for key, label, sign in (*mod.metrics, (mod.rate_key, mod.rate_key, -1)):
        xs, ys = [], []
        for doc in curves.values():
            r = doc["results"]
            for v, d in zip(r.get(key, []), r["top1_drop"]):
                if v is not None and d is not None:
                    xs.append(v)
                    ys.append(d)
        if len(xs) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1:
            rho, pval = spearmanr(xs, ys)
            out[key] = {"label": label, "rho": float(rho), "p": float(pval), "agreement": float(sign * rho),
                        "points": len(xs)}
        else:
            out[key] = {"label": label, "rho": None, "p": None, "agreement": None, "points": len(xs)}
    return out


def _crossing(rates: list[float], tops: list[float], floor: float) -> tuple[float | None, float | None]:
    """The lowest measured rate from which on every higher-rate point keeps ``top1 >= floor``, and
    the rate where the curve crosses ``floor`` (linear in log rate between that point and the
    highest-rate point below it). ``(None, None)`` if the highest-rate point is below the floor."""
    pts = sorted((r, t) for r, t in zip(rates, tops) if r is not None and r > 0)
    if not pts or pts[-1][1] < floor - 1e-12:
        return None, None
    i = len(pts) - 1
    while i > 0 and pts[i - 1][1] >= floor - 1e-12:
        i -= 1
    measured = pts[i][0]
    if i == 0:
        return measured, None  # every point keeps it: the crossing is below the measured range
    (r0, t0), (r1, t1) = pts[i - 1], pts[i]
    frac = (floor - t0) / (t1 - t0) if t1 != t0 else 1.0
    return measured, float(math.exp(math.log(r0) + frac * (math.log(r1) - math.log(r0))))


def rate_thresholds(curves: dict[str, dict], clean_top1: float, mod: Modality) -> list[dict]:
    """Per codec, the lowest rate keeping top-1 within 1 and within 5 points of clean: measured
    (a point of the sweep, every higher rate also within) and interpolated (log-linear crossing)."""
    out = []
    for name, doc in curves.items():
        r = doc["results"]
        row = {"codec": name, "kind": doc.get("kind"), "max_top1": max(r["top1"]) if r["top1"] else None,
               "min_rate": min((v for v in r[mod.rate_key] if v is not None), default=None)}
        for pts in (1, 5):
            m, x = _crossing(r[mod.rate_key], r["top1"], clean_top1 - pts / 100)
            row[f"within{pts}_measured"], row[f"within{pts}_interp"] = m, x
        out.append(row)
    return out


def summary_markdown(curves: dict[str, dict], clean_top1: float, corr: dict, thresholds: list[dict],
                     mod: Modality) -> str:
    u = mod.rate_key

    def f(v, spec=".3f"):
        return "-" if v is None else format(v, spec)

    lines = [f"Clean top-1: {100 * clean_top1:.2f} % (the ceiling).", "",
             f"| codec | lowest {u} within 1 pt (measured / interpolated) | lowest {u} within 5 pt (measured / "
             f"interpolated) | best top-1 | lowest {u} swept |", "|---|---|---|---|---|"]
    for t in thresholds:
        lines.append(f"| {t['codec']} | {f(t['within1_measured'])} / {f(t['within1_interp'])} | "
                     f"{f(t['within5_measured'])} / {f(t['within5_interp'])} | {f(100 * t['max_top1'], '.1f')} % | "
                     f"{f(t['min_rate'])} |")
    lines += ["", "'-': never within the bound over the sweep (measured), or already within it at the lowest swept "
              "rate (interpolated).", "",
              "| metric | Spearman rho with top-1 drop | agreement (1 = tracks the drop) | points |", "|---|---|---|---|"]
    for v in corr.values():
        lines.append(f"| {v['label']} | {f(v['rho'])} | {f(v['agreement'])} | {v['points']} |")
    return "\n".join(lines)


__all__ = ["IMAGE", "AUDIO", "Item", "MPQResult", "ResampleAudioCodec", "correlations", "default_audio_codecs",
           "default_image_codecs", "evaluate_classify", "load_fsdd_test", "load_image_split", "rate_thresholds"]
