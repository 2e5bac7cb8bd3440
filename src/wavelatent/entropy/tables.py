"""Integer frequency tables for entropy coding (numpy only).

A table is a row of ``N`` uint32 frequencies, each >= 1, summing to exactly
``2**PRECISION``; symbol ``s`` is coded with probability ``freqs[s] / 2**PRECISION``.
"""
from __future__ import annotations

import numpy as np

from ..errors import EntropyCodingError

__all__ = ["PRECISION", "check_indices", "check_tables", "ideal_bits", "quantize_pmf"]

PRECISION = 16
"""Bits of the integer tables: every row of a table sums to ``2**PRECISION``."""


def _ranks_desc(key: np.ndarray) -> np.ndarray:
    """Rank of each entry of each row when sorted by ``key`` descending, ties by index."""
    order = np.argsort(-key, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(key.shape[-1])[None, :].repeat(key.shape[0], axis=0), axis=-1)
    return ranks


def quantize_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Turn float pmfs ``[..., N]`` into integer frequency tables of the same shape.

    Rows need not be normalized but must be finite, >= 0 and have a positive sum; ``N``
    must be at most ``2**precision / 2``. Returns uint32 with every entry >= 1 and every
    row summing to exactly ``2**precision``.

    The table approximately minimizes the cross-entropy ``-sum(p * log2(f))`` under those
    constraints: symbols whose scaled probability would fall below 1 are clamped to 1, the
    mass that costs is taken from the other symbols in proportion to their probability
    (water-filling), and the remaining units go to the largest fractional remainders, ties
    broken by the lower symbol index. Only float64 IEEE arithmetic with a fixed order of
    operations (sequential cumulative sums, stable sorts) and integer arithmetic are used,
    so the result is deterministic across platforms.
    """
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)) or not 1 <= precision <= 24:
        raise ValueError(f"precision must be an int in [1, 24], got {precision!r}")
    p = np.asarray(pmf, dtype=np.float64)
    if p.ndim == 0:
        raise ValueError("pmf must have at least one dimension [..., N], got a scalar")
    shape = p.shape
    n = shape[-1]
    total = 1 << int(precision)
    if n < 1 or n > total // 2:
        raise ValueError(f"pmf must have 1 <= N <= 2**precision / 2 = {total // 2} symbols, got N={n}")
    p = p.reshape(-1, n)
    if p.shape[0] == 0:
        return np.zeros(shape, dtype=np.uint32)
    if not np.all(np.isfinite(p)):
        raise ValueError("pmf must be finite (found NaN or inf)")
    if np.any(p < 0):
        raise ValueError(f"pmf must be >= 0, found minimum {p.min()!r}")
    # Sequential sums (np.cumsum) rather than np.sum, whose pairwise order is an implementation detail.
    row_sum = np.cumsum(p, axis=-1)[:, -1:]
    if not np.all(row_sum > 0) or not np.all(np.isfinite(row_sum)):
        raise ValueError("every pmf row must have a positive, finite sum")
    q = p / row_sum
    rows = q.shape[0]

    # Water-filling: the top k symbols (by probability) get lam * q with
    # lam = (total - (n - k)) / S_k; the others are clamped to 1. k is the largest k for which
    # the smallest of the top k still gets >= 1, i.e. (total - n + k) * q_(k) >= S_k.
    order = np.argsort(-q, axis=-1, kind="stable")
    q_sorted = np.take_along_axis(q, order, axis=-1)
    cum_sorted = np.cumsum(q_sorted, axis=-1)
    k = np.arange(1, n + 1, dtype=np.float64)[None, :]
    fits = (total - n + k) * q_sorted >= cum_sorted
    fits[:, 0] = True  # the most probable symbol always gets >= 1
    k_star = n - np.argmax(fits[:, ::-1], axis=-1)  # largest k with fits; [rows]
    lam = (total - n + k_star) / cum_sorted[np.arange(rows), k_star - 1]
    ranks = _ranks_desc(q)
    free = ranks < k_star[:, None]
    target = lam[:, None] * q
    floor = np.floor(target)
    freqs = np.where(free, np.maximum(floor, 1.0), 1.0).astype(np.int64)

    # Largest remainder among the unclamped symbols.
    deficit = total - freqs.sum(axis=-1)
    remainder = np.where(free, target - floor, -1.0)
    freqs += (_ranks_desc(remainder) < deficit[:, None]).astype(np.int64) * (deficit[:, None] > 0)

    # Float rounding can leave a row off by a unit or two; fix it on the largest entries.
    diff = total - freqs.sum(axis=-1)
    while np.any(diff != 0):
        bad = np.nonzero(diff)[0]
        sub = freqs[bad]
        step = np.sign(diff[bad])[:, None]
        room = sub > 1  # never push an entry below 1
        key = np.where((step > 0) | room, sub, -1).astype(np.float64)
        count = np.minimum(np.abs(diff[bad]), np.where(step[:, 0] > 0, n, room.sum(axis=-1)))
        sub += step * (_ranks_desc(key) < count[:, None])
        freqs[bad] = sub
        diff = total - freqs.sum(axis=-1)
    return freqs.astype(np.uint32).reshape(shape)


def check_tables(freqs: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Validate ``freqs [C, N]``; return it as int64. Raises EntropyCodingError."""
    f = np.asarray(freqs)
    if f.ndim != 2 or f.shape[1] < 1:
        raise EntropyCodingError(f"freqs must have shape [C, N] with N >= 1, got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        if not np.issubdtype(f.dtype, np.floating) or not np.all(np.isfinite(f)) or np.any(f != np.round(f)):
            raise EntropyCodingError(f"freqs must hold integers, got dtype {f.dtype}")
    if f.size and (f.min() < 1 or f.max() > (1 << precision)):
        raise EntropyCodingError(f"freqs must be in [1, 2**{precision}], found range [{f.min()}, {f.max()}]")
    f = f.astype(np.int64)
    sums = f.sum(axis=-1)
    bad = np.nonzero(sums != (1 << precision))[0]
    if bad.size:
        raise EntropyCodingError(
            f"every freqs row must sum to 2**{precision} = {1 << precision}; row {bad[0]} sums to {sums[bad[0]]}"
        )
    return f


def check_indices(indices: np.ndarray, channels: int, symbols: int) -> np.ndarray:
    """Validate ``indices [C, n]`` against ``C`` channels and ``N`` symbols; return int64."""
    q = np.asarray(indices)
    if q.ndim != 2 or q.shape[0] != channels:
        raise EntropyCodingError(f"indices must have shape [C={channels}, n], got shape {q.shape}")
    if q.size == 0:
        return q.astype(np.int64)
    if not np.issubdtype(q.dtype, np.integer):
        raise EntropyCodingError(f"indices must be integers, got dtype {q.dtype}")
    lo, hi = int(q.min()), int(q.max())
    if lo < 0 or hi >= symbols:
        raise EntropyCodingError(f"indices must be in [0, {symbols}), found range [{lo}, {hi}]")
    return q.astype(np.int64)


def ideal_bits(indices: np.ndarray, freqs: np.ndarray, precision: int = PRECISION) -> float:
    """Information content ``sum(-log2(freq / 2**precision))`` of ``indices [C, n]``.

    Channel ``c`` is measured with table ``freqs[c]`` (``[C, N]``): the size an ideal
    entropy coder would reach, and the one the rANS coder approaches.
    """
    f = check_tables(freqs, precision)
    q = check_indices(indices, f.shape[0], f.shape[1])
    if q.size == 0:
        return 0.0
    used = np.take_along_axis(f, q, axis=-1)
    return float(precision * used.size - np.log2(used.astype(np.float64)).sum())
