"""Coarse-to-fine context model ("grid"): integer prediction and scale contexts (numpy + constriction).

Symbols ``q [C, *spatial]`` (1-D for audio, 2-D for images) are coded lattice by lattice, coarse
to fine, so every symbol sees already-decoded neighbours on all sides:

* pass 0: the coarse lattice (every ``2**levels``-th position along each axis);
* then for each scale ``s = 2**(levels-1) .. 1``: in 2-D the centres ``(s, s)`` of the decoded
  squares (4 diagonal neighbours), then ``(0, s)`` (4 direct neighbours), then ``(s, 0)`` (4 direct
  + 4 diagonal); in 1-D the midpoints ``s`` (neighbours at ``+-s`` and ``+-3s``).

Within a pass, channel 0 first. Channel ``k`` of a pass is coded as a residual ``r = q - mu`` with

* ``mu = clip(floor((sum_i w_i f_i + 128) / 256), -Q, Q)``: a fixed-point linear prediction from its
  own channel at the neighbours and the channels ``j < k`` at the same position;
* a scale ``sigma = sum_i v_i g_i`` (``v_i >= 0``, in 1/256 symbol units) from the spread of the
  neighbours, the residual magnitudes ``|r|`` already seen at the neighbours (own channel, and all
  channels together) and ``|q_j|``, ``|r_j|`` of the channels ``j < k`` at the same position;
* table ``clip(bucket(sigma) + shift_k, 0, BUCKETS - 1)``, where ``bucket`` counts the fixed
  log-spaced thresholds :data:`THRESHOLDS` below ``sigma`` and ``shift_k`` in ``[-4, 3]`` is chosen per
  file and channel by the encoder (coded first in the stream).

Version 2 (entropy model ``"grid2"``; same weights) codes ``-r`` when the prediction ``raw / 256``
lies at or above ``mu`` (the fraction quarter ``floor(4 (x - floor x))`` of ``x = (raw + 128) / 256`` is 2
or 3), and in the buckets :data:`FRACTION_BUCKETS` takes a second table when the prediction lies
within a quarter of ``mu`` (quarters 1 and 2): ``table_rows(2) = 46`` tables (:func:`context_map`).

Every feature, weight and sum is an integer; sums are evaluated in floats on integer values small
enough that any summation order gives the exact result, so decoding is bit-exact on every machine:
float32 when a model's weights and symbol bound keep every sum below ``2**24`` (:meth:`GridTables.work_dtype`;
every shipped preset: about ``2**20`` at most), else float64 (checked bounds, < ``2**53``). Tables are
``[table_rows(version), 4Q + 1]`` integer frequencies of 24-bit precision, shared by all channels.
Encoding is vectorized over channels; decoding runs one small vectorized step per pass and channel,
and one rANS call per (pass, channel, table) group. :func:`decode_many`
decodes many latents of one shape (a cache shard) with each step vectorized over all of them
(their positions side by side: the same integer sums), one rANS stream per latent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
import numpy as np

from ..errors import EntropyCodingError
from .rans import MAX_SYMBOLS, categorical_models, constriction_module, decoding_errors, require_empty
from .tables import check_tables

__all__ = [
    "BATCH_VALUES", "BUCKETS", "FRACTION_BUCKETS", "GRID_LEVELS", "MAX_CHANNELS", "MAX_SIGMA_WEIGHT", "MAX_WEIGHT",
    "PRECISION", "SHIFTS", "THRESHOLDS", "VERSIONS", "GridTables", "Lattices", "Pass",
    "buckets", "choose_shifts", "code_lengths", "coded_symbols", "context_map", "decode", "decode_many", "encode",
    "laplace_tables", "lattice_pad", "max_near", "max_offsets", "mu_features_count", "pass_features", "passes", "predict",
    "predict_raw", "residuals", "scale", "sigma_features_count", "symbol_tables", "table_rows", "unshifted_buckets",
]

PRECISION = 24
"""Bits of the grid model's tables (rows sum to ``2**24``, so rare symbols cost little mass)."""
GRID_LEVELS = {1: 5, 2: 3}
"""Lattice levels by spatial rank: 2-D latents start from every 8th position, 1-D from every 32nd."""
BUCKETS = 40
THRESHOLDS = np.round(256 * 0.05 * 2.0 ** (np.arange(BUCKETS - 1) / 3)).astype(np.int64)
"""Scale thresholds (1/256 symbol units), a factor 2**(1/3) apart from 0.05 up."""
_BUCKET_LUT = np.searchsorted(THRESHOLDS, np.arange(int(THRESHOLDS[-1]) + 1), side="right").astype(np.int16)
SHIFTS = (-4, 3)
"""Range of the per-file, per-channel bucket shift."""
FRACTION_BUCKETS = (7, 13)
"""Version 2: the (shifted) buckets ``[7, 13)`` (scales of about 0.2 to 1 symbol, where the
prediction's fraction matters most) take a second table for predictions near an integer."""
VERSIONS = (1, 2)
MAX_WEIGHT = 1 << 16  # |mu weight| bound (1/256 units)
MAX_SIGMA_WEIGHT = 1 << 20
_MAX_Q = 1 << 16  # symbol bound: keeps every float64 sum an exact integer
MAX_CHANNELS = 1024
"""Channels a grid model may have: with |q| <= 2**16, weights <= 2**20 and at most 8 offsets, every
sum of products stays below 2**53 (about 2**51 at most), so float64 holds it exactly."""


@dataclass(frozen=True)
class Pass:
    """Positions ``phase + period * t`` (per axis) and the neighbour offsets already decoded;
    the first ``near`` offsets are the nearest ring (their spread is a scale feature)."""

    phase: tuple[int, ...]
    period: int
    offsets: tuple[tuple[int, ...], ...]
    near: int


@lru_cache(maxsize=None)
def passes(dims: int) -> tuple[Pass, ...]:
    """The passes of a ``dims``-D latent (1 or 2), coarse to fine."""
    S = 1 << GRID_LEVELS[dims]
    out = [Pass((0,) * dims, S, (), 0)]
    s = S // 2
    while s >= 1:
        if dims == 1:
            out.append(Pass((s,), 2 * s, ((-s,), (s,), (-3 * s,), (3 * s,)), 2))
        else:
            diag = ((-s, -s), (-s, s), (s, -s), (s, s))
            direct = ((-s, 0), (s, 0), (0, -s), (0, s))
            out.append(Pass((s, s), 2 * s, diag, 4))
            out.append(Pass((0, s), 2 * s, direct, 4))
            out.append(Pass((s, 0), 2 * s, direct + diag, 4))
        s //= 2
    return tuple(out)


def max_offsets(dims: int) -> int:
    return max(len(p.offsets) for p in passes(dims))


def max_near(dims: int) -> int:
    return max(p.near for p in passes(dims))


def mu_features_count(dims: int, channels: int) -> int:
    """Width of a row of mu weights: own channel at each neighbour offset, then every channel."""
    return max_offsets(dims) + channels


def sigma_features_count(dims: int, channels: int) -> int:
    """Width of a row of sigma weights: 1, spread of the near ring, own |r| at each offset, all
    channels' |r| at the offsets, then |q_j| and |r_j| of every channel at the position."""
    return 1 + max_near(dims) + max_offsets(dims) + 1 + 2 * channels


def table_rows(version: int) -> int:
    """Tables of a model version: one per bucket, and in version 2 one more per bucket of
    :data:`FRACTION_BUCKETS`."""
    return BUCKETS + (FRACTION_BUCKETS[1] - FRACTION_BUCKETS[0] if version == 2 else 0)


@lru_cache(maxsize=None)
def context_map(version: int) -> np.ndarray:
    """Table of each (fraction quarter, shifted bucket): int8 ``[4, BUCKETS]``. In version 1 the
    bucket; in version 2 predictions near an integer (quarters 1 and 2) take the second table of the
    buckets of :data:`FRACTION_BUCKETS`."""
    rows = np.tile(np.arange(BUCKETS, dtype=np.int8), (4, 1))
    if version == 2:
        lo, hi = FRACTION_BUCKETS
        rows[1:3, lo:hi] = np.arange(BUCKETS, BUCKETS + hi - lo)
    return rows


def _tables_of(shifted: np.ndarray, quarter: np.ndarray) -> np.ndarray:
    """Version 2: the table (int8) of each symbol from its shifted bucket and fraction quarter (int16
    arithmetic, also under numpy 1.x's value-based casting)."""
    return context_map(2).ravel().take(np.multiply(quarter, BUCKETS, dtype=np.int16) + shifted)


_SIGN = np.array([1, 1, -1, -1], dtype=np.int8)
"""Version 2: the sign of a residual by its prediction's fraction quarter (folded above one half)."""
_NEAR = np.array([0, 1, 1, 0], dtype=np.intp)
"""Version 2: whether a fraction quarter is near an integer (the rows of :func:`context_map` agree)."""


@dataclass(frozen=True)
class GridTables:
    """One quality's model for ``C`` channels of ``dims``-D latents:
    ``mu [P, C, Fm]`` and ``sigma [P, C, Fs]`` integer weights (see the module docstring; channel
    weights of ``j >= k`` must be zero), ``freqs [table_rows(version), 4Q + 1]`` 24-bit integer
    tables. ``version`` 2 codes each residual sign-folded by its prediction's fraction and, in the
    buckets of :data:`FRACTION_BUCKETS`, with a second table when the prediction is near an integer."""

    mu: np.ndarray
    sigma: np.ndarray
    freqs: np.ndarray
    version: int = 1
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def code_lengths(self) -> np.ndarray:
        """:func:`code_lengths` of the tables (built once)."""
        if "lengths" not in self._cache:
            self._cache["lengths"] = code_lengths(self.freqs)
        return self._cache["lengths"]

    def float_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``mu`` and ``sigma`` weights in :meth:`work_dtype` (exact integers), built once."""
        if "float" not in self._cache:
            dt = self.work_dtype()
            self._cache["float"] = (np.asarray(self.mu, dtype=dt), np.asarray(self.sigma, dtype=dt))
        return self._cache["float"]

    def work_dtype(self) -> type:
        """float32 when no sum the coders form can reach ``2**24`` (then every partial sum, in any order,
        is an exactly representable integer), else float64; from the weights and the symbol bound
        ``Q`` alone, so encoder and decoder agree (cached)."""
        if "dtype" not in self._cache:
            self._cache["dtype"] = np.float32 if self.sum_bound() < 1 << 24 else np.float64
        return self._cache["dtype"]

    def sum_bound(self) -> int:
        """An upper bound of ``|sum|`` over every subset of the terms of any prediction or scale sum
        (:func:`predict_raw` plus the decoder's rounding offset, :func:`scale`) for symbols in ``[-Q, Q]``:
        features at most ``Q`` (symbols), ``2Q`` (residual magnitudes), ``2 near Q`` (ring spreads) and
        ``offsets * C * 2Q`` (all channels' residual magnitudes at the offsets)."""
        C, Q = self.check()
        dims = self.dims
        near, offsets = max_near(dims), max_offsets(dims)
        mu, sigma = np.abs(np.asarray(self.mu, dtype=np.int64)), np.abs(np.asarray(self.sigma, dtype=np.int64))
        rsum = offsets * C * 2 * Q
        f = np.concatenate([[1], np.full(near, 2 * near * Q), np.full(offsets, 2 * Q), [rsum], np.full(C, Q),
                            np.full(C, 2 * Q)])
        return int(max(mu.sum(-1).max(initial=0) * Q + 512 * Q + 128, (sigma * f).sum(-1).max(initial=0), rsum))

    def shift_window(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_shift_window` of the tables (built once): what the encoder's shift choice weighs."""
        if "shift_window" not in self._cache:
            self._cache["shift_window"] = _shift_window(self.code_lengths(), self.max_symbol, self.version, self.version > 1)
        return self._cache["shift_window"]

    def models(self) -> list:
        """One constriction model per table (built once)."""
        if "models" not in self._cache:
            self._cache["models"] = categorical_models(np.asarray(self.freqs, dtype=np.int64), PRECISION)
        return self._cache["models"]

    @property
    def dims(self) -> int:
        return 1 if self.mu.shape[0] == len(passes(1)) else 2

    @property
    def max_symbol(self) -> int:
        return (self.freqs.shape[1] - 1) // 4

    def check(self) -> tuple[int, int]:
        """Validate shapes and ranges (once); returns ``(C, Q)``. Raises EntropyCodingError."""
        if "checked" not in self._cache:
            self._cache["checked"] = self._check()
        return self._cache["checked"]

    def _check(self) -> tuple[int, int]:
        mu, sigma, f = np.asarray(self.mu), np.asarray(self.sigma), np.asarray(self.freqs)
        if mu.ndim != 3 or mu.shape[0] not in (len(passes(1)), len(passes(2))):
            raise EntropyCodingError(f"grid mu weights must be [passes, C, F], got {mu.shape}")
        dims = self.dims
        C = mu.shape[1]
        if mu.shape != (len(passes(dims)), C, mu_features_count(dims, C)):
            raise EntropyCodingError(f"grid mu weights {mu.shape} do not fit {C} channels of {dims}-D latents")
        if sigma.shape != (mu.shape[0], C, sigma_features_count(dims, C)):
            raise EntropyCodingError(f"grid sigma weights {sigma.shape} do not fit mu weights {mu.shape}")
        if self.version not in VERSIONS:
            raise EntropyCodingError(f"grid model version {self.version!r:.20} is not one of {VERSIONS}")
        rows = table_rows(self.version)
        if f.ndim != 2 or f.shape[0] != rows or f.shape[1] % 4 != 1 or f.shape[1] > 4 * _MAX_Q + 1:
            raise EntropyCodingError(f"grid tables (version {self.version}) must be [{rows}, 4Q + 1] with Q <= {_MAX_Q}, "
                                     f"got {f.shape}")
        if C > MAX_CHANNELS:
            raise EntropyCodingError(f"grid model of {C} channels: at most {MAX_CHANNELS}")
        if not all(a.dtype.kind == "i" and a.dtype.itemsize <= 4 for a in (mu, sigma)):
            raise EntropyCodingError("grid weights must be signed integers of at most 32 bits")
        if mu.size and np.abs(mu.astype(np.int64)).max() > MAX_WEIGHT:
            raise EntropyCodingError(f"grid mu weights must lie in [-{MAX_WEIGHT}, {MAX_WEIGHT}]")
        if sigma.size and (sigma.min() < 0 or sigma.max() > MAX_SIGMA_WEIGHT):
            raise EntropyCodingError(f"grid sigma weights must lie in [0, {MAX_SIGMA_WEIGHT}]")
        n_off = max_offsets(dims)
        later = np.triu(np.ones((C, C), dtype=bool))  # channel j >= k: not decoded yet
        if np.any(mu[:, :, n_off:][:, later]) or np.any(sigma[:, :, -2 * C : -C][:, later]) or np.any(
            sigma[:, :, -C:][:, later]
        ):
            raise EntropyCodingError("grid weights read channels that are not decoded yet")
        check_tables(f, PRECISION)
        return C, self.max_symbol


def laplace_tables(max_symbol: int, counts: np.ndarray | None = None, weight: float = 1.0, version: int = 1) -> np.ndarray:
    """24-bit tables ``[table_rows(version), 4Q + 1]``: residual ``counts`` per table (optional) plus
    ``weight`` symbols of a discretized Laplace at its bucket's scale, so rare or unseen tables stay sensible."""
    from .tables import quantize_pmf

    Q = int(max_symbol)
    mean_abs = np.concatenate([[THRESHOLDS[0] / 2], np.sqrt(THRESHOLDS[:-1] * THRESHOLDS[1:]), [THRESHOLDS[-1] * 1.26]])
    # rho**|r| by sequential products from one scalar exp per bucket (no vectorized exp, whose last
    # bits differ between SIMD builds): the same integer tables on every machine
    rho = np.array([math.exp(-1.0 / max(m / 256.0, 0.02)) for m in mean_abs])[:, None]
    powers = np.cumprod(np.concatenate([np.ones((BUCKETS, 1)), np.repeat(rho, 2 * Q, axis=1)], axis=1), axis=1)
    prior = np.concatenate([powers[:, :0:-1], powers], axis=1)  # |r| = 2Q .. 0 .. 2Q
    prior /= np.cumsum(prior, axis=1)[:, -1:]
    if version == 2:  # the near-integer tables start from their bucket's
        prior = np.concatenate([prior, prior[FRACTION_BUCKETS[0] : FRACTION_BUCKETS[1]]])
    return quantize_pmf(prior * weight if counts is None else counts + weight * prior, PRECISION)


@lru_cache(maxsize=None)
def lattice_pad(dims: int) -> int:
    """Zeros around a ``dims``-D latent in :class:`Lattices`: the farthest neighbour offset."""
    return max((max(abs(x) for x in off) for p in passes(dims) for off in p.offsets), default=0)


BATCH_VALUES = 1 << 21
"""Lattice positions (all channels) :func:`decode_many` holds at once: more latents go in sub-batches,
so that its memory stays bounded (a latent of a few positions is mostly padding)."""


class Lattices:
    """Zero-padded symbol and residual-magnitude arrays ``[C, *padded]``, and strided views of the
    positions of a pass and of their neighbours."""

    def __init__(self, C: int, shape: tuple[int, ...], dims: int, dtype=np.int32, trailing: tuple[int, ...] = ()) -> None:
        self.shape = shape
        self.pad = lattice_pad(dims)
        padded = tuple(s + 2 * self.pad for s in shape)
        # int32 holds every symbol and residual magnitude exactly; so do the coders' float work dtypes
        # (their feature blocks copy from it without a conversion)
        self.q = np.zeros((C, *padded, *trailing), dtype=dtype)
        self.r = np.zeros_like(self.q)  # |residual| of decoded symbols

    def interior(self) -> tuple[slice, ...]:
        return (slice(None),) + tuple(slice(self.pad, self.pad + s) for s in self.shape)

    def index(self, p: Pass, offset: tuple[int, ...] | None = None) -> tuple[slice, ...]:
        return _index(self.shape, self.pad, p, offset)

    def counts(self, p: Pass) -> tuple[int, ...]:
        return _counts(self.shape, p)


def _count(size: int, phase: int, period: int) -> int:
    return max(0, -(-(size - phase) // period))


@lru_cache(maxsize=4096)
def _counts(shape: tuple[int, ...], p: Pass) -> tuple[int, ...]:
    return tuple(_count(s, ph, p.period) for s, ph in zip(shape, p.phase))


@lru_cache(maxsize=4096)
def _index(shape: tuple[int, ...], pad: int, p: Pass, offset: tuple[int, ...] | None) -> tuple[slice, ...]:
    """The strided view of a pass's positions moved by ``offset`` in a lattice padded by ``pad`` (cached:
    the coders ask for the same few per latent shape)."""
    off = offset or (0,) * len(shape)
    return (slice(None),) + tuple(
        slice(pad + ph + o, pad + ph + o + p.period * _count(s, ph, p.period), p.period)
        for s, ph, o in zip(shape, p.phase, off)
    )


def pass_features(lat: Lattices, p: Pass) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For a pass: own-channel neighbour values ``[O, C, n]``, their near-ring spread ``[near, C, n]``,
    own |r| at the neighbours ``[O, C, n]`` and all channels' |r| summed there ``[n]`` (float64 ints)."""
    n = math.prod(lat.counts(p))
    C = lat.q.shape[0]
    if not p.offsets:
        empty = np.zeros((0, C, n))
        return empty, empty, empty, np.zeros(n)
    nb = np.stack([lat.q[lat.index(p, o)].reshape(C, n) for o in p.offsets])
    rr = np.stack([lat.r[lat.index(p, o)].reshape(C, n) for o in p.offsets])
    ring = nb[: p.near]
    spread = np.abs(p.near * ring - ring.sum(0))
    return nb, spread, rr, rr.sum((0, 1))


def predict_raw(w: np.ndarray, nb: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """``sum_i w_i f_i`` ``[C, n]`` (float64 holding exact integers) from weights ``w [C, Fm]``, the
    own channel at the neighbours ``nb [O, C, n]`` and the channels at the position ``cur [C, n]``."""
    O = nb.shape[0]
    wf = w.astype(np.float64)
    C = cur.shape[0]
    s = wf[:, -C:] @ cur
    for o in range(O):
        s += wf[:, o, None] * nb[o]
    return s


def predict(w: np.ndarray, nb: np.ndarray, cur: np.ndarray, Q: int) -> np.ndarray:
    """The prediction ``clip(floor((raw + 128) / 256), -Q, Q)`` (int64) of :func:`predict_raw`."""
    return _clamp((predict_raw(w, nb, cur).astype(np.int64) + 128) >> 8, -Q, Q)


def _clamp(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``a`` clipped to ``[lo, hi]`` in place (np.clip's wrapper costs more than the work on small arrays)."""
    np.maximum(a, lo, out=a)
    return np.minimum(a, hi, out=a)


def scale(v: np.ndarray, spread, rr, rsum, absq, absr, near_max: int, off_max: int) -> np.ndarray:
    """Scale ``[C, n]`` (int64, 1/256 symbol units) from weights ``v [C, Fs]`` and the features of
    :func:`pass_features` and the channels' ``|q|``, ``|r|`` at the position (``[C, n]``)."""
    vf = v.astype(np.float64)
    C = absq.shape[0]
    s = vf[:, -2 * C : -C] @ absq + vf[:, -C:] @ absr
    s += vf[:, :1] + vf[:, 1 + near_max + off_max, None] * rsum
    for i in range(spread.shape[0]):
        s += vf[:, 1 + i, None] * spread[i]
    for o in range(rr.shape[0]):
        s += vf[:, 1 + near_max + o, None] * rr[o]
    return s.astype(np.int64)


def unshifted_buckets(sigma: np.ndarray) -> np.ndarray:
    """Number of :data:`THRESHOLDS` at or below each ``sigma`` (ints >= 0): a table lookup, int16."""
    return _BUCKET_LUT[np.minimum(sigma, len(_BUCKET_LUT) - 1)]


def buckets(sigma: np.ndarray, shift) -> np.ndarray:
    b = unshifted_buckets(sigma) + np.int16(shift)
    return _clamp(b, 0, BUCKETS - 1)


def _neighbour_block(lat: Lattices, p: Pass, block: np.ndarray, C: int, counts: tuple[int, ...]) -> np.ndarray:
    """A pass's neighbour features in ``block`` (the lattices' dtype, reused across passes: its pages are touched
    once): ``[C, 2O + near, n]`` = own q at each offset, own |r| there, then the spread
    ``|near * x_i - sum_j x_j|`` of the near ring (the integers of :func:`pass_features`)."""
    O, near = len(p.offsets), p.near
    n = math.prod(counts)
    feats = block[: C * (2 * O + near) * n].reshape(C, 2 * O + near, n)
    view = feats.reshape(C, 2 * O + near, *counts)
    _copy_offsets(lat.q, lat, p, view[:, :O])
    _copy_offsets(lat.r, lat, p, view[:, O : 2 * O])
    _ring_spread(feats[:, :near], feats[:, 2 * O :])
    return feats


def _copy_offsets(src: np.ndarray, lat: Lattices, p: Pass, out: np.ndarray) -> None:
    """``src`` (``lat.q`` or ``lat.r``) at each of the pass's ``O`` neighbour offsets into the first ``O``
    slots of ``out [C, >= O, *counts]``."""
    for j, o in enumerate(p.offsets):
        np.copyto(out[:, j], src[lat.index(p, o)])


def _ring_spread(ring: np.ndarray, out: np.ndarray) -> None:
    """``|near * x_i - sum_j x_j|`` of the near ring ``[C, near, n]`` into ``out`` (same shape)."""
    np.matmul(_ring_matrix(ring.shape[1], ring.dtype), ring, out=out)
    np.abs(out, out=out)


@lru_cache(maxsize=None)
def _ring_matrix(near: int, dtype) -> np.ndarray:
    """``near * I - 1`` ``[near, near]``: row ``i`` of its product with the ring is ``near * x_i - sum_j x_j``
    (integers within :meth:`GridTables.sum_bound`: exact in the work dtype)."""
    return _frozen((near * np.eye(near) - 1).astype(dtype))


def _frozen(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (a cached array shared by every caller)."""
    a.flags.writeable = False
    return a


def _feature_block(lat: Lattices, dims: int, C: int) -> np.ndarray:
    """One buffer that holds the largest pass's :func:`_neighbour_block`."""
    return np.empty(C * max(math.prod(lat.counts(p)) * (2 * len(p.offsets) + p.near) for p in passes(dims)),
                    dtype=lat.q.dtype)


def residuals(q: np.ndarray, t: GridTables) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pass in coding order (passes with no position left out), ``(residuals [C, n], sigma [C, n])``
    (int64): the integers of :func:`pass_features`, :func:`predict` and :func:`scale` (see
    :func:`_coding_order` for how they are computed); in version 2 the coded, sign-folded residuals."""
    C = q.shape[0]
    r, sigma, _, sizes = _coding_order(q, t)
    out, start = [], 0
    for n in sizes:
        out.append((r[start : start + C * n].reshape(C, n).astype(np.int64),
                    sigma[start : start + C * n].reshape(C, n).astype(np.int64)))
        start += C * n
    return out


def _coding_order(q: np.ndarray, t: GridTables) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[int]]:
    """Every symbol's coded residual, scale and (version 2) fraction quarter (flat; residual and
    scale in :meth:`GridTables.work_dtype` holding exact integers, the quarter int8; None in version 1)
    in coding order: pass by pass (``sizes``: positions per pass, passes with none left out), channel
    by channel, positions in order.

    The encoder knows every symbol, so it needs no step-by-step decoding order: first every pass's
    prediction (from symbols alone) with the scale's constant and near-ring spread, then every residual
    at once, then the scale's terms of ``|q_j|``, ``|r_j|`` and of the residual magnitudes at the
    neighbours (decoded in earlier passes). Every channel of a pass at
    once: neighbour features are copied into one block and weighted by batched matrix products, as
    :func:`decode_many` does (exact: integer terms, every partial sum within :meth:`GridTables.sum_bound`,
    so any summation order gives the same result; and the prediction's ``floor((raw + 128) / 256)`` is a
    float multiplication by a power of two and a floor, its fraction the exact difference)."""
    C, Q = q.shape[0], t.max_symbol
    dims = q.ndim - 1
    dt = t.work_dtype()
    lat = Lattices(C, q.shape[1:], dims, dt)
    lat.q[lat.interior()] = q
    mu_f, sigma_f = t.float_weights()
    block = _feature_block(lat, dims, C)
    cur_all = np.empty(q.size, dtype=dt)  # the symbols in coding order
    x_all = np.empty(q.size, dtype=dt)  # predictions, then residuals
    sigma_all = np.empty(q.size, dtype=dt)
    plan, start = [], 0
    for i, (p, w) in enumerate(zip(passes(dims), _pass_weights(t))):
        counts = lat.counts(p)
        n = math.prod(counts)
        if n == 0:
            continue
        O = len(p.offsets)
        at, idx = slice(start, start + C * n), lat.index(p)
        cur = cur_all[at].reshape(C, n)
        np.copyto(cur.reshape(C, *counts), lat.q[idx])
        x, sigma = x_all[at].reshape(C, n), sigma_all[at].reshape(C, n)
        np.matmul(mu_f[i][:, -C:], cur, out=x)
        if O:
            feats = block[: C * (O + p.near) * n].reshape(C, O + p.near, n)  # own q at the offsets, ring spread
            _copy_offsets(lat.q, lat, p, feats.reshape(C, O + p.near, *counts))
            _ring_spread(feats[:, : p.near], feats[:, O:])
            x += np.matmul(w.mu_nb, feats[:, :O])[:, 0]
            np.matmul(w.sigma_nb[:, :, O:], feats[:, O:], out=sigma[:, None])
            sigma += w.sigma_base
        else:
            sigma[...] = w.sigma_base
        plan.append((i, p, w, idx, counts, n, at))
        start += C * n
    x_all += 128
    x_all *= 1 / 256
    mu = np.floor(x_all)
    quarter_all = None if t.version == 1 else _fraction_quarters(x_all, mu, np.empty(q.size, dtype=np.int8))
    r_all = np.subtract(cur_all, _clamp(mu, -Q, Q), out=x_all)
    if quarter_all is not None:
        r_all *= _SIGN.astype(dt).take(quarter_all)
    absr_all = np.abs(r_all, out=mu)
    absq_all = np.abs(cur_all, out=cur_all)
    for i, p, w, idx, counts, n, at in plan:  # pass by pass: later passes read these residuals
        O, sw = len(p.offsets), sigma_f[i]
        absr, sigma = absr_all[at].reshape(C, n), sigma_all[at].reshape(C, n)
        lat.r[idx] = absr.reshape(C, *counts)
        sigma += sw[:, -2 * C : -C] @ absq_all[at].reshape(C, n)
        sigma += sw[:, -C:] @ absr
        if O:
            rr = block[: C * O * n].reshape(C, O, n)  # own |r| at the offsets
            _copy_offsets(lat.r, lat, p, rr.reshape(C, O, *counts))
            sigma += np.matmul(w.sigma_nb[:, :, :O], rr)[:, 0]
            sigma += w.rsum * rr.sum((0, 1))
    return r_all, sigma_all, quarter_all, [n for *_, n, _ in plan]


def _fraction_quarters(x: np.ndarray, mu: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Version 2: ``floor(4 (x - mu))`` (int8, into ``out``; ``x`` is overwritten) of predictions
    ``x = (raw + 128) / 256`` and ``mu = floor(x)`` before clipping (floats holding exact multiples of
    1/256, so exact): the prediction ``raw / 256`` lies ``x - mu - 1/2`` from ``mu``. Quarters 2 and 3
    (at or above ``mu``) code the residual's negation; 1 and 2 (within a quarter of ``mu``) are near an integer."""
    frac = np.subtract(x, mu, out=x)
    frac *= 4
    return np.floor(frac, out=out, casting="unsafe")


def coded_symbols(q: np.ndarray, t: GridTables) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Every symbol of ``q [C, *spatial]`` in coding order, as flat arrays: its step (pass * C +
    channel, passes with no position left out; int16 while steps * tables < 2**15, else int32), channel
    (same dtype), unshifted bucket (int16), fraction quarter (int8; None in version 1) and coded
    residual (int32, sign-folded in version 2): what :func:`encode` codes and the fit counts."""
    C = q.shape[0]
    r, sigma, quarter, sizes = _coding_order(q, t)
    b = _BUCKET_LUT.take(sigma.astype(np.intp), mode="clip")  # sigma >= 0: clipping is min(sigma, top)
    runs = np.repeat(sizes, C)  # symbols per step
    step_dtype = _step_dtype(len(runs), t.version)
    step = np.repeat(np.arange(len(runs), dtype=step_dtype), runs)
    k = np.repeat(np.tile(np.arange(C, dtype=step_dtype), len(sizes)), runs)
    return step, k, b, quarter, r.astype(np.int32)


def _step_dtype(steps: int, version: int) -> type:
    """int16 while every ``step * tables + table`` fits, else int32."""
    return np.int16 if steps * table_rows(version) < 1 << 15 else np.int32


def symbol_tables(shifts: np.ndarray, k: np.ndarray, b: np.ndarray, quarter: np.ndarray | None, version: int) -> np.ndarray:
    """The table of each symbol (int16) of channel ``k``, unshifted bucket ``b`` and (version 2) fraction
    quarter: :func:`context_map` of its bucket moved by its channel's shift ``shifts [C]`` (clipped), one
    lookup. The encoder's and the fit's, so the fit counts exactly the tables files use."""
    at = ((np.asarray(shifts) - SHIFTS[0]) * (4 * BUCKETS)).astype(np.int16).take(k)
    if quarter is not None:
        at += np.multiply(quarter, BUCKETS, dtype=np.int16)
    at += b
    return _shifted_tables(version).take(at)


@lru_cache(maxsize=None)
def _shifted_tables(version: int) -> np.ndarray:
    """The table of each (shift, fraction quarter, unshifted bucket), flat int16 ``[shifts * 4 * BUCKETS]``:
    :func:`context_map` of the clipped shifted bucket (in version 1 every quarter alike)."""
    tables = context_map(version)[:, _shifted_buckets()].transpose(1, 0, 2)
    return _frozen(np.ascontiguousarray(tables, dtype=np.int16).ravel())


@lru_cache(maxsize=None)
def _shifted_buckets() -> np.ndarray:
    """Each unshifted bucket under each shift, clipped: ``[shift - SHIFTS[0], bucket]``."""
    return _frozen(np.clip(np.arange(BUCKETS)[None, :] + np.arange(SHIFTS[0], SHIFTS[1] + 1)[:, None], 0, BUCKETS - 1))


def code_lengths(freqs: np.ndarray) -> np.ndarray:
    """``-log2(freqs / 2**24)`` in integer units of 2**-16 bits ``[BUCKETS, N]`` (int64): sums of them
    are exact, so the encoder picks the same shifts on every machine."""
    return np.round(-np.log2(np.asarray(freqs, dtype=np.float64) / float(1 << PRECISION)) * 65536.0).astype(np.int64)


def choose_shifts(k: np.ndarray, b: np.ndarray, r: np.ndarray, C: int, lengths: np.ndarray, Q: int, *,
                  quarter: np.ndarray | None = None, version: int = 1) -> np.ndarray:
    """Per channel, the bucket shift in :data:`SHIFTS` that minimizes the coded size of (coded)
    residuals ``r`` of channels ``k`` in unshifted buckets ``b`` (flat int arrays; version 2 also
    their fraction quarters) under :func:`code_lengths` of the tables."""
    quarter = None if quarter is None else np.asarray(quarter)
    window = _shift_window(lengths, Q, version, quarter is not None)
    return _choose_shifts(*(np.asarray(a) for a in (k, b, r)), C, lengths, Q, quarter, window)


def _shift_window(lengths: np.ndarray, Q: int, version: int, fold: bool) -> tuple[np.ndarray, np.ndarray]:
    """For :func:`_choose_shifts`: the table of each (shift, bucket, near an integer) ``[D, B, G]`` (``G``
    = 2 with quarters, else 1) and the code length of each histogram bin under each shift ``[D, B * G * W]``
    (float64; ``W = 2R + 3`` bins per (bucket, near): residuals ``-R .. R`` and two overflow bins of no cost)."""
    G = 2 if fold else 1
    shifted = _shifted_buckets()
    # the tables of a shifted bucket depend on the quarter only through "near an integer" (quarters 1, 2)
    tables = context_map(version)[:G, shifted].transpose(1, 2, 0)  # [D, B, G]
    R = min(2 * Q, _SHIFT_WINDOW)
    window = np.zeros((len(shifted), BUCKETS, G, 2 * R + 3))
    window[..., 1:-1] = lengths[:, 2 * Q - R : 2 * Q + R + 1][tables]
    return tables, window.reshape(len(shifted), -1)


@lru_cache(maxsize=None)
def _bins(fold: bool, W: int) -> np.ndarray:
    """Histogram bin of residual 0 for each unshifted bucket ``b`` (and fraction quarter ``f``: index
    ``f * BUCKETS + b``) within a channel's ``BUCKETS * G * W`` bins (int32)."""
    if not fold:
        return _frozen((np.arange(BUCKETS) * W + W // 2).astype(np.int32))
    return _frozen((np.arange(BUCKETS)[None, :] * 2 * W + _NEAR[:, None] * W + W // 2).astype(np.int32).ravel())


def _choose_shifts(k: np.ndarray, b: np.ndarray, r: np.ndarray, C: int, lengths: np.ndarray, Q: int,
                   quarter: np.ndarray | None, window: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """:func:`choose_shifts` with its :func:`_shift_window` (integer arrays; :func:`encode` takes the model's,
    :meth:`GridTables.shift_window`)."""
    tables, costs_of = window
    G = tables.shape[2]
    R = min(2 * Q, _SHIFT_WINDOW)
    W = 2 * R + 3
    # residuals within +-R by a histogram per (channel, bucket, near) (larger ones land in the overflow
    # bins), then the rare larger ones symbol by symbol; int32 bins: at most MAX_CHANNELS * BUCKETS * 2 * W
    index = np.multiply(k, BUCKETS * G * W, dtype=np.int32)
    index += _bins(quarter is not None, W).take(b if quarter is None else np.multiply(quarter, BUCKETS, dtype=np.int16) + b)
    index += np.clip(r, -R - 1, R + 1)
    hist = np.bincount(index, minlength=C * BUCKETS * G * W)
    # float64 products of integers below 2**53 in total: exact in any summation order
    costs = hist.reshape(C, -1).astype(np.float64) @ costs_of.T
    tails = np.flatnonzero(np.abs(r) > R)  # every residual in an overflow bin (|r| = R + 1 included)
    if len(tails):
        kt, bt, rt = k[tails].astype(np.intp), b[tails].astype(np.intp), r[tails].astype(np.intp) + 2 * Q
        gt = 0 if quarter is None else _NEAR.take(quarter[tails])
        for d in range(len(tables)):
            costs[:, d] += np.bincount(kt, weights=lengths[tables[d][bt, gt], rt].astype(np.float64), minlength=C)
    return np.argmin(costs.astype(np.int64), axis=1) + SHIFTS[0]  # ties: the smallest shift


_SHIFT_WINDOW = 24
"""Residual magnitudes :func:`choose_shifts` counts in a histogram (larger ones one by one)."""


def encode(q: np.ndarray, t: GridTables) -> bytes:
    """Entropy-code signed symbols ``q [C, *spatial]`` with the grid model ``t``; little-endian uint32 words."""
    C, Q = t.check()
    q = np.asarray(q)
    if q.ndim != 1 + t.dims or q.shape[0] != C or not np.issubdtype(q.dtype, np.integer):
        raise EntropyCodingError(f"symbols must be integers of shape [C={C}, {t.dims} spatial dims], got {q.dtype} {q.shape}")
    if q.size and (q.min() < -Q or q.max() > Q):
        raise EntropyCodingError(f"symbols must be in [-{Q}, {Q}]")
    if q.size == 0 or Q == 0:  # nothing to code: every symbol is 0
        return b""
    step, k, b, quarter, r = coded_symbols(q, t)
    rows = table_rows(t.version)
    shifts = _choose_shifts(k, b, r, C, t.code_lengths(), Q, quarter, t.shift_window())
    # decoding order: step by step, table by table (ascending), positions in order within a group
    key = np.multiply(step, rows, dtype=step.dtype)  # fits: see _step_dtype
    key += symbol_tables(shifts, k, b, quarter, t.version)
    order = np.argsort(key, kind="stable")  # a radix sort: int16 keys for the presets
    sym = r.take(order)
    sym += 2 * Q
    counts = np.bincount(key)
    used = counts.nonzero()[0]
    ends = np.cumsum(counts[used]).tolist()
    starts = [0] + ends[:-1]
    models = t.models()
    group_models = itemgetter(*(used % rows).tolist())(models) if len(used) > 1 else [models[used[0] % rows]]
    coder = constriction_module().stream.stack.AnsCoder()
    push = coder.encode_reverse
    for s0, s1, model in zip(starts[::-1], ends[::-1], group_models[::-1]):
        push(sym[s0:s1], model)  # a stack: the first group decoded is pushed last
    push((shifts - SHIFTS[0]).astype(np.int32), _shift_model())
    return coder.get_compressed().astype("<u4").tobytes()


@lru_cache(maxsize=None)
def _shift_model():
    """Uniform over the shifts (an exact integer table)."""
    n = SHIFTS[1] - SHIFTS[0] + 1
    return categorical_models(np.full((1, n), (1 << PRECISION) // n, dtype=np.int64), PRECISION)[0]


def decode(data: bytes, t: GridTables, shape: tuple[int, ...], *, max_symbols: int = MAX_SYMBOLS) -> np.ndarray:
    """Inverse of :func:`encode`: signed int32 symbols ``[C, *shape]`` (:func:`decode_many` of one stream).

    Raises EntropyCodingError (and nothing else) for a bad size, data that is not whole words, or a
    stream that does not decode to exactly these symbols with nothing left over.
    """
    return decode_many([data], t, shape, max_symbols=max_symbols)[0]


class _Batch(Lattices):
    """The lattices of ``S`` latents ``[C, *padded, S]`` (``dtype``, exact integers: copied into the
    feature block as they are): a pass's positions are those of every latent, the latents
    side by side (innermost: contiguous runs however small the latents), so the per-position
    arithmetic of :func:`decode` applies unchanged."""

    def __init__(self, C: int, S: int, shape: tuple[int, ...], dims: int, dtype=np.float64) -> None:
        super().__init__(C, shape, dims, dtype, (S,))
        self.S = S

    def interior(self) -> tuple[slice, ...]:
        return super().interior() + (slice(None),)

    def index(self, p: Pass, offset: tuple[int, ...] | None = None) -> tuple[slice, ...]:
        return super().index(p, offset) + (slice(None),)

    def counts(self, p: Pass) -> tuple[int, ...]:
        return super().counts(p) + (self.S,)


@dataclass(frozen=True)
class _PassWeights:
    """One pass's weights of :func:`predict` and :func:`scale` arranged for the coders
    (:meth:`GridTables.work_dtype`, exact integers)."""

    mu_nb: np.ndarray  # [C, 1, O]: own q at the offsets
    sigma_nb: np.ndarray  # [C, 1, O + near]: own |r| at the offsets, near-ring spread
    rsum: np.ndarray  # [C, 1]: all channels' |r| summed at the offsets
    mu_base: np.ndarray  # [C, 1]: the rounding less 2Q * 256 (so mu comes out less 2Q)
    sigma_base: np.ndarray  # [C, 1]: the constant
    mu_ch: np.ndarray  # [C, C]: channel j's q at the position; 1 at j = k (see decode_many)
    sigma_ch: np.ndarray  # [C, 2C]: channel j's |q|, |r| at the position (columns 2j, 2j + 1); 1 at 2k


def _pass_weights(t: GridTables) -> list[_PassWeights]:
    """Per pass, the weights of :func:`predict` and :func:`scale` for :func:`residuals` and
    :func:`decode_many` (built once)."""
    if "decoder" not in t._cache:
        C, Q = t.check()
        dims = t.dims
        near_max, off_max = max_near(dims), max_offsets(dims)
        mu_f, sigma_f = t.float_weights()
        out = []
        for i, p in enumerate(passes(dims)):
            O, near = len(p.offsets), p.near
            mw, sw = mu_f[i], sigma_f[i]
            mu_nb = np.ascontiguousarray(mw[:, None, :O])
            sigma_nb = np.concatenate([sw[:, 1 + near_max : 1 + near_max + O], sw[:, 1 : 1 + near]], axis=1)[:, None]
            # channel k's weight on its own q and |q| is 0 (checked): 1 there adds the sums parked in those slots
            eye = np.eye(C, dtype=mw.dtype)
            mu_ch = mw[:, -C:] + eye
            sigma_ch = np.stack([sw[:, -2 * C : -C] + eye, sw[:, -C:]], axis=2).reshape(C, 2 * C)
            out.append(_PassWeights(mu_nb, sigma_nb, sw[:, 1 + near_max + off_max, None].copy(),
                                    np.full((C, 1), 128.0 - 512 * Q, dtype=mw.dtype), sw[:, :1].copy(), mu_ch,
                                    sigma_ch))
        t._cache["decoder"] = out
    return t._cache["decoder"]


@lru_cache(maxsize=None)
def _shifted_bucket_lut() -> np.ndarray:
    """:func:`buckets` of every ``sigma`` up to the last threshold, for every shift: int8
    ``[shift - SHIFTS[0], sigma]``."""
    return _shifted_buckets()[:, _BUCKET_LUT].astype(np.int8)


def _decode_step(coders: list, models: list, b: np.ndarray, sample_key: np.ndarray | None) -> np.ndarray:
    """One step's residual indices (int32) from tables ``b [n * S]`` (the latents innermost): each
    latent's groups in ascending tables from its own coder (``coders``: their ``decode`` methods),
    positions in order within a group. ``sample_key``: ``s * len(models)`` at each position, None for
    one latent."""
    rows = len(models)
    if sample_key is None:
        decode = coders[0]
        key = b
        counts = np.bincount(b, minlength=rows)
        used = counts.nonzero()[0]
        if len(used) == 1:
            return decode(models[int(used[0])], len(b))
        parts = [decode(models[j], c) for j, c in zip(used.tolist(), counts[used].tolist())]
    else:
        key = sample_key + b
        counts = np.bincount(key, minlength=len(coders) * rows)
        used = counts.nonzero()[0]
        parts = [coders[s](models[j], c)
                 for s, j, c in zip((used // rows).tolist(), (used % rows).tolist(), counts[used].tolist())]
    out = np.empty(len(b), dtype=np.int32)
    out[np.argsort(key, kind="stable")] = np.concatenate(parts)  # a radix sort: int8 / int16 keys
    return out


def decode_many(datas, t: GridTables, shape: tuple[int, ...], *, max_symbols: int = MAX_SYMBOLS) -> np.ndarray:
    """Decode every stream in ``datas`` (latents of one ``shape``): int32 ``[S, C, *shape]``, the
    symbols :func:`encode` coded, each latent from its own rANS stream; batched over the latents, so
    many small latents decode several times faster than one by one. Raises EntropyCodingError when
    any stream is bad (decode them one by one to learn which).

    The integers of :func:`pass_features`, :func:`predict` and :func:`scale`, arranged as in
    :func:`residuals`: a pass's neighbour terms by batched matrix products, then per channel the
    terms of the channels before it at the position by matrix-vector products (exact in any
    summation order, as there)."""
    C, Q = t.check()
    shape = tuple(int(s) for s in shape)
    datas = list(datas)
    S, dims = len(datas), t.dims
    if len(shape) != dims or min(shape, default=0) < 0 or C * math.prod(shape) > max_symbols:
        raise EntropyCodingError(f"latent of {C} x {shape} symbols is out of range ({dims}-D, at most {max_symbols})")
    if S * C * math.prod(shape) > 1 << 28:
        raise EntropyCodingError(f"{S} latents of {C} x {shape} symbols: too many at once")
    if any(len(d) % 4 for d in datas):
        raise EntropyCodingError(f"rANS data must be a whole number of 4-byte words, got {[len(d) for d in datas][:4]} bytes")
    if S == 0 or C * math.prod(shape) == 0 or Q == 0:
        if any(len(d) for d in datas):
            raise EntropyCodingError(f"expected no rANS data for {C} x {shape} symbols, found some")
        return np.zeros((S, C, *shape), dtype=np.int32)
    per = max(1, BATCH_VALUES // (C * math.prod(n + 2 * lattice_pad(dims) for n in shape)))
    if S > per:
        return np.concatenate([decode_many(datas[i : i + per], t, shape, max_symbols=max_symbols)
                               for i in range(0, S, per)])
    with decoding_errors():
        dt = t.work_dtype()
        lat = _Batch(C, S, shape, dims, dt)
        weights = _pass_weights(t)
        models = t.models()
        ans = constriction_module().stream.stack.AnsCoder
        coders = [ans(np.frombuffer(d, dtype="<u4").astype(np.uint32)) for d in datas]
        shifts = np.stack([c.decode(_shift_model(), C) for c in coders]).astype(np.int64)  # [S, C], less SHIFTS[0]
        table = _shifted_bucket_lut()
        top = table.shape[1] - 1
        rows = [table[d] for d in shifts[0]] if S == 1 else []  # channel k's buckets of sigma: rows[k][sigma]
        decoders = [c.decode for c in coders]
        absr = np.abs(np.arange(4 * Q + 1, dtype=dt) - 2 * Q)  # |r| by residual index
        block = _feature_block(lat, dims, C)
        rows_per = table_rows(t.version)
        fold = t.version == 2
        if fold:
            quarters = np.empty(max(math.prod(lat.counts(p)) for p in passes(dims)), dtype=np.int8)
            signs = _SIGN.astype(dt)
        for p, w in zip(passes(dims), weights):
            counts = lat.counts(p)
            n = math.prod(counts)
            if n == 0:
                continue
            O = len(p.offsets)
            # per channel the decoded q, |q| and |r|; until a channel is decoded, its q and |q| slots
            # hold the sums of its mu and sigma terms that do not come from the channels before it
            q = np.empty((C, n), dtype=dt)
            absqr = np.empty((C, 2, n), dtype=dt)
            if O:
                feats = _neighbour_block(lat, p, block, C, counts)
                np.matmul(w.mu_nb, feats[:, :O], out=q[:, None])
                np.matmul(w.sigma_nb, feats[:, O:], out=absqr[:, :1])
                absqr[:, 0] += w.rsum * feats[:, O : 2 * O].sum((0, 1))
                q += w.mu_base
                absqr[:, 0] += w.sigma_base
            else:
                q[...] = w.mu_base
                absqr[:, 0] = w.sigma_base
            if S == 1:
                sample_key = None
            else:  # each latent's shifted buckets start at (shift - SHIFTS[0]) * (top + 1) in the flat table
                at_k = np.tile(shifts.T * (top + 1), (1, n // S))
                sample_key = np.tile(np.arange(S, dtype=np.int16 if S * rows_per < 1 << 15 else np.int32) * rows_per,
                                     n // S)
            for k in range(C):
                x = w.mu_ch[k, : k + 1] @ q[: k + 1]  # (raw + 128) / 256 - 2Q
                x *= 1 / 256
                mu = np.floor(x)
                if fold:
                    quarter = _fraction_quarters(x, mu, quarters[:n])
                _clamp(mu, -3 * Q, -Q)  # floor((raw + 128) / 256) - 2Q, clipped
                sigma = w.sigma_ch[k, : 2 * k + 1] @ absqr[: k + 1].reshape(2 * k + 2, n)[: 2 * k + 1]
                if S == 1:  # sigma >= 0: clipping the index is min(sigma, top)
                    b = rows[k].take(sigma.astype(np.intp), mode="clip")
                else:
                    b = table.ravel().take(np.minimum(sigma, top, out=sigma).astype(np.intp) + at_k[k])
                if fold:
                    b = _tables_of(b, quarter)
                r = _decode_step(decoders, models, b, sample_key)
                if fold:  # q = mu + sign * (index - 2Q)
                    v = r.astype(dt)
                    v -= 2 * Q
                    v *= signs.take(quarter)
                    v += 2 * Q
                    np.add(mu, v, out=q[k])
                else:
                    np.add(mu, r.astype(dt), out=q[k])
                np.abs(q[k], out=absqr[k, 0])
                absr.take(r, out=absqr[k, 1])
            # out-of-range symbols only make later sums of the pass garbage (still bounded): checked once
            if absqr[:, 0].max() > Q:
                raise EntropyCodingError("rANS data does not match: a decoded symbol is out of range")
            idx = lat.index(p)
            lat.q[idx] = q.reshape(C, *counts)
            lat.r[idx] = absqr[:, 1].reshape(C, *counts)
        for c in coders:
            require_empty(c, "the symbols")
    return np.ascontiguousarray(np.moveaxis(lat.q[lat.interior()], -1, 0), dtype=np.int32)
