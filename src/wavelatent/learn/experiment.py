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

With ``seeds=N`` every input is trained N times (seeds ``seed`` ... ``seed + N - 1``: network
initialisation, batch order, crops and flips) on features computed once. Each run's result goes
to ``OUT/runs/<input>.seed<k>.json`` as soon as it is trained; a rerun skips runs whose result
exists with the same settings and the same features (``--force`` redoes them).
``OUT/results.json`` collects the runs and one row per input (top-1 on val per seed, mean and
standard deviation, seconds per training epoch and training seconds until top-1 first reaches
each of :data:`TIME_LEVELS`, bytes per sample raw and as stored, MACs) with a provenance block;
``OUT/results.md`` is the table, ``OUT/results.png`` the plot, and ``OUT/pareto.json`` /
``OUT/pareto.png`` accuracy against bytes per sample on disk (which rows no other row beats
with fewer bytes and higher mean top-1).

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
from ..io.files import atomic_write_json
from .inputs import AUDIO_RATE, DEFAULT_AUDIO_INPUTS, DEFAULT_INPUTS, INPUT_TYPES, InputType, get_input

__all__ = ["LearnOptions", "learn", "collect", "prepare_split", "prepare_fsdd", "TASKS", "TIME_LEVELS", "summarize",
           "pareto_doc", "seconds_to"]

RESULTS_VERSION = 2
TIME_LEVELS = (0.6, 0.65, 0.67, 0.7)  # top-1 levels whose time to first reach is recorded


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
    seeds: int = 1
    stem: str = "wide"
    device: str = "auto"  # "auto": CUDA where torch sees it, else CPU
    limit_per_class: int | None = None
    threads: int | None = None
    task: str = "classify"  # or "colorize" (images only, see wavelatent.learn.colorize)
    force: bool = False
    progress: bool = True

    def settings(self) -> dict:
        """What a result depends on (a rerun with other settings redoes the run)."""
        skip = {"out", "inputs", "threads", "force", "progress", "task", "seeds", "device"}
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
    atomic_write_json(js, meta)
    return Split(images, np.array(labels, np.int64), meta["sources"], meta["source_bytes"]), found


def find_task(data: Path) -> str:
    """``"images"`` for ``DATA/{train,val}/`` class folders, ``"spoken-digits"`` for FSDD recordings."""
    if (data / "train").is_dir() and (data / "val").is_dir():
        return "images"
    from ..data.audio import FSDD_NAME

    if data.is_dir() and any(FSDD_NAME.match(p.name) for p in data.iterdir()):
        return "spoken-digits"
    raise InputError(f"{data}: expected train/<class>/* and val/<class>/* folders, or spoken-digit recordings "
                     "named {digit}_{speaker}_{n}.wav")


def prepare_fsdd(folder: Path, size: int, limit_per_class: int | None, progress: bool) -> tuple[Split, Split]:
    """The spoken-digit recordings as int16 clips ``[N, size]`` (centred, zero padded), split as
    FSDD's README says: ``n`` 0-4 test, the rest training. Refuses other rates, channels or widths."""
    from tqdm import tqdm

    from ..data.audio import fit_length, fsdd_split
    from ..io.audio import read_audio

    parts = fsdd_split(folder, limit_per_class)
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
                task: Task = TASKS["images"], disk: dict | None = None, keep: dict | None = None) -> dict:
    """Train one SmallCNN on one input type with ``opts.seed``; returns its result record (``opts``
    resolved for ``task``). ``disk``: the bytes per sample measured before (else measured here).

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
    device = resolve_device(opts.device)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, C, *[1] * dims)
    inv_t = torch.tensor(1.0 / std, dtype=torch.float32, device=device).view(1, C, *[1] * dims)

    def to_input(batch: torch.Tensor) -> torch.Tensor:
        return batch.to(device, non_blocking=True).sub_(mean_t).mul_(inv_t)

    torch.manual_seed(opts.seed)
    window = (ftr.crop,) * dims
    body = opts.crop // task.body_factor
    try:
        model = SmallCNN(C, ftr.crop, n_classes, width=opts.width, stem_layers=opts.stem_layers, dims=dims,
                         kernel=task.kernel, body_size=body, stem=opts.stem)
    except ValueError as e:
        raise InputError(f"{spec.name}: {e} (the network body runs at crop / {task.body_factor} = {body}; every "
                         "input's window must be that times a power of two, or smaller)") from None
    macs = count_macs(model, (C, *window))
    params = sum(p.numel() for p in model.parameters())
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    N = len(train.labels)
    steps_per_epoch = math.ceil(N / opts.batch_size)
    sched = warmup_cosine(opt, steps_per_epoch, opts.epochs)
    val_x = to_input(fval.batch(np.arange(len(val.labels)), None, None))
    val_y = torch.from_numpy(val.labels).to(device)
    ytr = torch.from_numpy(train.labels).to(device)
    history = []
    for epoch in range(opts.epochs):
        rng = np.random.default_rng([opts.seed, epoch])
        perm = rng.permutation(N)
        offsets = rng.integers(0, ftr.positions, size=(N, dims))
        flips = rng.random(N) < 0.5
        if not task.flips:
            flips[:] = False
        model.train()
        t_ep, c_ep = time.perf_counter(), time.process_time()
        loss_sum = correct = 0.0
        for b in range(steps_per_epoch):
            sl = slice(b * opts.batch_size, (b + 1) * opts.batch_size)
            idx = perm[sl]
            xb = to_input(ftr.batch(idx, offsets[sl], flips[sl]))
            yb = ytr[torch.from_numpy(idx).to(device)]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=opts.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += float((logits.argmax(1) == yb).sum())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu_seconds = time.perf_counter() - t_ep, time.process_time() - c_ep
        model.eval()
        t_val = time.perf_counter()
        with torch.inference_mode():
            pred = torch.cat([model(val_x[i : i + 256]).argmax(1) for i in range(0, len(val_x), 256)])
        top1 = float((pred == val_y).float().mean())
        history.append({
            "epoch": epoch + 1, "train_loss": loss_sum / N, "train_top1": correct / N, "val_top1": top1,
            "train_seconds": seconds, "train_cpu_seconds": cpu_seconds, "val_seconds": time.perf_counter() - t_val,
        })
        log(f"  {spec.name} epoch {epoch + 1}/{opts.epochs}: loss {loss_sum / N:.3f}, val top-1 {100 * top1:.1f} %, "
            f"{seconds:.1f} s")
    if keep is not None:
        keep.update(model=model.eval(), mean=mean, std=std)
    a = fval.centre * fval.factor
    crops = val.images[:, a : a + opts.crop] if dims == 1 else val.images[:, a : a + opts.crop, a : a + opts.crop]
    if disk is None:
        disk = (dict(spec.disk_bytes(np.ascontiguousarray(crops))) if spec.disk_bytes is not None else
                {"raw": float(val_x[0].numel() * ftr.x.dtype.itemsize), "coded": None, "coded_as": None})
    return {
        "input": spec.name,
        "description": spec.description,
        "shape": [C, *window],
        "values": C * math.prod(window),
        "dtype": ftr.x.dtype.name,
        "bytes_raw": disk.get("raw"),
        "bytes_coded": disk.get("coded"),
        "coded_as": disk.get("coded_as"),
        **({"weights_sha256": disk["weights_sha256"]} if disk.get("weights_sha256") else {}),
        "seed": opts.seed,
        "device": str(device),
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
    if opts.seeds < 1:
        raise InputError("--seeds must be at least 1")
    from .models import STEMS

    if opts.stem not in STEMS:
        raise InputError(f"--stem must be one of {', '.join(STEMS)}, got {opts.stem!r}")
    resolve_device(opts.device)
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
    meta = {
        "experiment": "classification" if task.modality == "image" else "spoken-digits",
        "data": str(data),
        "classes": classes,
        "train_samples": len(train.labels),
        "val_samples": len(val.labels),
        "source_bytes_per_image": float(np.mean(train.source_bytes + val.source_bytes)),
    }
    atomic_write_json(out / "experiment.json", meta)
    from ..provenance import git_commit, machine

    runs = []
    for spec in specs:
        feats = (_Features(spec, train, opts, mirror=task.flips), _Features(spec, val, opts))
        fp = _fingerprint(feats[0].x)
        disk = None  # bytes per sample: measured once per input, on the first run that trains
        for seed in range(opts.seed, opts.seed + opts.seeds):
            o = dataclasses.replace(opts, seed=seed)
            settings = o.settings()
            path = out / "runs" / f"{_slug(spec.name)}.seed{seed}.json"
            if path.is_file() and not opts.force:
                try:
                    old = json.loads(path.read_text())
                except (OSError, ValueError):
                    old = {}
                if (old.get("settings") == settings and old.get("fingerprint") == fp
                        and old.get("version") == RESULTS_VERSION and old.get("flips") == feats[0].flip_kind):
                    log(f"{spec.name} seed {seed}: done before (top-1 {100 * old['top1']:.1f} %), skipped")
                    runs.append(old)
                    continue
            log(f"{spec.name} seed {seed}: {spec.description}")
            t_run = time.perf_counter()
            rec = train_input(spec, train, val, len(classes), o, feats, log, task, disk)
            disk = {"raw": rec["bytes_raw"], "coded": rec["bytes_coded"], "coded_as": rec["coded_as"],
                    "weights_sha256": rec.get("weights_sha256")}
            rec.update(version=RESULTS_VERSION, settings=settings, run_seconds=time.perf_counter() - t_run,
                       threads=torch.get_num_threads(), machine=machine(), commit=git_commit()["git_commit"])
            atomic_write_json(path, rec)
            runs.append(rec)
    return _write_results(out, meta, runs, log)


def _write_results(out: Path, meta: dict, runs: list[dict], log: Callable[[str], None]) -> dict:
    """``OUT/results.{json,md,png}`` and ``OUT/pareto.{json,png}`` from the experiment's ``meta`` and its runs."""
    import torch

    from ..provenance import provenance

    # the data folder may differ between machines holding the same files (its path is listed)
    settings = [{k: v for k, v in r["settings"].items() if k not in ("seed", "data")} for r in runs]
    if any(v != settings[0] for v in settings):
        raise InputError(f"{out}: the runs were made with different settings; collect them in separate folders")
    meta = {**meta, "data_paths": sorted({r["settings"].get("data", "") for r in runs})}
    weights = {r["input"]: r["weights_sha256"] for r in runs if r.get("weights_sha256")}
    doc = {
        **meta,
        "settings": settings[0] if settings else {},
        "seeds": sorted({r["seed"] for r in runs}),
        "threads": torch.get_num_threads(),
        "rows": summarize(runs),
        "runs": runs,
        "provenance": provenance(threads=torch.get_num_threads(), devices=sorted({r["device"] for r in runs}),
                                 run_machines=_unique([r["machine"] for r in runs if r.get("machine")]),
                                 run_commits=sorted({r["commit"] for r in runs if r.get("commit")}),
                                 weights_sha256=weights),
    }
    atomic_write_json(out / "results.json", doc)
    atomic_write_json(out / "pareto.json", pareto_doc(doc))
    (out / "results.md").write_text(results_table(doc) + "\n")
    try:
        plot_results(doc, out / "results.png")
        plot_pareto(doc, out / "pareto.png")
    except ImportError:
        log("matplotlib is not installed: no plot")
    return doc


def _unique(items: list[dict]) -> list[dict]:
    """Distinct dicts ignoring their load average, in first-seen order."""
    seen, out = set(), []
    for m in items:
        key = json.dumps({k: v for k, v in m.items() if not k.startswith("load")}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append({k: v for k, v in m.items() if not k.startswith("load")})
    return out


def collect(out: str | Path, inputs: Sequence[str] | None = None, progress: bool = True) -> dict:
    """Gather the finished runs in ``OUT/runs/`` (all, or those of ``inputs``, in that order) into
    the results files, training nothing: for runs made by several ``learn`` processes at once."""
    out = Path(out)
    try:
        meta = json.loads((out / "experiment.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{out}: no experiment.json of a learn run ({e})") from None
    runs = []
    for path in sorted((out / "runs").glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: unreadable run ({e})") from None
        if rec.get("version") == RESULTS_VERSION:
            runs.append(rec)
    if inputs is not None:
        order = {name: i for i, name in enumerate(inputs)}
        missing = [n for n in inputs if not any(r["input"] == n for r in runs)]
        if missing:
            raise InputError(f"{out}: no finished runs of {', '.join(missing)}")
        runs = sorted((r for r in runs if r["input"] in order), key=lambda r: (order[r["input"]], r["seed"]))
    if not runs:
        raise InputError(f"{out}: no finished runs to collect")
    return _write_results(out, meta, runs, lambda m: _log(m, progress))


def resolve_device(name: str):
    """``"auto"``: the first CUDA device where torch sees one, else the CPU; otherwise ``torch.device(name)``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise InputError(f"--device: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA device here")
    return device


def seconds_to(history: list[dict], level: float, key: str = "train_seconds") -> float | None:
    """Training seconds (validation excluded; wall clock, or ``key="train_cpu_seconds"``: the CPU
    time of the training process, which other jobs on the machine disturb far less) until val
    top-1 first reaches ``level``; None if never (or not recorded)."""
    total = 0.0
    for h in history:
        if key not in h:
            return None
        total += h[key]
        if h["val_top1"] >= level:
            return total
    return None


def summarize(runs: list[dict]) -> list[dict]:
    """One row per input over its seeds: top-1 per seed, mean, standard deviation (n - 1), bytes per
    sample on disk (stored size where the input has a coder, else raw), MACs, time to each level."""
    rows: dict[str, dict] = {}
    for r in runs:
        row = rows.setdefault(r["input"], {
            "input": r["input"], "description": r["description"], "shape": r["shape"], "dtype": r["dtype"],
            "bytes_per_sample": r["bytes_coded"] if r.get("bytes_coded") is not None else r["bytes_raw"],
            "bytes_raw": r["bytes_raw"], "coded_as": r.get("coded_as") or "raw", "macs": r["macs"],
            "parameters": r["parameters"], "seeds": [], "top1": [], "best_top1": [], "epoch_seconds": [],
            "seconds_to_top1": {f"{v:g}": [] for v in TIME_LEVELS},
            "cpu_seconds_to_top1": {f"{v:g}": [] for v in TIME_LEVELS},
        })
        row["seeds"].append(r.get("seed"))
        row["top1"].append(r["top1"])
        row["best_top1"].append(r["best_top1"])
        row["epoch_seconds"].append(r["epoch_seconds"])
        for v in TIME_LEVELS:
            row["seconds_to_top1"][f"{v:g}"].append(seconds_to(r["history"], v))
            row["cpu_seconds_to_top1"][f"{v:g}"].append(seconds_to(r["history"], v, "train_cpu_seconds"))
    out = list(rows.values())
    for row in out:
        t = np.array(row["top1"], float)
        row["top1_mean"] = float(t.mean())
        row["top1_std"] = float(t.std(ddof=1)) if len(t) > 1 else 0.0
        row["epoch_seconds_mean"] = float(np.mean(row["epoch_seconds"]))
    for row in out:  # on the frontier: no other row at most as large on disk with a higher mean top-1
        row["pareto"] = not any(o is not row and o["bytes_per_sample"] <= row["bytes_per_sample"]
                                and o["top1_mean"] > row["top1_mean"] for o in out)
    return out


def pareto_doc(doc: dict) -> dict:
    """The accuracy-per-byte summary (``OUT/pareto.json``): rows, data, settings, seeds, provenance."""
    keep = ("experiment", "data", "classes", "train_samples", "val_samples", "settings", "seeds", "provenance")
    return {k: doc[k] for k in keep if k in doc} | {"rows": sorted(doc["rows"], key=lambda r: r["bytes_per_sample"])}


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
    """Markdown: one line per input, top-1 as mean ± standard deviation over the seeds."""
    src = doc.get("source_bytes_per_image")
    seeds = doc.get("seeds") or [0]
    lines = [
        f"{doc['train_samples']} train / {doc['val_samples']} val, {len(doc['classes'])} classes; source files "
        f"{src:,.0f} bytes per {'clip' if doc.get('experiment') == 'spoken-digits' else 'image'}; "
        f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}" if src else "",
        "",
        "| input | shape | top-1 (mean ± sd) | s/epoch | bytes raw | bytes on disk | MACs | frontier |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc.get("rows") or summarize(doc["runs"]):
        disk = f"{r['bytes_per_sample']:,.0f} ({r['coded_as']})"
        lines.append(
            f"| {r['input']} | {'x'.join(map(str, r['shape']))} | {100 * r['top1_mean']:.1f} ± {100 * r['top1_std']:.1f} % "
            f"| {r['epoch_seconds_mean']:.1f} | {r['bytes_raw']:,.0f} | {disk} | {r['macs'] / 1e6:.1f} M "
            f"| {'yes' if r['pareto'] else ''} |"
        )
    return "\n".join(lines)


def _family(name: str) -> str:
    """What a row is, for colours: latents, jpeg, webp, png, pixels, samples, opus, ..."""
    return name.split(":")[0].split("-")[0]


_COLOURS = {"latents": "tab:blue", "jpeg": "tab:orange", "webp": "tab:green", "png": "tab:gray", "pixels": "tab:gray",
            "samples": "tab:brown", "opus": "tab:purple", "taef2": "tab:red"}


def plot_pareto(doc: dict, path: Path) -> None:
    """Top-1 (mean ± sd over seeds) against bytes per sample on disk, log x; rows of one kind and
    size joined by a line, the frontier dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc.get("rows") or summarize(doc["runs"])
    split = "test" if doc.get("experiment") == "spoken-digits" else "val"
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = r["input"].split("@")[0] if ":" in r["input"] else r["input"]
        groups.setdefault(key, []).append(r)
    labelled = set()
    for key, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["bytes_per_sample"])
        fam = _family(key)
        colour = _COLOURS.get(fam, "black")
        xs = [r["bytes_per_sample"] for r in rs]
        ys = [100 * r["top1_mean"] for r in rs]
        es = [100 * r["top1_std"] for r in rs]
        side = key.partition(":")[2]
        style = {"32": ("v", ":"), "64": ("s", "--"), "128": ("D", "-")}.get(side, ("o", "-"))
        ax.errorbar(xs, ys, yerr=es, color=colour, marker=style[0], ls=style[1], ms=4, capsize=2, lw=1, label=key)
        labelled.add(key)
        for r, x, y in zip(rs, xs, ys):
            q = r["input"].partition("@")[2]
            if q:
                ax.annotate(q, (x, y), fontsize=6, xytext=(2, -8), textcoords="offset points", color=colour)
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["bytes_per_sample"])
    ax.step([r["bytes_per_sample"] for r in front], [100 * r["top1_mean"] for r in front], where="post", ls="--",
            color="black", lw=0.8, alpha=0.6, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("bytes per sample on disk (files / coded cache, headers included)")
    ax.set_ylabel(f"{split} top-1 (%), mean ± sd over {len(doc.get('seeds') or [0])} seeds")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("accuracy per byte: the same CNN family on every input", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    from ..io.files import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue(), force=True)


def plot_results(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc.get("rows") or summarize(doc["runs"])
    split = "test" if doc.get("experiment") == "spoken-digits" else "val"
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [max(len(rows), 3), 5]})
    tops = [100 * r["top1_mean"] for r in rows]
    bars = a.bar(range(len(rows)), tops, yerr=[100 * r["top1_std"] for r in rows], capsize=2,
                 color=[_COLOURS.get(_family(r["input"]), "black") for r in rows])
    for bar, r in zip(bars, rows):
        label = f"{'x'.join(map(str, r['shape']))}\n{r['bytes_per_sample']:,.0f} B"
        a.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 1.0, label, ha="center", va="bottom", fontsize=6)
    a.set_xticks(range(len(rows)), [r["input"] for r in rows], rotation=35, ha="right", fontsize=7)
    a.set_ylabel(f"{split} top-1 (%), mean ± sd over seeds")
    a.set_ylim(0, max(tops + [1]) * 1.25)
    a.set_title("same CNN family, epochs and augmentation (bytes per sample on disk)", fontsize=9)
    first: dict[str, dict] = {}
    for r in doc["runs"]:
        first.setdefault(r["input"], r)
    for r in first.values():
        b.plot([h["epoch"] for h in r["history"]], [100 * h["val_top1"] for h in r["history"]], marker=".",
               label=r["input"], color=_COLOURS.get(_family(r["input"])))
    b.set_xlabel("epoch")
    b.set_ylabel(f"{split} top-1 (%), first seed")
    b.grid(alpha=0.3)
    b.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    from ..io.files import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue(), force=True)
