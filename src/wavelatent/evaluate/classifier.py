"""The frozen classifier of machine-perceptual-quality evaluation (``evaluate --task classify``).

A classifier file is a ``.safetensors`` file (no pickle) holding the state dict of a
:class:`~wavelatent.learn.models.SmallCNN` and, in its metadata under ``"wavelatent_classifier"``,
a JSON :class:`ClassifierConfig`. **Input convention** (``convention`` = ``"wavelatent-classifier/1"``):

* images (``modality="image"``): an RGB uint8 image ``[H, W, 3]`` of any size (grayscale is
  replicated to RGB) is resized so that its short side is ``size`` (Pillow bicubic, antialiased;
  :func:`wavelatent.data.cache.prepare_image`), centre-cropped to ``size x size``, then to the
  centre ``crop x crop``; the model sees ``(pixel * scale - mean[c]) / std[c]`` as float32
  ``[N, 3, crop, crop]``.
* audio (``modality="audio"``): a mono clip at ``rate`` Hz, float32 in [-1, 1] ``[L, 1]``, is
  rounded to int16 (``x * 32768``), centred in ``size`` samples (zero padded, or its centre kept),
  then its centre ``crop`` samples; the model sees ``(sample * scale - mean) / std`` as
  ``[N, 1, crop]``.

The network's output is ``[N, len(classes)]`` logits; its penultimate layer (global average pool
of the body, ``[N, 4 width]``) gives the feature distance. A file whose convention, modality,
channel count or class count does not fit is refused with :class:`ClassifierError`.

:func:`train_classifier` trains one on a ``learn`` data set (Imagenette class folders, or FSDD
recordings) with ``learn``'s recipe and records its own validation top-1 in the config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import WavelatentError

CONVENTION = "wavelatent-classifier/1"
META_KEY = "wavelatent_classifier"


class ClassifierError(WavelatentError):
    """A classifier file that is missing, malformed, or does not fit the data (input convention, classes)."""


@dataclass
class ClassifierConfig:
    """How a classifier file's network is built and what it expects (see the module docstring)."""

    modality: str  # "image" or "audio"
    classes: list[str]
    size: int  # images: short side and square crop before the model's crop; audio: clip length
    crop: int  # the model's window (centre)
    mean: list[float]  # per input channel, of ``value * scale``
    std: list[float]
    scale: float = 1.0  # uint8 pixels: 1; int16 samples: 1 / 32768
    in_channels: int = 3
    width: int = 32
    body_size: int = 16
    kernel: int = 3
    stem_layers: int | None = None
    stem: str = "thin"  # SmallCNN's stem (files written before the option existed have the thin one)
    rate: int | None = None  # audio sample rate
    val_top1: float | None = None  # the classifier's own accuracy on its validation split
    val_samples: int | None = None
    trained: dict = field(default_factory=dict)  # how it was trained (data, epochs, seconds ...)
    convention: str = CONVENTION

    @property
    def dims(self) -> int:
        return 2 if self.modality == "image" else 1

    def check(self) -> None:
        """Refuse what the evaluator cannot feed (raises :class:`ClassifierError`)."""
        if self.convention != CONVENTION:
            raise ClassifierError(f"classifier input convention {self.convention!r}; this build reads {CONVENTION!r}")
        want = {"image": 3, "audio": 1}.get(self.modality)
        if want is None:
            raise ClassifierError(f"classifier modality must be 'image' or 'audio', got {self.modality!r}")
        if self.in_channels != want:
            raise ClassifierError(f"an {self.modality} classifier must take {want} input channel(s) "
                                  f"({'RGB' if want == 3 else 'mono'}), this one takes {self.in_channels}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels or min(self.std) <= 0:
            raise ClassifierError("classifier mean/std must have one positive entry per input channel")
        if not 0 < self.crop <= self.size:
            raise ClassifierError(f"classifier crop {self.crop} must be in 1..size ({self.size})")
        if len(self.classes) < 2:
            raise ClassifierError("a classifier needs at least 2 classes")
        if self.modality == "audio" and not self.rate:
            raise ClassifierError("an audio classifier needs its sample rate")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClassifierConfig":
        try:
            d = json.loads(text)
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = set(d) - names
            if unknown:
                raise ClassifierError(f"unknown classifier config field(s): {', '.join(sorted(unknown))}")
            cfg = cls(**d)
        except (ValueError, TypeError) as e:
            raise ClassifierError(f"malformed classifier config: {e}") from None
        return cfg


class Classifier:
    """A frozen classifier: preprocessing by its input convention, batched prediction and features."""

    def __init__(self, model, config: ClassifierConfig, sha256: str = "", source: str = "") -> None:
        import torch

        config.check()
        self.model = model.eval()
        self.config = config
        self.sha256 = sha256
        self.source = source
        shape = (1, config.in_channels) + (1,) * config.dims
        self._mean = torch.tensor(config.mean, dtype=torch.float32).view(shape)
        self._inv = torch.tensor(1.0 / np.asarray(config.std, np.float64), dtype=torch.float32).view(shape)

    @property
    def classes(self) -> list[str]:
        return self.config.classes

    # --- the input convention
    def window(self, signal: np.ndarray) -> np.ndarray:
        """One signal -> the model's window, before scaling: uint8 ``[3, crop, crop]`` for an image
        ``[H, W(, C)]``, int16 ``[1, crop]`` for a float clip ``[L(, 1)]``."""
        cfg = self.config
        if cfg.modality == "image":
            from ..data.cache import prepare_image

            img = np.asarray(signal)
            if img.ndim == 3 and img.shape[2] == 1:
                img = img[:, :, 0]
            if img.ndim == 2:
                img = np.repeat(img[:, :, None], 3, axis=2)
            sq = prepare_image(np.ascontiguousarray(img), cfg.size, 3)
            a = (cfg.size - cfg.crop) // 2
            return np.ascontiguousarray(sq[a : a + cfg.crop, a : a + cfg.crop].transpose(2, 0, 1))
        from ..data.audio import fit_length

        x = np.asarray(signal, np.float64)
        if x.ndim == 2:
            if x.shape[1] != 1:
                raise ClassifierError(f"the audio classifier takes mono clips, got {x.shape[1]} channels")
            x = x[:, 0]
        pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
        clip = fit_length(pcm, cfg.size)
        a = (cfg.size - cfg.crop) // 2
        return np.ascontiguousarray(clip[None, a : a + cfg.crop])

    def run(self, windows: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Windows ``[N, C, crop(, crop)]`` (from :meth:`window`) -> predicted class ``[N]`` (int64)
        and penultimate features ``[N, 4 width]`` (float32)."""
        import torch

        preds, feats = [], []
        with torch.inference_mode():
            for i in range(0, len(windows), batch):
                x = torch.from_numpy(np.ascontiguousarray(windows[i : i + batch])).to(torch.float32)
                x = x.mul_(self.config.scale).sub_(self._mean).mul_(self._inv)
                f = self.model.features(x)
                logits = self.model.classify(f)
                preds.append(logits.argmax(1).numpy())
                feats.append(f.numpy())
        if not preds:
            return np.zeros(0, np.int64), np.zeros((0, 4 * self.config.width), np.float32)
        return np.concatenate(preds).astype(np.int64), np.concatenate(feats)


def build_model(cfg: ClassifierConfig):
    """The SmallCNN a config describes (untrained)."""
    from ..learn.models import SmallCNN

    try:
        return SmallCNN(cfg.in_channels, cfg.crop, len(cfg.classes), width=cfg.width, body_size=cfg.body_size,
                        stem_layers=cfg.stem_layers, dims=cfg.dims, kernel=cfg.kernel, stem=cfg.stem)
    except ValueError as e:
        raise ClassifierError(f"classifier config does not describe a network: {e}") from None


def save_classifier(path: str | os.PathLike, model, cfg: ClassifierConfig, *, force: bool = True) -> str:
    """Write the state dict and config as safetensors (atomic); returns the file's sha256."""
    from safetensors.torch import save

    from ..io.files import atomic_write_bytes

    cfg.check()
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    data = save(state, metadata={META_KEY: cfg.to_json()})
    atomic_write_bytes(path, data, force=force)
    return hashlib.sha256(data).hexdigest()


def load_classifier(path: str | os.PathLike) -> Classifier:
    """A classifier file (see the module docstring); :class:`ClassifierError` for anything wrong with it."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from ..errors import WeightsError
    from ..weights import safetensors_metadata

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ClassifierError(f"{p}: cannot read the classifier: {e.strerror or e}") from None
    try:
        meta = safetensors_metadata(data)
        state = load(data)
    except WeightsError as e:
        raise ClassifierError(f"{p}: {e}") from None
    except (SafetensorError, ValueError) as e:
        raise ClassifierError(f"{p}: not a safetensors file: {e}") from None
    if META_KEY not in meta:
        raise ClassifierError(f"{p}: no {META_KEY!r} config in the safetensors metadata (see "
                              "wavelatent.evaluate.classifier for the input convention)")
    cfg = ClassifierConfig.from_json(meta[META_KEY])
    cfg.check()
    model = build_model(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ClassifierError(f"{p}: weights do not match the config: {str(e).splitlines()[0]}") from None
    return Classifier(model, cfg, hashlib.sha256(data).hexdigest(), str(p))


# --------------------------------------------------------------------------- training
def train_classifier(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    epochs: int = 16,
    width: int = 32,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    stem: str = "thin",
    limit_per_class: int | None = None,
    work: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Classifier:
    """Train the frozen classifier on ``data`` (``learn``'s data sets: ``DATA/{train,val}/<class>/``
    images -> ``pixels-128``, or FSDD recordings -> 8 kHz samples) with ``learn``'s recipe, and write
    it to ``out``. ``work``: where the decoded splits are cached (default: beside ``out``)."""
    import sys

    import torch

    from ..learn.experiment import TASKS, LearnOptions, find_task, prepare_fsdd, prepare_split, train_input
    from ..learn.inputs import AUDIO_RATE, get_input

    say = log or (lambda m: print(m, file=sys.stderr, flush=True) if progress else None)
    data = Path(data)
    task = TASKS[find_task(data)]
    out = Path(out)
    work_dir = Path(work) if work is not None else out.parent / f".{out.stem}-work"
    work_dir.mkdir(parents=True, exist_ok=True)
    opts = LearnOptions(str(data), str(work_dir), epochs=epochs, batch_size=batch_size, lr=lr, width=width, seed=seed,
                        stem=stem,
                        size=task.size, crop=task.crop, grid=task.grid, limit_per_class=limit_per_class,
                        progress=progress)
    t0 = time.perf_counter()
    if task.modality == "audio":
        train, val = prepare_fsdd(data, task.size, limit_per_class, progress)
        classes = [str(d) for d in range(10)]
        spec = get_input("samples-8k", crop=task.crop)
    else:
        train, classes = prepare_split(data / "train", work_dir, "train", task.size, None, limit_per_class, progress)
        val, _ = prepare_split(data / "val", work_dir, "val", task.size, classes, limit_per_class, progress)
        spec = get_input(f"pixels:{task.crop}", crop=task.crop)
    keep: dict[str, Any] = {}
    rec = train_input(spec, train, val, len(classes), opts, None, say, task, keep=keep)
    rec["top1"] = round(rec["top1"] * len(val.labels)) / len(val.labels)  # exact: learn computes it in float32
    body = task.crop // task.body_factor
    cfg = ClassifierConfig(
        modality=task.modality, classes=classes, size=task.size, crop=task.crop,
        mean=[float(v) for v in keep["mean"]], std=[float(v) for v in keep["std"]], scale=float(spec.scale),
        in_channels=3 if task.modality == "image" else 1, width=width, body_size=body, kernel=task.kernel, stem=stem,
        rate=AUDIO_RATE if task.modality == "audio" else None, val_top1=rec["top1"], val_samples=len(val.labels),
        trained={"data": str(data), "task": task.name, "input": spec.name, "epochs": epochs, "batch_size": batch_size,
                 "lr": lr, "seed": seed, "limit_per_class": limit_per_class, "train_samples": len(train.labels),
                 "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
                 "history": [{k: h[k] for k in ("epoch", "train_loss", "val_top1")} for h in rec["history"]],
                 "macs": rec["macs"], "parameters": rec["parameters"]},
    )
    sha = save_classifier(out, keep["model"], cfg)
    say(f"classifier: {len(classes)} classes, val top-1 {100 * rec['top1']:.2f} % on {len(val.labels)} -> {out}")
    return Classifier(keep["model"], cfg, sha, str(out))


__all__ = ["CONVENTION", "Classifier", "ClassifierConfig", "ClassifierError", "build_model", "load_classifier",
           "save_classifier", "train_classifier"]
