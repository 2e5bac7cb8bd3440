"""Torch datasets of latents: :class:`LatentDataset` over a cache, :class:`EncodedImageFolder` on the fly.

Both yield ``y_hat [K, h, w]`` (``[K, t]`` for an audio cache) float32 (dequantized latents,
``q * step``) or the integer symbols ``q`` (``output="symbols"``, int8/int16 as stored), plus the
integer label when the source has labels: ``(x, label)``, else ``x`` alone.

Augmentation happens in latent space, after the cache:

* **crop** (``crop=(h, w)`` latent positions, or ``crop=t`` steps for audio): a random window
  (``random_crop=True``, stride one latent position, i.e. ``2**levels`` pixels or samples) or the
  centre window. Cropping a latent is exactly
  cropping the image on the latent grid, except within a few positions of the border, where the
  wavelet filters of the cropped image would have wrapped around instead of seeing the neighbours.
* **horizontal flip** (``flip=True``, images only, probability 1/2), applied to the whole latent before the
  crop. Mirroring an image does not simply reverse its latent (the packet bands sit at
  band-dependent phases inside each block, see :mod:`wavelatent.data.flip`): the plain reversal
  is off by about 57 % of the latent's spread for ``image-rgb-16x``. Caches therefore store a
  fitted ``K x K x 3`` correction (least squares on the first images of the job) and flips use
  it (error about 8 %): float latents, or symbols re-rounded to the grid. ``flip="mirror"``
  forces the plain reversal (exact on the symbols, but not the latent of the mirrored image).
  :class:`EncodedImageFolder` mirrors the image itself before encoding, which is exact.
  A vertical flip would work the same way along the height; it is not offered (photos have an up).

Randomness comes from torch's generator, which a ``DataLoader`` seeds per worker.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import InputError
from .flip import LatentFlip
from .cache import (
    CacheError,
    encode_symbols,
    list_sources,
    prepare_image,
    read_coded_shard,
    read_index,
    read_raw_shard,
    symbol_dtype,
)

__all__ = ["EncodedImageFolder", "LatentDataset", "crop_latent", "flip_latent"]

OUTPUTS = ("latents", "symbols")


def flip_latent(y: Tensor | np.ndarray):
    """The plain reversal of the last (width) axis (see :class:`~wavelatent.data.flip.LatentFlip` for
    the fitted flip that approximates the latent of the mirrored image)."""
    return y.flip(-1) if isinstance(y, Tensor) else y[..., ::-1]


def crop_latent(y, top: int, left: int, h: int, w: int):
    """The window ``[..., top:top+h, left:left+w]`` of a latent."""
    return y[..., top : top + h, left : left + w]


def _window(crop, dims: int) -> tuple[int, ...] | None:
    """``crop`` (an int or a tuple of ``dims`` ints) as a ``dims``-tuple of positive ints."""
    if crop is None:
        return None
    size = (crop,) * dims if isinstance(crop, int) else tuple(crop)
    if len(size) != dims or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in size):
        raise InputError(f"crop must be a positive int or {dims} positive ints, got {crop!r}")
    return tuple(int(v) for v in size)


class _LatentView:
    """Shared crop / flip / dequantize of one symbol array ``[K, h, w]`` (or ``[K, t]`` for audio)."""

    output: str
    crop: tuple[int, ...] | None
    random_crop: bool
    flip: bool
    step: float

    def _setup(self, output: str, crop, random_crop: bool, flip, shape: Sequence[int], *, step: float,
               max_symbol: int, dtype, flip_op: LatentFlip) -> None:
        if output not in OUTPUTS:
            raise InputError(f"output must be one of {OUTPUTS}, got {output!r}")
        if flip not in (False, True, "mirror", "fitted"):
            raise InputError(f"flip must be False, True, 'mirror' or 'fitted', got {flip!r}")
        if flip == "fitted" and flip_op.weight is None:
            raise InputError("flip='fitted' needs a cache with a fitted flip operator")
        K, *size = shape
        if flip and len(size) != 2:
            raise InputError("flip is for image latents; these latents are audio")
        self.output, self.crop, self.random_crop, self.flip = output, _window(crop, len(size)), random_crop, bool(flip)
        self.step, self._max_symbol, self._dtype = float(step), int(max_symbol), np.dtype(dtype)
        self.flip_op = LatentFlip(None) if flip == "mirror" else flip_op
        if self.crop and any(c > v for c, v in zip(self.crop, size)):
            raise InputError(f"crop {self.crop} is larger than the latents {tuple(size)}")
        self.latent_shape = (K, *(self.crop or size))

    def _view(self, q: np.ndarray) -> Tensor:
        """Flip, crop and dequantize one sample ``[K, h, w]`` (``[K, t]``)."""
        return self._view_batch(np.array(q[None]))[0]  # a copy: never hand out the cached shard's memory

    def _view_batch(self, q: np.ndarray) -> Tensor:
        """Flip, crop and dequantize samples ``[n, K, *S]`` (each with its own random flip and window)."""
        n = q.shape[0]
        t = torch.from_numpy(np.ascontiguousarray(q))
        is_float = False
        if self.flip:
            mask = torch.rand(n) < 0.5
            if bool(mask.any()):
                if self.flip_op.weight is None:
                    t = torch.where(mask.view(n, 1, 1, 1), t.flip(-1), t)
                else:
                    t, is_float = t.to(torch.float32).mul_(self.step), True
                    t[mask] = self.flip_op(t[mask])
        if self.crop is not None:
            size = t.shape[2:]
            if self.random_crop:
                starts = [torch.randint(v - c + 1, (n,)).tolist() for v, c in zip(size, self.crop)]
            else:
                starts = [[(v - c) // 2] * n for v, c in zip(size, self.crop)]
            t = torch.stack([
                t[(j, slice(None), *(slice(a[j], a[j] + c) for a, c in zip(starts, self.crop)))] for j in range(n)
            ])
        if self.output == "symbols":
            if is_float:
                m = self._max_symbol
                t = torch.round(t / self.step).clamp_(-m, m).to(getattr(torch, self._dtype.name))
            return t
        return t if is_float else t.to(torch.float32).mul_(self.step)


class LatentDataset(_LatentView, Dataset):
    """A torch Dataset over a latent cache (``wavelatent cache``), raw or coded shards.

    ``cache``: the cache folder. ``output``: "latents" (float ``y_hat``) or "symbols".
    ``crop`` (int or ``(h, w)`` in latent positions; int or ``(t,)`` for audio caches),
    ``random_crop``, ``flip`` (images only): see the module docstring. ``weights``: for coded
    caches of unshipped weights, the weights file (a preset's shipped weights are found by name);
    the weights hash is checked against the index.
    ``max_cached_shards``: shards kept decoded per process (None = all; a cache of 10,000
    ``12x16x16`` samples is 30 MB as int8). A coded cache's codec is loaded here, once: DataLoader
    workers started by fork share it (with spawn, each worker loads it again), and wrong weights
    fail now rather than in a worker. ``preload``: read (decode) every shard here, once, so that
    forked workers share the symbols; otherwise each worker reads and decodes every shard it
    samples from, i.e. with shuffling every shard, once per worker.
    """

    def __init__(
        self,
        cache: str | os.PathLike,
        *,
        output: str = "latents",
        crop: int | tuple[int, ...] | None = None,
        random_crop: bool = False,
        flip: bool = False,
        weights: str | os.PathLike | None = None,
        max_cached_shards: int | None = None,
        preload: bool = False,
    ) -> None:
        self.root = Path(cache)
        self.index = index = read_index(cache)
        if not index.get("complete"):
            raise CacheError(f"{cache}: the cache is incomplete; rerun `wavelatent cache` to finish it")
        self._setup(output, crop, random_crop, flip, index["latent_shape"], step=index["step"],
                    max_symbol=index["max_symbol"], dtype=index["dtype"], flip_op=LatentFlip(index.get("flip")))
        self.dtype = np.dtype(index["dtype"])
        self.classes: list[str] = list(index["classes"])
        self.labels: list[int] | None = (
            None if index["labels"] is None else [int(s["label"]) for s in index["sources"]]
        )
        self._firsts = np.array([s["first"] for s in index["shards"]], dtype=np.int64)
        self._weights = weights
        self._codec = None
        self._max_cached = max_cached_shards
        self._shards: OrderedDict[int, np.ndarray] = OrderedDict()
        if preload and max_cached_shards is not None and max_cached_shards < len(self._firsts):
            raise InputError(f"preload keeps all {len(self._firsts)} shards; max_cached_shards is {max_cached_shards}")
        self._preload = bool(preload)
        if index["storage"] != "raw":
            self.codec()
        if preload:
            self.all_symbols()

    def __getstate__(self) -> dict:
        # pickled for spawned DataLoader workers: they load the codec and decode shards themselves,
        # unless preloaded (then the symbols travel along)
        return {**self.__dict__, "_codec": None, "_shards": self._shards if self._preload else OrderedDict()}

    def __len__(self) -> int:
        return int(self.index["samples"])

    @property
    def sources(self) -> list[str]:
        return [s["name"] for s in self.index["sources"]]

    def codec(self):
        """The codec the cache was made with (shipped preset or ``weights``), hash checked."""
        if self._codec is None:
            from ..models import load_codec
            from ..weights import weights_sha256

            codec = load_codec(self._weights if self._weights is not None else self.index["preset"])
            if weights_sha256(codec) != self.index["weights_sha256"]:
                raise CacheError(
                    f"{self.root} was made with weights {self.index['weights_sha256'][:12]}…; the codec given has "
                    f"{weights_sha256(codec)[:12]}… (pass weights= the file it was made with)"
                )
            self._codec = codec
        return self._codec

    def shard(self, s: int) -> np.ndarray:
        """The symbols ``[n, K, h, w]`` of shard ``s`` (stored dtype), decoded once per process."""
        arr = self._shards.get(s)
        if arr is not None:
            self._shards.move_to_end(s)
            return arr
        info = self.index["shards"][s]
        path = self.root / info["name"]
        if self.index["storage"] == "raw":
            _, arr, _ = read_raw_shard(path)
        else:
            _, q = read_coded_shard(path, self.codec(), (info["count"], self.index["latent_shape"]))
            arr = q.astype(self.dtype)
        if arr.shape[0] != info["count"] or list(arr.shape[1:]) != list(self.index["latent_shape"]):
            raise CacheError(f"{path}: holds {arr.shape}, the index says {info['count']} x {self.index['latent_shape']}")
        self._shards[s] = arr
        if self._max_cached is not None:
            while len(self._shards) > self._max_cached:
                self._shards.popitem(last=False)
        return arr

    def symbols(self, i: int) -> np.ndarray:
        """The stored symbols ``[K, h, w]`` of sample ``i`` (no crop, no flip)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        i %= len(self)
        s = int(np.searchsorted(self._firsts, i, side="right") - 1)
        return self.shard(s)[i - int(self._firsts[s])]

    def all_symbols(self) -> np.ndarray:
        """Every sample's symbols ``[N, K, h, w]`` (stored dtype), for in-memory training (every shard
        is read and kept, within ``max_cached_shards``)."""
        return np.concatenate([self.shard(s) for s in range(len(self._firsts))])

    def __getitem__(self, i: int):
        x = self._view(self.symbols(i))
        return x if self.labels is None else (x, self.labels[i])

    def __getitems__(self, indices: Sequence[int]) -> list:
        """A DataLoader batch at once (same samples as ``[self[i] for i in indices]``, vectorized)."""
        xs = list(self._view_batch(np.stack([self.symbols(int(i)) for i in indices])).unbind(0))
        return xs if self.labels is None else [(x, self.labels[int(i)]) for x, i in zip(xs, indices)]


class EncodedImageFolder(_LatentView, Dataset):
    """Images encoded on the fly, inside the DataLoader worker that loads them.

    Same preprocessing as ``wavelatent cache`` (short side to ``size``, centre crop), same
    outputs and latent-space augmentation as :class:`LatentDataset`, so ``EncodedImageFolder(d,
    codec, size=s)[i]`` equals ``LatentDataset(cache of d at size s)[i]``. Slower (a JPEG decode,
    a resize and an encode per sample) but needs no disk; the DataLoader runs workers with one
    torch thread each.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        codec,
        *,
        size: int = 128,
        quality: int | None = None,
        labels: str | None = "from-folders",
        output: str = "latents",
        crop: int | tuple[int, int] | None = None,
        random_crop: bool = False,
        flip: bool = False,
    ) -> None:
        from ..models import resolve_codec

        self.root = Path(root)
        self.codec = resolve_codec(codec)
        cfg = self.codec.config
        if cfg.modality != "image":
            raise InputError(f"EncodedImageFolder takes an image preset; {cfg.name} codes {cfg.modality}")
        self.quality = cfg.check_quality(quality)
        self.size = size
        self.paths, labs, self.classes = list_sources(self.root, labels)
        self.labels = None if labels is None else [int(v) for v in labs]
        M = cfg.max_symbol(self.quality)
        self._setup(output, crop, random_crop, False, (cfg.latent_channels, *self.codec.latent_size((size, size))),
                    step=cfg.step(self.quality), max_symbol=M, dtype=symbol_dtype(M), flip_op=LatentFlip(None))
        self.mirror = bool(flip)  # exact: the image is mirrored before it is encoded

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = prepare_image(self.paths[i], self.size, self.codec.config.channels)
        if self.mirror and bool(torch.rand(()) < 0.5):
            img = img[:, ::-1]
        q = encode_symbols(self.codec, [img], self.quality)[0]
        x = self._view(q.astype(self._dtype))
        return x if self.labels is None else (x, self.labels[i])
