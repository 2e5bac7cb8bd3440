"""``wavelatent learn``: the same small CNN trained on latents and on pixels, same budget each.

Data: ``DATA/train/<class>/*`` and ``DATA/val/<class>/*`` (e.g. ../shared/data/imagenette), or
the Free Spoken Digit Dataset (``DATA/{digit}_{speaker}_{n}.wav``, 8 kHz mono; its official split:
recordings ``n`` 0-4 are the test set, 5-49 training) -- the audio variant is described at the end.

1. Every image is resized (short side to ``size``, 144) and centre-cropped exactly as
   ``wavelatent cache`` does, and kept as uint8 in ``OUT/images-{train,val}.npy`` (reused on a rerun).
2. Each input type (:mod:`wavelatent.learn.inputs`) turns those images into features at its own
   resolution (latent symbols at 1/8, box-shrunk pixels, ...).
3. Training sees random ``crop`` windows (128 px of the 144) at offsets on a ``grid`` of 8 pixels
   (one latent position; 2 pixels of a 32 px input) and horizontal flips with probability 1/2;
   validation takes the centre window. A flip is exact for every input: pixel features are
   reversed, other inputs (latents, whose reversal is not the latent of the mirrored image, see
   :mod:`wavelatent.data.flip`) are computed a second time from the mirrored training images.
   Inputs are standardized per channel with the training set's statistics.
4. :class:`~wavelatent.learn.models.SmallCNN` with the same width, epochs, batch size, AdamW,
   one-epoch warmup then cosine learning rate, label smoothing, and seed for every input.

Each input's result goes to ``OUT/runs/<input>.json`` as soon as it is trained; a rerun skips
inputs whose result exists with the same settings and the same features (``--force`` redoes
them). ``OUT/results.json`` collects them (top-1 on val, seconds per training epoch, bytes per
sample raw and entropy-coded, MACs), ``OUT/results.md`` is the table and ``OUT/results.png`` the plot.

Spoken digits: each recording is centred in ``size`` samples (8192, zero padded; the few longer
ones lose their ends), training takes random ``crop`` windows (7680) at offsets on a ``grid`` of
32 samples (one latent step of ``audio-mono-2x``), no flips; the CNN is the 1-D version of the
same family (kernel 5, body at ``crop / 32`` steps) and the inputs are
:data:`~wavelatent.learn.inputs.DEFAULT_AUDIO_INPUTS` (2x latents vs 4 kHz samples of equal size).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from .inputs import AUDIO_RATE, DEFAULT_AUDIO_INPUTS, DEFAULT_INPUTS, INPUT_TYPES, InputType, get_input

__all__ = ["LearnOptions", "learn", "prepare_split", "prepare_fsdd", "TASKS"]

RESULTS_VERSION = 1
FSDD_NAME = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)\.wav$")


@dataclass(frozen=True)
class Task:
    """What a kind of data set implies: defaults, geometry and model shape."""

    name: str
    modality: str
    inputs: tuple[str, ...]
    size: int
    crop: int
    grid: int
    body_factor: int  # the CNN body runs at crop / body_factor (the latent resolution)
    kernel: int
    flips: bool


TASKS = {
    "images": Task("images", "image", DEFAULT_INPUTS, 144, 128, 8, 8, 3, True),
    "spoken-digits": Task("spoken-digits", "audio", DEFAULT_AUDIO_INPUTS, 8192, 7680, 32, 32, 5, False),
}


@dataclass
class LearnOptions:
    data: str
    out: str
    inputs: Sequence[str] | None = None  # None: the task's defaults
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    width: int = 32
    stem_layers: int | None = None
    size: int | None = None  # None: the task's default (144 px / 8192 samples)
    crop: int | None = None  # 128 px / 7680 samples
    grid: int | None = None  # 8 px / 32 samples
    seed: int = 0
    limit_per_class: int | None = None
    threads: int | None = None
    task: str = "classify"  # or "colorize" (images only, see wavelatent.learn.colorize)
    force: bool = False
    progress: bool = True

    def settings(self) -> dict:
        """What a result depends on (a rerun with other settings redoes the run)."""
        skip = {"out", "inputs", "threads", "force", "progress", "task"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, size, size, 3], or int16 clips [N, size]
    labels: np.ndarray  # int64 [N]
    sources: list[str]
    source_bytes: list[int] = field(default_factory=list)


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _atomic_json(path: Path, obj) -> None:
    from ..io.files import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode(), force=True)


def prepare_split(folder: Path, out: Path, name: str, size: int, classes: list[str] | None,
                  limit_per_class: int | None, progress: bool) -> tuple[Split, list[str]]:
    """Decode, resize and centre-crop a split once; cached as ``OUT/images-<name>.npy`` + ``.json``."""
    from tqdm import tqdm

    from ..data.cache import list_sources, prepare_image
    from ..io.files import atomic_write_bytes

    paths, labels, found = list_sources(folder, "from-folders")
    if classes is not None and found != classes:
        raise InputError(f"{folder}: classes {found} differ from the training classes {classes}")
    if limit_per_class is not None:
        keep, count = [], {}
        for p, lab in zip(paths, labels):
            if count.get(lab, 0) < limit_per_class:
                keep.append((p, lab))
                count[lab] = count.get(lab, 0) + 1
        paths, labels = [p for p, _ in keep], [lab for _, lab in keep]
    meta = {
        "size": size,
        "classes": found,
        "sources": [p.relative_to(folder).as_posix() for p in paths],
        "source_bytes": [p.stat().st_size for p in paths],
        "labels": [int(v) for v in labels],
    }
    npy, js = out / f"images-{name}.npy", out / f"images-{name}.json"
    if npy.is_file() and js.is_file():
        try:
            if json.loads(js.read_text()) == meta:
                images = np.load(npy, allow_pickle=False)
                return Split(images, np.array(labels, np.int64), meta["sources"], meta["source_bytes"]), found
        except (OSError, ValueError):
            pass
    images = np.stack([prepare_image(p, size, 3) for p in tqdm(paths, desc=f"reading {name}", disable=not progress,
                                                                 leave=False, unit="img")])
    buf = io.BytesIO()
    np.lib.format.write_array(buf, images, allow_pickle=False)
    atomic_write_bytes(npy, buf.getvalue(), force=True)
    _atomic_json(js, meta)
    return Split(images, np.array(labels, np.int64), meta["sources"], meta["source_bytes"]), found


def find_task(data: Path) -> str:
    """``"images"`` for ``DATA/{train,val}/`` class folders, ``"spoken-digits"`` for FSDD recordings."""
    if (data / "train").is_dir() and (data / "val").is_dir():
        return "images"
    if data.is_dir() and any(FSDD_NAME.match(p.name) for p in data.iterdir()):
        return "spoken-digits"
    raise InputError(f"{data}: expected train/<class>/* and val/<class>/* folders, or spoken-digit recordings "
                     "named {digit}_{speaker}_{n}.wav")


def prepare_fsdd(folder: Path, size: int, limit_per_class: int | None, progress: bool) -> tuple[Split, Split]:
    """The spoken-digit recordings as int16 clips ``[N, size]`` (centred, zero padded), split as
    FSDD's README says: ``n`` 0-4 test, the rest training. Refuses other rates, channels or widths."""
    from tqdm import tqdm

    from ..data.audio import fit_length
    from ..io.audio import read_audio

    found = sorted((int(m[1]), m[2], int(m[3]), p) for p in folder.iterdir() if (m := FSDD_NAME.match(p.name)))
    parts: dict[str, list] = {"train": [], "test": []}
    count: dict[tuple[str, int], int] = {}
    for digit, _, n, p in found:
        which = "test" if n < 5 else "train"
        if limit_per_class is not None:
            if count.get((which, digit), 0) >= limit_per_class:
                continue
            count[(which, digit)] = count.get((which, digit), 0) + 1
        parts[which].append((p, digit))
    splits = []
    for which in ("train", "test"):
        clips = np.zeros((len(parts[which]), size), np.int16)
        for i, (p, _) in enumerate(tqdm(parts[which], desc=f"reading {which}", disable=not progress, leave=False,
                                        unit="clip")):
            x, info = read_audio(p)  # typed errors, frame limits
            if info.sample_rate != AUDIO_RATE or info.channels != 1:
                raise InputError(f"{p}: expected {AUDIO_RATE} Hz mono, got {info.sample_rate} Hz with "
                                 f"{info.channels} channels")
            pcm = np.clip(np.round(x[:, 0].astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
            clips[i] = fit_length(pcm, size)
        splits.append(Split(clips, np.array([d for _, d in parts[which]], np.int64),
                            [p.name for p, _ in parts[which]], [p.stat().st_size for p, _ in parts[which]]))
    if not len(splits[0].labels) or not len(splits[1].labels):
        raise InputError(f"{folder}: the recordings give an empty training or test split")
    return splits[0], splits[1]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "input"


class _Features:
    """Features of one split at stored resolution, with the window geometry in feature units."""

    def __init__(self, spec: InputType, split: Split, opts: LearnOptions, mirror: bool = False) -> None:
        t0 = time.perf_counter()
        x = np.asarray(spec.features(split.images))
        self.seconds = time.perf_counter() - t0
        # flips: where reversing the features is not exact, the features of the mirrored images
        # (computed on the first flipped batch: a rerun that skips this input never pays for them)
        self._spec, self._images = spec, split.images
        self._mirrored: np.ndarray | None = None
        self.mirror_seconds = 0.0
        self.exact_reversal = spec.reversible
        self.flip_kind = "none" if not mirror else "reversed" if spec.reversible else "mirrored images"
        self.dims = 2 if spec.modality == "image" else 1
        if x.ndim != 2 + self.dims or x.shape[0] != len(split.images) or (self.dims == 2 and x.shape[2] != x.shape[3]):
            raise InputError(f"{spec.name}: features must be {'[N, C, h, h]' if self.dims == 2 else '[N, C, l]'}, "
                             f"got {x.shape}")
        h = x.shape[2]
        f = opts.size // h if h else 0
        if not h or f * h != opts.size or opts.crop % f or opts.grid % f or ((opts.size - opts.crop) // 2) % f:
            unit = "px images" if self.dims == 2 else "sample clips"
            raise InputError(
                f"{spec.name}: features {h} wide for {opts.size} {unit}: the size, crop ({opts.crop}), grid "
                f"({opts.grid}) and centre offset must all be multiples of the factor"
            )
        self.x, self.factor, self.scale = x, f, spec.scale
        self.crop, self.grid = opts.crop // f, opts.grid // f
        self.centre = (opts.size - opts.crop) // 2 // f
        self.positions = (h - self.crop) // self.grid + 1

    @property
    def mirrored(self) -> np.ndarray:
        """Features of the horizontally mirrored images (computed once, 256 images at a time)."""
        if self._mirrored is None:
            t0 = time.perf_counter()
            self._mirrored = np.concatenate([
                np.asarray(self._spec.features(np.ascontiguousarray(self._images[i : i + 256, :, ::-1])))
                for i in range(0, len(self._images), 256)
            ])
            if self._mirrored.shape != self.x.shape:
                raise InputError(f"{self._spec.name}: features of mirrored images have another shape")
            self.mirror_seconds = time.perf_counter() - t0
        return self._mirrored

    def batch(self, idx: np.ndarray, offsets: np.ndarray | None, flips: np.ndarray | None):
        """Float tensor ``[n, C, crop, crop]`` (``[n, C, crop]`` for audio; scaled): samples ``idx``,
        mirrored where ``flips`` (the whole feature map), then cut at ``offsets`` (grid units,
        ``[n, 2]`` or ``[n, 1]``) or the centre."""
        import torch

        x = self.x[idx]
        flips = None if flips is None or not np.any(flips) else np.asarray(flips, bool)
        if flips is not None and not self.exact_reversal:
            x = np.where(flips.reshape(-1, *[1] * (x.ndim - 1)), self.mirrored[idx], x)
        t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32).mul_(self.scale)
        if flips is not None and self.exact_reversal:
            m = torch.from_numpy(flips)
            t[m] = t[m].flip(-1)
        c = self.crop
        if self.dims == 1:
            if offsets is None:
                return t[:, :, self.centre : self.centre + c].contiguous()
            return torch.stack([t[j, :, o * self.grid : o * self.grid + c] for j, (o,) in enumerate(offsets)])
        if offsets is None:
            o = self.centre
            return t[:, :, o : o + c, o : o + c].contiguous()
        g = self.grid
        return torch.stack([t[j, :, oy * g : oy * g + c, ox * g : ox * g + c] for j, (oy, ox) in enumerate(offsets)])


def _fingerprint(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).view(np.uint8).reshape(-1)).hexdigest()[:16]


def train_input(spec: InputType, train: Split, val: Split, n_classes: int, opts: LearnOptions,
                features: tuple[_Features, _Features] | None = None, log: Callable[[str], None] = lambda m: None,
                task: Task = TASKS["images"], keep: dict | None = None) -> dict:
    """Train one SmallCNN on one input type; returns its result record (``opts`` resolved for ``task``).

    ``keep``: a dict that receives the trained ``model`` (eval mode) and the per-channel ``mean``
    and ``std`` (float64 ``[C]``) its inputs were standardized with (for a frozen classifier)."""
    import torch
    import torch.nn.functional as F

    from .models import SmallCNN, count_macs, warmup_cosine

    t0 = time.perf_counter()
    ftr, fval = features or (_Features(spec, train, opts, mirror=task.flips), _Features(spec, val, opts))
    feature_seconds = ftr.seconds + fval.seconds if features else time.perf_counter() - t0
    C = ftr.x.shape[1]
    dims = ftr.dims
    axes = (0, *range(2, 2 + dims))
    scale = spec.scale
    # per-channel statistics of the training features (float64 sums, chunked)
    s1 = np.zeros(C)
    s2 = np.zeros(C)
    for i in range(0, len(ftr.x), 256):
        v = ftr.x[i : i + 256].astype(np.float64) * scale
        s1 += v.sum(axis=axes)
        s2 += (v * v).sum(axis=axes)
    n = ftr.x.size // C
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 1e-12))
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, C, *[1] * dims)
    inv_t = torch.tensor(1.0 / std, dtype=torch.float32).view(1, C, *[1] * dims)

    def to_input(batch: torch.Tensor) -> torch.Tensor:
        return batch.sub_(mean_t).mul_(inv_t)

    torch.manual_seed(opts.seed)
    window = (ftr.crop,) * dims
    body = opts.crop // task.body_factor
    try:
        model = SmallCNN(C, ftr.crop, n_classes, width=opts.width, stem_layers=opts.stem_layers, dims=dims,
                         kernel=task.kernel, body_size=body)
    except ValueError as e:
        raise InputError(f"{spec.name}: {e} (the network body runs at crop / {task.body_factor} = {body}; every "
                         "input's window must be that times a power of two, or smaller)") from None
    macs = count_macs(model, (C, *window))
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    N = len(train.labels)
    steps_per_epoch = math.ceil(N / opts.batch_size)
    sched = warmup_cosine(opt, steps_per_epoch, opts.epochs)
    val_x = to_input(fval.batch(np.arange(len(val.labels)), None, None))
    val_y = torch.from_numpy(val.labels)
    ytr = torch.from_numpy(train.labels)
    history = []
    for epoch in range(opts.epochs):
        rng = np.random.default_rng([opts.seed, epoch])
        perm = rng.permutation(N)
        offsets = rng.integers(0, ftr.positions, size=(N, dims))
        flips = rng.random(N) < 0.5
        if not task.flips:
            flips[:] = False
        model.train()
        t_ep = time.perf_counter()
        loss_sum = correct = 0.0
        for b in range(steps_per_epoch):
            sl = slice(b * opts.batch_size, (b + 1) * opts.batch_size)
            idx = perm[sl]
            xb = to_input(ftr.batch(idx, offsets[sl], flips[sl]))
            yb = ytr[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=opts.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += float((logits.argmax(1) == yb).sum())
        seconds = time.perf_counter() - t_ep
        model.eval()
        t_val = time.perf_counter()
        with torch.inference_mode():
            pred = torch.cat([model(val_x[i : i + 256]).argmax(1) for i in range(0, len(val_x), 256)])
        top1 = float((pred == val_y).float().mean())
        history.append({
            "epoch": epoch + 1, "train_loss": loss_sum / N, "train_top1": correct / N, "val_top1": top1,
            "train_seconds": seconds, "val_seconds": time.perf_counter() - t_val,
        })
        log(f"  {spec.name} epoch {epoch + 1}/{opts.epochs}: loss {loss_sum / N:.3f}, val top-1 {100 * top1:.1f} %, "
            f"{seconds:.1f} s")
    if keep is not None:
        keep.update(model=model.eval(), mean=mean, std=std)
    a = fval.centre * fval.factor
    crops = val.images[:, a : a + opts.crop] if dims == 1 else val.images[:, a : a + opts.crop, a : a + opts.crop]
    if spec.disk_bytes is not None:
        disk = dict(spec.disk_bytes(np.ascontiguousarray(crops)))
    else:
        disk = {"raw": float(val_x[0].numel() * ftr.x.dtype.itemsize), "coded": None, "coded_as": None}
    return {
        "input": spec.name,
        "description": spec.description,
        "shape": [C, *window],
        "values": C * math.prod(window),
        "dtype": ftr.x.dtype.name,
        "bytes_raw": disk.get("raw"),
        "bytes_coded": disk.get("coded"),
        "coded_as": disk.get("coded_as"),
        "top1": history[-1]["val_top1"] if history else None,
        "best_top1": max((h["val_top1"] for h in history), default=None),
        "epoch_seconds": float(np.mean([h["train_seconds"] for h in history])) if history else None,
        "feature_seconds": feature_seconds,
        "mirror_seconds": ftr.mirror_seconds,
        "macs": macs,
        "parameters": params,
        "stem_downsamples": model.stem_downsamples,
        "history": history,
        "fingerprint": _fingerprint(ftr.x),
        "flips": ftr.flip_kind,
    }


def learn(opts: LearnOptions) -> dict:
    """Run the experiment (resuming finished inputs); returns the results document."""
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    data, out = Path(opts.data), Path(opts.out)
    task = TASKS[find_task(data)]
    opts = dataclasses.replace(
        opts, inputs=tuple(task.inputs if opts.inputs is None else opts.inputs),
        **{k: getattr(task, k) if getattr(opts, k) is None else getattr(opts, k) for k in ("size", "crop", "grid")},
    )
    for key in ("epochs", "batch_size", "width", "size", "crop", "grid"):
        if getattr(opts, key) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be positive")
    if opts.crop > opts.size:
        raise InputError(f"--crop ({opts.crop}) must not exceed --size ({opts.size})")
    if opts.task not in ("classify", "colorize"):
        raise InputError(f"--task must be 'classify' or 'colorize', got {opts.task!r}")
    if opts.task == "colorize":
        if task.modality != "image":
            raise InputError("--task colorize takes images (DATA/train/<class>/*, DATA/val/<class>/*)")
        return _colorize(data, out, opts)
    if opts.crop % task.body_factor:
        raise InputError(f"--crop ({opts.crop}) must be a multiple of {task.body_factor} for {task.name}")
    if not opts.inputs:
        raise InputError("no inputs to train on")

    def check(name: str, modality: str) -> None:
        if modality != task.modality:
            raise InputError(f"input {name!r} takes {modality}; {data} holds {task.name} "
                             f"(its inputs: {', '.join(task.inputs)}, ...)")

    for name in opts.inputs:  # registered names first: before any weights are loaded
        if name in INPUT_TYPES:
            check(name, INPUT_TYPES[name].modality)
    specs = [get_input(name, crop=opts.crop) for name in opts.inputs]
    for spec in specs:
        check(spec.name, spec.modality)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda m: _log(m, opts.progress)  # noqa: E731
    t0 = time.perf_counter()
    if task.modality == "audio":
        train, val = prepare_fsdd(data, opts.size, opts.limit_per_class, opts.progress)
        classes = [str(d) for d in range(10)]
    else:
        train, classes = prepare_split(data / "train", out, "train", opts.size, None, opts.limit_per_class,
                                       opts.progress)
        val, _ = prepare_split(data / "val", out, "val", opts.size, classes, opts.limit_per_class, opts.progress)
    log(f"{len(train.labels)} train / {len(val.labels)} {'test' if task.modality == 'audio' else 'val'} "
        f"{'clips' if task.modality == 'audio' else 'images'}, {len(classes)} classes "
        f"({time.perf_counter() - t0:.0f} s to read)")
    settings = opts.settings()
    runs = []
    for spec in specs:
        path = out / "runs" / f"{_slug(spec.name)}.json"
        feats = (_Features(spec, train, opts, mirror=task.flips), _Features(spec, val, opts))
        fp = _fingerprint(feats[0].x)
        if path.is_file() and not opts.force:
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError):
                old = {}
            if (old.get("settings") == settings and old.get("fingerprint") == fp and old.get("version") == RESULTS_VERSION
                    and old.get("flips", "reversed" if task.flips else "none") == feats[0].flip_kind):
                log(f"{spec.name}: done before (top-1 {100 * old['top1']:.1f} %), skipped")
                runs.append(old)
                continue
        log(f"{spec.name}: {spec.description}")
        t_run = time.perf_counter()
        rec = train_input(spec, train, val, len(classes), opts, feats, log, task)
        rec.update(version=RESULTS_VERSION, settings=settings, run_seconds=time.perf_counter() - t_run,
                   threads=torch.get_num_threads())
        _atomic_json(path, rec)
        runs.append(rec)
    doc = {
        "experiment": "classification" if task.modality == "image" else "spoken-digits",
        "data": str(data),
        "classes": classes,
        "train_samples": len(train.labels),
        "val_samples": len(val.labels),
        "source_bytes_per_image": float(np.mean(train.source_bytes + val.source_bytes)),
        "settings": settings,
        "threads": torch.get_num_threads(),
        "runs": runs,
    }
    _atomic_json(out / "results.json", doc)
    (out / "results.md").write_text(results_table(doc) + "\n")
    try:
        plot_results(doc, out / "results.png")
    except ImportError:
        log("matplotlib is not installed: no plot")
    return doc


def _colorize(data: Path, out: Path, opts: LearnOptions) -> dict:
    """``--task colorize``: the stored images of both splits, then :func:`wavelatent.learn.colorize.colorize`."""
    from .colorize import colorize

    out.mkdir(parents=True, exist_ok=True)
    train, classes = prepare_split(data / "train", out, "train", opts.size, None, opts.limit_per_class, opts.progress)
    val, _ = prepare_split(data / "val", out, "val", opts.size, classes, opts.limit_per_class, opts.progress)
    return colorize(train.images, val.images, out, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                    weight_decay=opts.weight_decay, width=opts.width, crop=opts.crop, grid=opts.grid, seed=opts.seed,
                    log=lambda m: _log(m, opts.progress))


def results_table(doc: dict) -> str:
    src = doc.get("source_bytes_per_image")
    lines = [
        f"{doc['train_samples']} train / {doc['val_samples']} val, {len(doc['classes'])} classes; source files "
        f"{src:,.0f} bytes per {'clip' if doc.get('experiment') == 'spoken-digits' else 'image'}" if src else "",
        "",
        "| input | shape | top-1 (best) | s/epoch | bytes raw | bytes coded | MACs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        coded = "-" if r.get("bytes_coded") is None else f"{r['bytes_coded']:,.0f} ({r.get('coded_as')})"
        lines.append(
            f"| {r['input']} | {'x'.join(map(str, r['shape']))} | {100 * r['top1']:.1f} % ({100 * r['best_top1']:.1f}) "
            f"| {r['epoch_seconds']:.1f} | {r['bytes_raw']:,.0f} | {coded} | {r['macs'] / 1e6:.1f} M |"
        )
    return "\n".join(lines)


def plot_results(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = doc["runs"]
    split = "test" if doc.get("experiment") == "spoken-digits" else "val"
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(17, 4.5))
    names = [r["input"] for r in runs]
    tops = [100 * r["top1"] for r in runs]
    bars = a.bar(range(len(runs)), tops, color=[("tab:blue" if "latent" in n else "tab:gray") for n in names])
    for bar, r in zip(bars, runs):
        label = f"{'x'.join(map(str, r['shape']))}\n{r['bytes_raw']:,.0f} B"
        if r.get("bytes_coded"):
            label += f" / {r['bytes_coded']:,.0f} B"
        a.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.5, label, ha="center", va="bottom", fontsize=7)
    a.set_xticks(range(len(runs)), names, rotation=20, fontsize=8)
    a.set_ylabel(f"{split} top-1 (%)")
    a.set_ylim(0, max(tops + [1]) * 1.25)
    a.set_title("same CNN, epochs and augmentation (bytes: raw / coded per sample)", fontsize=9)
    for r in runs:
        b.plot([h["epoch"] for h in r["history"]], [100 * h["val_top1"] for h in r["history"]], marker=".", label=r["input"])
    b.set_xlabel("epoch")
    b.set_ylabel(f"{split} top-1 (%)")
    b.grid(alpha=0.3)
    b.legend(fontsize=8)
    for r in runs:  # what the accuracy costs on disk: entropy-coded bytes where known, else raw
        size = r.get("bytes_coded") or r["bytes_raw"]
        c.scatter([size], [100 * r["top1"]], color="tab:blue" if "latent" in r["input"] else "tab:gray")
        c.annotate(r["input"], (size, 100 * r["top1"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    c.set_xscale("log")
    c.set_xlabel("bytes per sample on disk (entropy-coded; raw where no coder)")
    c.set_ylabel(f"{split} top-1 (%)")
    c.grid(alpha=0.3, which="both")
    c.set_title("accuracy against storage", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    from ..io.files import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue(), force=True)
