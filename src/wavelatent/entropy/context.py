"""Context-adaptive rANS for 2D latents: checkerboard + channel contexts (numpy + constriction).

Symbols ``q [C, h, w]`` (signed) are coded in two passes, anchors (``(i + j)`` even) first, then
the other half; within a pass channel 0 first, and within a channel the positions grouped by
context (ascending), raster order inside a group. A symbol's table is chosen by an integer
context computed only from symbols decoded before it, so the decoder recomputes it exactly:

* anchors of channel ``k``: ``a = sum_{j<k} |q_j|`` at the same position, bucketed by
  ``thresholds[k, 0]`` into ``ANCHOR_LEVELS`` contexts;
* the others: ``a`` likewise (``thresholds[k, 1]``), ``b = `` the sum of ``|q_j|`` over all channels
  at the 4 neighbours (all anchors), ``c = `` the sum of ``|q_k|`` at the 4 neighbours (zero
  outside the image), each bucketed into ``LEVELS`` levels; ``lut[k]`` maps the ``LEVELS**3``
  combinations to ``BUCKETS`` contexts, numbered after the anchors'.

All of it is integer arithmetic (sums, ``searchsorted`` on integer thresholds, a lookup), so
encoder and decoder agree on any machine. Tables are ``[C, CONTEXTS, N]`` integer frequencies
(:mod:`~wavelatent.entropy.tables`), fitted on training latents
by earlier releases; files of ``image-rgb-4x`` v2 use it, and its tables stay in the weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EntropyCodingError
from .rans import MAX_SYMBOLS, categorical_models, constriction_module, decoding_errors, require_empty
from .tables import check_tables

__all__ = [
    "ANCHOR_LEVELS", "BUCKETS", "CONTEXTS", "LEVELS", "THRESHOLDS", "ContextTables", "combination", "contexts", "decode",
    "encode", "split_features",
]

ANCHOR_LEVELS = 6
LEVELS = 8
BUCKETS = 16
CONTEXTS = ANCHOR_LEVELS + BUCKETS
THRESHOLDS = max(ANCHOR_LEVELS, LEVELS) - 1  # width of a thresholds row
MAX_THRESHOLD = 1 << 20  # bounds the level lookup tables


@dataclass(frozen=True)
class ContextTables:
    """One quality's context model: ``thresholds [C, 4, THRESHOLDS]`` (int64: anchor ``a``,
    then ``a``, ``b``, ``c`` of the other half), ``lut [C, LEVELS**3]`` (int64 in ``[0, BUCKETS)``),
    ``freqs [C, CONTEXTS, N]`` (integer tables); symbol ``q`` is coded as index ``q + (N - 1) / 2``."""

    thresholds: np.ndarray
    lut: np.ndarray
    freqs: np.ndarray

    def check(self) -> tuple[int, int]:
        """Validate shapes and ranges; returns ``(C, N)``. Raises EntropyCodingError."""
        t, lut, f = np.asarray(self.thresholds), np.asarray(self.lut), np.asarray(self.freqs)
        if f.ndim != 3 or f.shape[1] != CONTEXTS or f.shape[2] % 2 == 0:
            raise EntropyCodingError(f"context freqs must be [C, {CONTEXTS}, odd N], got {f.shape}")
        C = f.shape[0]
        if t.shape != (C, 4, THRESHOLDS) or lut.shape != (C, LEVELS**3):
            raise EntropyCodingError(f"context thresholds {t.shape} / lut {lut.shape} do not fit {C} channels")
        if t.size and (t.min() < 0 or t.max() > MAX_THRESHOLD or np.any(np.diff(t, axis=-1)[:, 1:, : LEVELS - 2] < 0)
                       or np.any(np.diff(t[:, 0, : ANCHOR_LEVELS - 1], axis=-1) < 0)):
            raise EntropyCodingError(f"context thresholds must be sorted integers in [0, {MAX_THRESHOLD}]")
        if lut.size and (lut.min() < 0 or lut.max() >= BUCKETS):
            raise EntropyCodingError(f"context lut entries must be in [0, {BUCKETS})")
        return C, f.shape[2]


def _checkerboard(h: int, w: int) -> np.ndarray:
    return (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0


def _neighbour_sum(a: np.ndarray) -> np.ndarray:
    """Sum of the 4 neighbours of every position of ``a [..., h, w]`` (zero outside)."""
    out = np.zeros_like(a)
    out[..., 1:, :] += a[..., :-1, :]
    out[..., :-1, :] += a[..., 1:, :]
    out[..., :, 1:] += a[..., :, :-1]
    out[..., :, :-1] += a[..., :, 1:]
    return out


def _level(thresholds: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Number of ``thresholds`` (sorted ints) <= each of ``v`` (ints >= 0), as uint8: a table lookup."""
    top = int(max(thresholds.max(initial=0), 0)) + 1
    table = np.searchsorted(thresholds, np.arange(top + 1), side="right").astype(np.uint8)
    return table[np.minimum(v, top)]


def _anchor_context(t: ContextTables, k: int, a: np.ndarray) -> np.ndarray:
    return _level(t.thresholds[k, 0, : ANCHOR_LEVELS - 1], a)


def combination(thresholds: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Index in ``[0, LEVELS**3)`` of the levels of ``a, b, c`` under one channel's ``thresholds [4, THRESHOLDS]``."""
    th = thresholds[:, : LEVELS - 1]
    return (_level(th[1], a).astype(np.intp) * LEVELS + _level(th[2], b)) * LEVELS + _level(th[3], c)


def _other_context(t: ContextTables, k: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (ANCHOR_LEVELS + t.lut[k][combination(t.thresholds[k], a, b, c)]).astype(np.uint8)


def _exclusive_prefix(m: np.ndarray) -> np.ndarray:
    """``out[k] = m[0] + ... + m[k-1]`` along axis 0 (a loop of adds: faster than cumsum on axis 0)."""
    out = np.empty_like(m)
    running = np.zeros_like(m[0])
    for k in range(m.shape[0]):
        out[k] = running
        running += m[k]
    return out


def split_features(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The context features of ``q [C, h, w]``, split into the two halves (raster order within each):
    ``(anchors [h, w] bool, a at anchors [C, n_a], a elsewhere [C, n_o], b [n_o], c [C, n_o])``, with
    ``a`` the sum of ``|q|`` over earlier channels at the position, ``b`` over all channels at the 4
    neighbours and ``c`` over the own channel at the 4 neighbours (neighbours of the other half are anchors)."""
    anchors = _checkerboard(*q.shape[1:])
    mag = np.abs(q.astype(np.int32))
    mag_anchor = mag * anchors
    a_anchor = _exclusive_prefix(mag[:, anchors])
    a_other = _exclusive_prefix(mag[:, ~anchors])
    b = _neighbour_sum(mag_anchor.sum(0))[~anchors]
    c = _neighbour_sum(mag_anchor)[:, ~anchors]
    return anchors, a_anchor, a_other, b, c


def _split_contexts(q: np.ndarray, t: ContextTables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(anchors [h, w] bool, contexts at anchors [C, n_a], contexts elsewhere [C, n_o])`` (uint8),
    positions in raster order within each half."""
    anchors, a_anchor, a_other, b, c = split_features(q)
    ctx_a = np.empty(a_anchor.shape, dtype=np.uint8)
    ctx_o = np.empty(a_other.shape, dtype=np.uint8)
    for k in range(q.shape[0]):
        ctx_a[k] = _anchor_context(t, k, a_anchor[k])
        ctx_o[k] = _other_context(t, k, a_other[k], b, c[k])
    return anchors, ctx_a, ctx_o


def contexts(q: np.ndarray, t: ContextTables) -> np.ndarray:
    """Context index ``[C, h, w]`` (uint8) of every symbol of ``q`` (what the decoder will compute)."""
    anchors, ctx_a, ctx_o = _split_contexts(q, t)
    ctx = np.empty(q.shape, dtype=np.uint8)
    ctx[:, anchors] = ctx_a
    ctx[:, ~anchors] = ctx_o
    return ctx


def encode(q: np.ndarray, t: ContextTables) -> bytes:
    """Entropy-code signed symbols ``q [C, h, w]`` with the context model ``t``; little-endian uint32 words."""
    C, N = t.check()
    q = np.asarray(q)
    if q.ndim != 3 or q.shape[0] != C or not np.issubdtype(q.dtype, np.integer):
        raise EntropyCodingError(f"symbols must be integers of shape [C={C}, h, w], got {q.dtype} {q.shape}")
    half = (N - 1) // 2
    if q.size and (q.min() < -half or q.max() > half):
        raise EntropyCodingError(f"symbols must be in [-{half}, {half}]")
    if q.size == 0 or N == 1:
        return b""
    models = categorical_models(check_tables(np.asarray(t.freqs).reshape(C * CONTEXTS, N)))
    anchors, ctx_a, ctx_o = _split_contexts(q, t)
    groups: list[tuple[np.ndarray, int]] = []  # (indices, model) in decoding order
    for sym_all, ctx in ((q[:, anchors], ctx_a), (q[:, ~anchors], ctx_o)):
        sym_all = sym_all.astype(np.int32) + half
        for k in range(C):
            order = np.argsort(ctx[k], kind="stable")
            bounds = np.searchsorted(ctx[k][order], np.arange(CONTEXTS + 1))
            for j in np.nonzero(np.diff(bounds))[0]:
                groups.append((sym_all[k][order[bounds[j] : bounds[j + 1]]], k * CONTEXTS + int(j)))
    coder = constriction_module().stream.stack.AnsCoder()
    for sym, m in reversed(groups):  # a stack: the first group decoded is pushed last
        coder.encode_reverse(sym, models[m])
    return coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, t: ContextTables, shape: tuple[int, int], *, max_symbols: int = MAX_SYMBOLS) -> np.ndarray:
    """Inverse of :func:`encode`: signed int32 symbols ``[C, h, w]`` for a latent of ``shape = (h, w)``.

    Raises EntropyCodingError (and nothing else) for a bad size, data that is not whole words,
    or a stream that does not decode to exactly these symbols with nothing left over.
    """
    C, N = t.check()
    h, w = (int(s) for s in shape)
    if h < 0 or w < 0 or C * h * w > max_symbols:
        raise EntropyCodingError(f"latent of {C} x {h} x {w} symbols is out of range (at most {max_symbols})")
    if len(data) % 4:
        raise EntropyCodingError(f"rANS data must be a whole number of 4-byte words, got {len(data)} bytes")
    half = (N - 1) // 2
    q = np.zeros((C, h, w), dtype=np.int64)
    if C * h * w == 0 or N == 1:
        if len(data):
            raise EntropyCodingError(f"expected no rANS data for {C} x {h} x {w} symbols, found {len(data)} bytes")
        return q.astype(np.int32)
    anchors = _checkerboard(h, w)
    with decoding_errors():
        models = categorical_models(check_tables(np.asarray(t.freqs).reshape(C * CONTEXTS, N)))
        coder = constriction_module().stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        mag = np.zeros((C, h, w), dtype=np.int64)
        prev = np.zeros((h, w), dtype=np.int64)  # sum of |q_j| over the channels decoded so far
        for k in range(C):  # anchors
            cx = _anchor_context(t, k, prev[anchors])
            q[k][anchors] = _decode_groups(coder, models, k, cx) - half
            mag[k] = np.abs(q[k]) * anchors
            prev += mag[k]
        b = _neighbour_sum(prev)
        prev[:] = 0
        for k in range(C):  # the other half
            cx = _other_context(t, k, prev[~anchors], b[~anchors], _neighbour_sum(mag[k])[~anchors])
            q[k][~anchors] = _decode_groups(coder, models, k, cx) - half
            prev += np.abs(q[k])
        require_empty(coder, "the symbols")
    return q.astype(np.int32)


def _decode_groups(coder, models: list, k: int, cx: np.ndarray) -> np.ndarray:
    """Decode the symbols of one channel and pass whose contexts are ``cx`` (flat), group by group."""
    out = np.empty(cx.shape, dtype=np.int64)
    order = np.argsort(cx, kind="stable")
    bounds = np.searchsorted(cx[order], np.arange(CONTEXTS + 1))
    for j in range(CONTEXTS):
        n = int(bounds[j + 1] - bounds[j])
        if n:
            out[order[bounds[j] : bounds[j + 1]]] = coder.decode(models[k * CONTEXTS + j], n)
    return out
