"""One coder owns integer symbols <-> bytes for every caller: images, multi-band arrays, audio chunks
and latent caches all code their latents through :class:`LatentCoder`.

An entropy model is a row of :data:`ENTROPY_MODELS`, keyed by the name a codec config's ``context``
(and a file header's ``entropy``) gives it: how to pull its numpy tables from a codec once, and the
numpy-only ``encode(q, tables) -> bytes`` / ``decode(data, tables, spatial_shape) -> q`` of
:mod:`wavelatent.entropy`. Adding a model is one row here plus its tables on the codec.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .entropy import context, grid, rans
from .errors import EntropyCodingError

__all__ = ["ENTROPY_MODELS", "EntropyModel", "FactorizedTables", "LatentCoder"]


@dataclass(frozen=True)
class EntropyModel:
    """``tables(codec, quality)`` -> what ``encode(q, tables)`` and ``decode(data, tables, spatial_shape)``
    take; ``q`` are signed symbols ``[C, *spatial]``. ``spatial_dims``: the latent ranks it codes
    (None: any, the spatial axes are flattened)."""

    tables: Callable[[Any, int], Any]
    encode: Callable[[np.ndarray, Any], bytes]
    decode: Callable[[bytes, Any, tuple[int, ...]], np.ndarray]
    spatial_dims: tuple[int, ...] | None = None
    decode_many: Callable[[list, Any, tuple[int, ...]], np.ndarray] | None = None  # several latents of one shape


class FactorizedTables(NamedTuple):
    """Per-channel frequencies ``[C, 2Q + 1]`` (uint32); symbol ``q`` is coded as index ``q + offset``."""

    freqs: np.ndarray
    offset: int


def _factorized_tables(codec, quality: int) -> FactorizedTables:
    return FactorizedTables(codec.tables(quality), codec.config.max_symbol(quality))


def _factorized_encode(q: np.ndarray, t: FactorizedTables) -> bytes:
    return rans.encode(q.reshape(q.shape[0], -1) + t.offset, t.freqs)


def _factorized_decode(data: bytes, t: FactorizedTables, spatial_shape: tuple[int, ...]) -> np.ndarray:
    symbols = rans.decode(data, t.freqs, math.prod(spatial_shape))
    return (symbols.astype(np.int32) - t.offset).reshape(t.freqs.shape[0], *spatial_shape)


ENTROPY_MODELS: dict[str, EntropyModel] = {
    # one table per channel, every position alike (rANS, entropy/rans.py)
    "none": EntropyModel(_factorized_tables, _factorized_encode, _factorized_decode),
    # checkerboard + channel contexts (entropy/context.py); 2-D latents only
    "checkerboard": EntropyModel(
        lambda codec, quality: codec.context_tables(quality), context.encode, context.decode, spatial_dims=(2,)
    ),
    # coarse-to-fine lattices, integer prediction and scale contexts (entropy/grid.py); 1-D and 2-D latents
    "grid": EntropyModel(lambda codec, quality: codec.grid_tables(quality, version=1), grid.encode, grid.decode,
                         spatial_dims=(1, 2), decode_many=grid.decode_many),
    # the same prediction and scale, residuals sign-folded by the prediction's fraction, near-integer
    # tables in the middle buckets (entropy/grid.py, version 2)
    "grid2": EntropyModel(lambda codec, quality: codec.grid_tables(quality, version=2), grid.encode, grid.decode,
                          spatial_dims=(1, 2), decode_many=grid.decode_many),
}


class LatentCoder:
    """Signed integer symbols ``q [C, *spatial]`` of one codec and quality <-> bytes.

    ``entropy``: the entropy model (a key of :data:`ENTROPY_MODELS`); None = the codec config's
    ``context``. Files and shards that record which model wrote them pass that name. The tables are
    pulled from the codec once, here.
    """

    def __init__(self, codec, quality: int | None = None, *, entropy: str | None = None) -> None:
        cfg = codec.config
        self.quality = cfg.check_quality(quality)
        self.entropy = cfg.context if entropy is None else entropy
        if self.entropy not in ENTROPY_MODELS:
            raise EntropyCodingError(f"unknown entropy model {self.entropy!r:.40} (known: {', '.join(ENTROPY_MODELS)})")
        if self.entropy not in cfg.entropy_models:
            raise EntropyCodingError(f"{cfg.name} holds tables for {', '.join(cfg.entropy_models)}, not {self.entropy!r}")
        self.channels = cfg.latent_channels
        self.max_symbol = cfg.max_symbol(self.quality)
        self._model = ENTROPY_MODELS[self.entropy]
        self._tables = self._model.tables(codec, self.quality)

    def _check_rank(self, spatial: int) -> None:
        dims = self._model.spatial_dims
        if spatial < 1 or (dims is not None and spatial not in dims):
            raise EntropyCodingError(f"entropy model {self.entropy!r} codes latents of {dims} spatial dims, not {spatial}")

    def compress(self, q) -> bytes:
        """Symbols ``[C, *spatial]`` (numpy integers or an integer torch tensor) -> bytes."""
        if hasattr(q, "detach"):  # a torch tensor; no torch import needed here
            q = q.detach().cpu().numpy()
        q = np.asarray(q)
        if q.ndim < 2 or q.shape[0] != self.channels or not np.issubdtype(q.dtype, np.integer):
            raise EntropyCodingError(f"symbols must be integers [C={self.channels}, *spatial], got {q.dtype} {q.shape}")
        self._check_rank(q.ndim - 1)
        if q.dtype != np.int32:
            if q.size and (q.min() < -self.max_symbol or q.max() > self.max_symbol):
                raise EntropyCodingError(f"symbols must be in [-{self.max_symbol}, {self.max_symbol}]")
            q = q.astype(np.int32)
        return self._model.encode(q, self._tables)

    def decompress(self, data: bytes, spatial_shape: Sequence[int]) -> np.ndarray:
        """Bytes -> int32 symbols ``[C, *spatial_shape]``. Raises EntropyCodingError."""
        shape = tuple(int(s) for s in spatial_shape)
        self._check_rank(len(shape))
        q = self._model.decode(data, self._tables, shape)
        return np.asarray(q, dtype=np.int32).reshape(self.channels, *shape)

    def decompress_many(self, datas: Sequence[bytes], spatial_shape: Sequence[int]) -> np.ndarray:
        """Several latents of one shape (a cache shard) -> int32 ``[n, C, *spatial_shape]``, the same as
        :meth:`decompress` of each (faster where the model decodes them together). Raises
        EntropyCodingError when any of them does not decode."""
        shape = tuple(int(s) for s in spatial_shape)
        self._check_rank(len(shape))
        datas = list(datas)
        if self._model.decode_many is None or len(datas) < 2:
            return np.stack([self.decompress(d, shape) for d in datas]) if datas else \
                np.zeros((0, self.channels, *shape), np.int32)
        q = self._model.decode_many(datas, self._tables, shape)
        return np.asarray(q, dtype=np.int32).reshape(len(datas), self.channels, *shape)
