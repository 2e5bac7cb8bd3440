"""Periodized CDF 9/7 (``bior4.4``) wavelet packet analysis and synthesis in torch.

Every level splits *every* band again (full packet tree), with a periodized
(circular) boundary, so a signal whose size is divisible by ``2**levels`` maps to
exactly as many coefficients as it has samples, and back without loss.
The filters are PyWavelets' ``pywt.Wavelet("bior4.4")`` decomposition and
reconstruction filters, hard-coded below; coefficients equal PyWavelets'
``mode="periodization"`` packets (PyWavelets is only a test oracle).

Channel order
-------------
Output channels are input-channel-major, then packet band: channel
``c * n_bands + k`` holds band ``k`` of input channel ``c``.

* 1D (``n_bands = 2**levels``): ``k`` is the base-2 number whose digits are the
  per-level subbands, first level most significant, with ``a=0, d=1``. Band ``k``
  of channel ``c`` equals
  ``pywt.WaveletPacket(x[c], "bior4.4", mode="periodization", maxlevel=J)[path].data``
  where ``path`` is the ``k``-th element of
  ``["".join(p) for p in itertools.product("ad", repeat=J)]``.
* 2D (``n_bands = 4**levels``): ``k`` is the base-4 number whose digits are the
  per-level subbands, first level most significant, with PyWavelets' names
  ``a=0, h=1, v=2, d=3`` (``h`` = detail along H / low along W, ``v`` = low along H /
  detail along W, ``d`` = detail along both). Band ``k`` of channel ``c`` equals
  ``pywt.WaveletPacket2D(x[c], "bior4.4", mode="periodization", maxlevel=J)[path].data``
  where ``path`` is the ``k``-th element of
  ``["".join(p) for p in itertools.product("ahvd", repeat=J)]``.

Conventions (for one level, signal length ``N``, ``M = N / 2``, indices mod ``N``/``M``)::

    lo[k] = sum_j dec_lo[j] * x[2k + 5 - j]          hi[k] likewise with dec_hi
    x[n]  = sum_k lo[k] * rec_lo[n - 2k + 4] + hi[k] * rec_hi[n - 2k + 4]

Reference path, one level at a time: analysis is a stride-2 convolution, synthesis a
polyphase convolution followed by interleaving (``_analysis_1d_levels`` and friends).

Fast path (what the public functions run): ``J`` levels along one axis are one bank of
``2**J`` filters decimated by ``2**J`` (equivalent filters of ``8 * (2**J - 1) + 1`` taps,
derived once in float64 by pushing impulses through the reference path). Each axis is then
one batched matrix product over overlapping windows (a block-Toeplitz matrix computes a few
neighbouring output blocks per window), so 2D analysis or synthesis is two matrix products
and a few layout copies instead of ``2 * J`` convolutions. Trees deeper than 3 levels run in
stages of at most 3 levels (the equivalent filters grow with ``2**J``).

The circular boundary is an index wrap, so any size divisible by ``2**levels`` works,
however short. All functions are batched, differentiable, and run in the dtype and on the
device of their input.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from wavelatent.errors import InputError

__all__ = [
    "analysis_1d", "synthesis_1d", "analysis_2d", "synthesis_2d", "analysis_2d_approximation",
    "analysis_halo", "synthesis_halo",
]

# pywt.Wavelet("bior4.4") filters (PyWavelets 1.x), length 10.
DEC_LO: tuple[float, ...] = (
    0.0, 0.03782845550726404, -0.023849465019556843, -0.11062440441843718,
    0.37740285561283066, 0.8526986790088938, 0.37740285561283066,
    -0.11062440441843718, -0.023849465019556843, 0.03782845550726404,
)
DEC_HI: tuple[float, ...] = (
    0.0, -0.06453888262869706, 0.04068941760916406, 0.41809227322161724,
    -0.7884856164055829, 0.41809227322161724, 0.04068941760916406,
    -0.06453888262869706, 0.0, 0.0,
)
REC_LO: tuple[float, ...] = (
    0.0, -0.06453888262869706, -0.04068941760916406, 0.41809227322161724,
    0.7884856164055829, 0.41809227322161724, -0.04068941760916406,
    -0.06453888262869706, 0.0, 0.0,
)
REC_HI: tuple[float, ...] = (
    0.0, -0.03782845550726404, -0.023849465019556843, 0.11062440441843718,
    0.37740285561283066, -0.8526986790088938, 0.37740285561283066,
    0.11062440441843718, -0.023849465019556843, -0.03782845550726404,
)

# Analysis: out[k] = sum_i w[i] * xpad[2k + i] with w = reversed filter and
# xpad[m] = x[m - 4]; the reversed filters' last tap (dec_*[0]) is zero, so 9 taps.
_ANALYSIS_TAPS = 9
_ANALYSIS_PAD = (4, 3)  # samples wrapped in before / after
_ANALYSIS_WEIGHT = tuple(tuple(f[::-1][:_ANALYSIS_TAPS]) for f in (DEC_LO, DEC_HI))

# Synthesis, polyphase: x[2m + p] = sum_i w[p][b][i] * cpad_b[m + i] with
# cpad[j] = c[j - 2] and w[p][b][i] = rec_b[8 - 2i + p]  (5 taps, phases p = 0, 1).
_SYNTHESIS_TAPS = 5
_SYNTHESIS_PAD = (2, 2)
_SYNTHESIS_WEIGHT = tuple(
    tuple(tuple(rec[8 - 2 * i + p] for i in range(_SYNTHESIS_TAPS)) for rec in (REC_LO, REC_HI))
    for p in (0, 1)
)


# --------------------------------------------------------------------------- helpers
def _analysis_weight(like: Tensor) -> Tensor:
    """``[2, 9]`` (lo, hi) stride-2 correlation taps in ``like``'s dtype and device."""
    return torch.tensor(_ANALYSIS_WEIGHT, dtype=like.dtype, device=like.device)


def _synthesis_weight(like: Tensor) -> Tensor:
    """``[2 phases, 2 bands, 5]`` polyphase taps in ``like``'s dtype and device."""
    return torch.tensor(_SYNTHESIS_WEIGHT, dtype=like.dtype, device=like.device)


def _wrap(x: Tensor, dim: int, pad: tuple[int, int], dtype: torch.dtype | None = None) -> Tensor:
    """Circularly extend ``x`` along ``dim`` by ``pad = (before, after)`` samples (as ``dtype``).

    Returns a contiguous tensor: ``x`` (possibly a permuted view, possibly of another dtype) is
    copied once into the middle, the borders are copied from there. Signals shorter than the
    padding fall back to an index wrap.
    """
    dim %= x.dim()
    n = x.shape[dim]
    before, after = pad
    if before > n or after > n:
        index = torch.arange(-before, n + after, device=x.device) % n
        return x.index_select(dim, index).to(dtype or x.dtype).contiguous()
    shape = list(x.shape)
    shape[dim] = before + n + after
    out = x.new_empty(shape, dtype=dtype or x.dtype)
    out.narrow(dim, before, n).copy_(x)
    out.narrow(dim, 0, before).copy_(out.narrow(dim, n, before))
    out.narrow(dim, before + n, after).copy_(out.narrow(dim, before, after))
    return out


def _check_levels(levels: int) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int):
        raise InputError(f"levels must be an int, got {type(levels).__name__}")
    if levels < 0:
        raise InputError(f"levels must be >= 0, got {levels}")


def _check_tensor(x: Tensor, *, rank: int, name: str, layout: str, integers: bool = False) -> None:
    if not isinstance(x, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        raise InputError(f"{name} must have shape {layout}, got {tuple(x.shape)}")
    if integers and x.dtype in (torch.uint8, torch.int16, torch.int32):
        return
    if not x.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_divisible(x: Tensor, *, levels: int, name: str, dims: tuple[int, ...]) -> None:
    factor = 2**levels
    for dim in dims:
        if x.shape[dim] % factor != 0:
            raise InputError(
                f"{name} size {x.shape[dim]} along dim {dim} is not divisible by "
                f"2**levels = {factor} (shape {tuple(x.shape)}, levels={levels})"
            )


def _check_channels(coeffs: Tensor, *, n_bands: int, levels: int) -> None:
    if coeffs.shape[1] % n_bands != 0:
        raise InputError(
            f"coeffs channel count {coeffs.shape[1]} is not divisible by the "
            f"{n_bands} packet bands of levels={levels}"
        )


# --------------------------------------------------------------------------- reference path
# One level at a time; inputs already checked. Kept as the reference for the fast path
# (tests compare the two) and to derive the fast path's filters.
def _analysis_1d_levels(x: Tensor, levels: int) -> Tensor:
    batch, channels, length = x.shape
    weight = _analysis_weight(x).unsqueeze(1)  # [2, 1, 9]
    coeffs = x.reshape(batch * channels, 1, length)
    for _ in range(levels):
        # [N, 1, L] -> [N, 2, L/2] -> [2N, 1, L/2]: each band splits into (lo, hi) in place.
        coeffs = F.conv1d(_wrap(coeffs, -1, _ANALYSIS_PAD), weight, stride=2)
        length //= 2
        coeffs = coeffs.reshape(-1, 1, length)
    return coeffs.reshape(batch, channels * 2**levels, length)


def _synthesis_1d_levels(coeffs: Tensor, levels: int) -> Tensor:
    batch, channels, length = coeffs.shape
    weight = _synthesis_weight(coeffs)  # [2 phases, 2 bands, 5]
    x_hat = coeffs
    for _ in range(levels):
        # [N, 2 bands, M] -> [N, 2 phases, M] -> interleave -> [N, 2M].
        x_hat = x_hat.reshape(-1, 2, length)
        phases = F.conv1d(_wrap(x_hat, -1, _SYNTHESIS_PAD), weight)
        length *= 2
        x_hat = phases.transpose(1, 2).reshape(-1, length)
    return x_hat.reshape(batch, channels // 2**levels, length)


def _analysis_2d_levels(x: Tensor, levels: int) -> Tensor:
    batch, channels, height, width = x.shape
    taps = _analysis_weight(x)
    weight_w = taps.reshape(2, 1, 1, _ANALYSIS_TAPS)
    weight_h = taps.reshape(2, 1, _ANALYSIS_TAPS, 1)
    coeffs = x.reshape(batch * channels, 1, height, width)
    for _ in range(levels):
        # Along W: [N, 1, H, W] -> [N, 2 (w band), H, W/2] -> [2N, 1, H, W/2].
        coeffs = F.conv2d(_wrap(coeffs, -1, _ANALYSIS_PAD), weight_w, stride=(1, 2))
        width //= 2
        coeffs = coeffs.reshape(-1, 1, height, width)
        # Along H: -> [2N, 2 (h band), H/2, W/2]; band digit = 2 * w_band + h_band,
        # i.e. a (lo, lo) = 0, h (h detail) = 1, v (w detail) = 2, d = 3.
        coeffs = F.conv2d(_wrap(coeffs, -2, _ANALYSIS_PAD), weight_h, stride=(2, 1))
        height //= 2
        coeffs = coeffs.reshape(-1, 1, height, width)
    return coeffs.reshape(batch, channels * 4**levels, height, width)


def _synthesis_2d_levels(coeffs: Tensor, levels: int) -> Tensor:
    batch, channels, height, width = coeffs.shape
    taps = _synthesis_weight(coeffs)  # [2 phases, 2 bands, 5]
    weight_h = taps.unsqueeze(-1)  # [2, 2, 5, 1]
    weight_w = taps.unsqueeze(-2)  # [2, 2, 1, 5]
    x_hat = coeffs
    for _ in range(levels):
        # Along H: [N, 2 (h band), H, W] -> [N, 2 phases, H, W] -> [N, 2H, W].
        x_hat = x_hat.reshape(-1, 2, height, width)
        phases = F.conv2d(_wrap(x_hat, -2, _SYNTHESIS_PAD), weight_h)
        height *= 2
        x_hat = phases.transpose(1, 2).reshape(-1, 2, height, width)
        # Along W: [N, 2 (w band), 2H, W] -> [N, 2 phases, 2H, W] -> [N, 2H, 2W].
        phases = F.conv2d(_wrap(x_hat, -1, _SYNTHESIS_PAD), weight_w)
        width *= 2
        x_hat = phases.permute(0, 2, 3, 1).reshape(-1, height, width)
    return x_hat.reshape(batch, channels // 4**levels, height, width)


# --------------------------------------------------------------------------- fast path
class _Bank(NamedTuple):
    """``levels`` packet levels along one axis as one filter bank (float64, CPU), ``s = 2**levels``.

    ``analysis [s bands, taps]``: ``c_b[m] = sum_t analysis[b, t] * x[s*m + t - analysis_offset]``.
    ``synthesis [s phases, s bands, K]``: ``x[s*q + p] = sum_{b, i} synthesis[p, b, i] * c_b[q + i - before]``
    with ``synthesis_pad = (before, after)``, ``K = before + after + 1``.
    """

    analysis: Tensor
    analysis_offset: int
    synthesis: Tensor
    synthesis_pad: tuple[int, int]


def _support(circular: Tensor) -> tuple[int, int]:
    """First and last signed index (mod the length) of the nonzero columns of ``circular [R, n]``."""
    n = circular.shape[-1]
    index = torch.arange(n)
    signed = torch.where(index < n // 2, index, index - n)[circular.ne(0).any(0)]
    return int(signed.min()), int(signed.max())


@functools.lru_cache(maxsize=None)
def _bank(levels: int) -> _Bank:
    """The equivalent filters, from impulses pushed through the reference path (exact zeros outside)."""
    s = 2**levels
    n = 32 * s  # long enough that the (< 9 s) supports never meet around the circle
    phase = torch.arange(s)
    with torch.inference_mode(False), torch.no_grad():
        # Analysis: an impulse at sample r gives c_b[m] = A_b[(r - s*m) mod n].
        x = torch.zeros(s, 1, n, dtype=torch.float64)
        x[phase, 0, phase] = 1.0
        responses = _analysis_1d_levels(x, levels)  # [s (r), s (b), n / s (m)]
        index = (phase[:, None] - s * torch.arange(n // s)) % n
        circular = torch.zeros(s, n, dtype=torch.float64)
        circular[:, index] = responses.transpose(0, 1)
        first, last = _support(circular)
        analysis = circular[:, torch.arange(first, last + 1) % n].contiguous()
        # Synthesis: a coefficient impulse in band b at position 0 gives x = S_b.
        coeffs = torch.zeros(s, s, n // s, dtype=torch.float64)
        coeffs[phase, phase, 0] = 1.0
        impulse = _synthesis_1d_levels(coeffs, levels)[:, 0]  # [s (b), n]
        first_s, last_s = _support(impulse)
        lo, hi = first_s // s, last_s // s  # x[s*q + p] needs c[q - d] for lo <= d <= hi
        taps = torch.arange(hi - lo + 1)
        index = (s * (hi - taps)[None, :] + phase[:, None]) % n  # [s (p), K (i)]: d = hi - i
        synthesis = impulse[:, index].transpose(0, 1).contiguous()  # [s (p), s (b), K]
    return _Bank(analysis, -first, synthesis, (hi, -lo))


# Along the last dim, fewer rows than this (1D signals) make the per-window matrix products too
# thin: the windows are then copied out (about 2.5x the data) for one matrix product.
_FEW_ROWS = 64

# Rows of the block-Toeplitz matrices: a few output blocks per window keep the matrix products
# efficient at the price of a few zero taps. Analysis along dim 0 (the matrix on the left, many
# columns) runs best with smaller windows than along the last dim (timed on Kodak encodes: 16 and 32
# rows took ~0.5 ms less per 16x image than 32 and 32).
_GROUP_ROWS = 32
_ROWS_FIRST = 16


def _group(levels: int, blocks: int, rows: int = _GROUP_ROWS) -> int:
    """Output blocks computed per window: up to ``rows / 2**levels``, preferring a divisor of ``blocks``."""
    most = max(1, min(rows >> levels, blocks))
    for group in range(most, (most + 1) // 2 - 1, -1):
        if blocks % group == 0:
            return group
    return most


@functools.lru_cache(maxsize=64)
def _analysis_matrix(levels: int, group: int, dtype: torch.dtype, device: torch.device, bands: int | None = None) -> Tensor:
    """``[group * n, taps + s * (group - 1)]``: row ``(i, b)`` is band ``b`` of the ``i``-th block of a window,
    for the first ``n = bands`` (default all ``s``) bands.

    Built outside inference mode so that autograd may save it.
    """
    bank, s = _bank(levels), 2**levels
    filters = bank.analysis[: bands or s]
    taps = bank.analysis.shape[1]
    with torch.inference_mode(False), torch.no_grad():
        matrix = torch.zeros(group, filters.shape[0], taps + s * (group - 1), dtype=torch.float64)
        for i in range(group):
            matrix[i, :, s * i : s * i + taps] = filters
        return matrix.reshape(group * filters.shape[0], -1).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def _synthesis_matrix(levels: int, group: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[group * s, (K + group - 1) * s]``: row ``(r, p)`` is sample ``p`` of output block ``r``,
    column ``(j, b)`` band ``b`` of coefficient position ``j`` of a window."""
    poly = _bank(levels).synthesis.transpose(1, 2)  # [s (p), K, s (b)]
    s, taps, _ = poly.shape
    with torch.inference_mode(False), torch.no_grad():
        matrix = torch.zeros(group, s, taps + group - 1, s, dtype=torch.float64)
        for r in range(group):
            matrix[r, :, r : r + taps] = poly
        return matrix.reshape(group * s, -1).to(dtype=dtype, device=device)


def _analysis_last(
    x: Tensor, levels: int, bands: int | None = None, dtype: torch.dtype | None = None
) -> tuple[Tensor, int]:
    """Filter bank along the last dim of ``x [..., L]`` (its first ``n = bands`` bands, default all ``s``).

    Returns ``(c [G, P, group * n], group)``, ``P`` the product of the leading dims: ``c[k, :, i * n + b]``
    is band ``b`` of output block ``k * group + i``; blocks from ``L / s`` on are to be discarded.
    ``dtype``: compute in this dtype (default ``x``'s), converting ``x`` in the copy that pads it.
    """
    s, bank = 2**levels, _bank(levels)
    dtype = dtype or x.dtype
    length, taps = x.shape[-1], bank.analysis.shape[1]
    blocks = length // s
    group = _group(levels, blocks)
    windows = -(-blocks // group)
    after = s * group * windows + taps - s - length - bank.analysis_offset
    padded = _wrap(x, -1, (bank.analysis_offset, after), dtype).reshape(-1, length + bank.analysis_offset + after)
    span = taps + s * (group - 1)
    stacked = padded.unfold(1, span, s * group).transpose(0, 1)  # [G, P, span], overlapping views
    matrix = _analysis_matrix(levels, group, dtype, x.device, bands)
    if stacked.shape[1] < _FEW_ROWS:  # few long signals: copy the windows out, one matrix product
        return (stacked.reshape(-1, span) @ matrix.t()).view(windows, stacked.shape[1], -1), group
    return torch.bmm(stacked, matrix.t().expand(windows, -1, -1)), group


def _analysis_first(
    x: Tensor, levels: int, bands: int | None = None, dtype: torch.dtype | None = None
) -> tuple[Tensor, int]:
    """Filter bank along dim 0 of ``x [L, ...]`` (first ``n = bands`` bands): ``(c [G, group * n, Q], group)``
    with ``Q`` the product of the trailing dims; row ``i * n + b`` of ``c[k]`` is band ``b`` of block ``k * group + i``.
    ``dtype`` as in :func:`_analysis_last`."""
    s, bank = 2**levels, _bank(levels)
    dtype = dtype or x.dtype
    length, taps = x.shape[0], bank.analysis.shape[1]
    blocks = length // s
    group = _group(levels, blocks, _ROWS_FIRST)
    windows = -(-blocks // group)
    after = s * group * windows + taps - s - length - bank.analysis_offset
    padded = _wrap(x, 0, (bank.analysis_offset, after), dtype).reshape(length + bank.analysis_offset + after, -1)
    span = taps + s * (group - 1)
    stacked = padded.unfold(0, span, s * group).transpose(1, 2)  # [G, span, Q]
    matrix = _analysis_matrix(levels, group, dtype, x.device, bands)
    return torch.bmm(matrix.expand(windows, -1, -1), stacked), group


def _synthesis_last(coeffs: Tensor, levels: int) -> Tensor:
    """Synthesis along dim -2 of band-minor ``coeffs [..., M, s]``: ``x [P, L']``, ``L' >= M * s``
    (samples from ``M * s`` on are to be discarded)."""
    s, bank = 2**levels, _bank(levels)
    blocks = coeffs.shape[-2]
    before, after = bank.synthesis_pad
    taps = before + after + 1
    group = _group(levels, blocks)
    windows = -(-blocks // group)
    after += group * windows - blocks
    padded = _wrap(coeffs, -2, (before, after)).reshape(-1, (blocks + before + after) * s)
    stacked = padded.unfold(1, (taps + group - 1) * s, group * s).transpose(0, 1)  # [G, P, span]
    matrix = _synthesis_matrix(levels, group, coeffs.dtype, coeffs.device)
    if stacked.shape[1] < _FEW_ROWS:
        x_hat = (stacked.reshape(-1, stacked.shape[2]) @ matrix.t()).view(windows, stacked.shape[1], -1)
    else:
        x_hat = torch.bmm(stacked, matrix.t().expand(windows, -1, -1))  # [G, P, group * s]
    return x_hat.transpose(0, 1).reshape(x_hat.shape[1], -1)


def _synthesis_first(coeffs: Tensor, levels: int) -> Tensor:
    """Synthesis along dim 0 of ``coeffs [M, s (band), ...]``: ``x [L', Q]``, ``L' >= M * s`` rows
    (rows from ``M * s`` on are to be discarded), ``Q`` the product of the trailing dims."""
    s, bank = 2**levels, _bank(levels)
    blocks = coeffs.shape[0]
    before, after = bank.synthesis_pad
    taps = before + after + 1
    group = _group(levels, blocks)
    windows = -(-blocks // group)
    after += group * windows - blocks
    padded = _wrap(coeffs, 0, (before, after)).reshape((blocks + before + after) * s, -1)
    stacked = padded.unfold(0, (taps + group - 1) * s, group * s).transpose(1, 2)  # [G, span, Q]
    matrix = _synthesis_matrix(levels, group, coeffs.dtype, coeffs.device)
    return torch.bmm(matrix.expand(windows, -1, -1), stacked).reshape(windows * group * s, -1)


def _analysis_1d_stage(x: Tensor, levels: int) -> Tensor:
    batch, channels, length = x.shape
    s = 2**levels
    coeffs, group = _analysis_last(x, levels)  # [G, B*C, group * s]
    coeffs = coeffs.unflatten(2, (group, s)).permute(1, 3, 0, 2).reshape(batch * channels, s, -1)
    return coeffs[..., : length // s].reshape(batch, channels * s, -1).contiguous()


def _synthesis_1d_stage(coeffs: Tensor, levels: int) -> Tensor:
    batch, channels, length = coeffs.shape
    s = 2**levels
    x_hat = _synthesis_last(coeffs.reshape(batch, channels // s, s, length).transpose(2, 3), levels)
    return x_hat[:, : length * s].reshape(batch, channels // s, -1).contiguous()


def _interleaved(levels: int, w_first: int, h_first: int) -> list[int]:
    """Dims ``(w_1, h_1, ..., w_J, h_J)`` of the 2D band digits, from where the w and h bits start."""
    return [d for level in range(levels) for d in (w_first + level, h_first + level)]


def _analysis_2d_stage(x: Tensor, levels: int, dtype: torch.dtype | None = None) -> Tensor:
    batch, channels, height, width = x.shape
    s, bits = 2**levels, (2,) * levels
    # Along W: [B*C*H, W] -> [G_w, B*C*H, group_w * s] -> [H, B, C, s (w band), w'] (w' >= W / s).
    rows, group_w = _analysis_last(x, levels, dtype=dtype)
    wide = rows.shape[0] * group_w
    rows = rows.view(-1, batch, channels, height, group_w, s).permute(3, 1, 2, 5, 0, 4)
    # Along H: -> [G_h * group_h, s (h band), B, C, s (w band), w'] (rows from H / s on discarded).
    coeffs, group_h = _analysis_first(rows, levels)
    coeffs = coeffs.view(-1, *bits, batch, channels, *bits, wide)
    order = [levels + 1, levels + 2, *_interleaved(levels, levels + 3, 1), 0, 2 * levels + 3]
    coeffs = coeffs.permute(order)[..., : height // s, : width // s]
    return coeffs.reshape(batch, channels * 4**levels, height // s, width // s).contiguous()


def _synthesis_2d_stage(coeffs: Tensor, levels: int) -> Tensor:
    batch, packets, height, width = coeffs.shape
    s, channels = 2**levels, packets // 4**levels
    # Along H: [h, s (h band), B, C, s (w band), w] -> [H', B*C*s*w] (H' >= h * s).
    digits = coeffs.reshape(batch, channels, *(2,) * (2 * levels), height, width)
    order = [2 * levels + 2, *range(3, 2 * levels + 2, 2), 0, 1, *range(2, 2 * levels + 2, 2), 2 * levels + 3]
    columns = _synthesis_first(digits.permute(order), levels)[: height * s]
    # Along W: [B, C, H, w, s (w band)] -> [B*C*H, W'] (W' >= w * s).
    columns = columns.view(height * s, batch, channels, s, width).permute(1, 2, 0, 4, 3)
    x_hat = _synthesis_last(columns, levels)[:, : width * s]
    return x_hat.reshape(batch, channels, height * s, width * s).contiguous()


def _approximation_2d(x: Tensor) -> Tensor:
    """Level-1 approximation band only: ``x [B, C, H, W] -> [B, C, H / 2, W / 2]`` (lowpass along W, then H).

    Integer ``x`` (pixels) gives float32, converted in the first padding copy. Channels-last memory
    (``[H, W, C]`` pixels viewed as ``[1, C, H, W]``) is filtered along H first, where it is contiguous.
    """
    batch, channels, height, width = x.shape
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if x.permute(2, 0, 3, 1).is_contiguous():  # channels-last pixels (a view of [H, W, C] arrays): H first
        cols, _ = _analysis_first(x.permute(2, 0, 3, 1), 1, bands=1, dtype=dtype)  # [G_h, group_h, B*W*C]
        cols = cols.reshape(-1, batch, width, channels)[: height // 2]  # [H/2, B, W, C]
        rows, _ = _analysis_last(cols.permute(1, 3, 0, 2), 1, bands=1)  # [G_w, B*C*H/2, group_w]
        rows = rows.permute(1, 0, 2).reshape(batch * channels * (height // 2), -1)[:, : width // 2]
        return rows.reshape(batch, channels, height // 2, width // 2)
    rows, group_w = _analysis_last(x, 1, bands=1, dtype=dtype)  # [G_w, B*C*H, group_w]
    rows = rows.view(-1, batch * channels, height, group_w).permute(2, 1, 0, 3)  # [H, B*C, G_w, group_w]
    cols, _ = _analysis_first(rows, 1, bands=1)  # [G_h, group_h, B*C*G_w*group_w]
    cols = cols.reshape(-1, batch * channels, rows.shape[2] * group_w)[: height // 2, :, : width // 2]
    return cols.permute(1, 0, 2).reshape(batch, channels, height // 2, width // 2)


# Deep trees run in stages of at most this many levels: the equivalent filters grow as 8 * 2**levels
# taps, so beyond 3 levels a second pass over the (already decimated) bands is cheaper.
_STAGE_LEVELS = 3


def _stages(levels: int) -> list[int]:
    """Levels per stage, first stage first: ``J`` levels = ``j1`` levels, then ``J - j1`` on every band
    (the band digits are most significant first, so channel orders compose)."""
    return [min(_STAGE_LEVELS, levels - done) for done in range(0, levels, _STAGE_LEVELS)]


def _analysis_1d_fast(x: Tensor, levels: int) -> Tensor:
    for depth in _stages(levels):
        x = _analysis_1d_stage(x, depth)
    return x


def _synthesis_1d_fast(coeffs: Tensor, levels: int) -> Tensor:
    for depth in reversed(_stages(levels)):
        coeffs = _synthesis_1d_stage(coeffs, depth)
    return coeffs


def _analysis_2d_fast(x: Tensor, levels: int) -> Tensor:
    """Integer ``x`` (pixels) is transformed in float32, converted in the first padding copy."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    for depth in _stages(levels):
        x = _analysis_2d_stage(x, depth, dtype)
    return x


def _synthesis_2d_fast(coeffs: Tensor, levels: int) -> Tensor:
    for depth in reversed(_stages(levels)):
        coeffs = _synthesis_2d_stage(coeffs, depth)
    return coeffs


# --------------------------------------------------------------------------- public API
def analysis_halo(levels: int) -> tuple[int, int]:
    """``(before, after)``: coefficient position ``m`` depends on the blocks of ``2**levels`` samples
    ``m - before .. m + after`` (indices modulo the number of blocks)."""
    _check_levels(levels)
    if levels == 0:
        return 0, 0
    s, bank = 2**levels, _bank(levels)
    taps, offset = bank.analysis.shape[1], bank.analysis_offset
    return -(-offset // s), (taps - 1 - offset) // s


def synthesis_halo(levels: int) -> tuple[int, int]:
    """``(before, after)``: output block ``q`` (``2**levels`` samples) depends on coefficient
    positions ``q - before .. q + after`` (indices modulo the number of positions)."""
    _check_levels(levels)
    return (0, 0) if levels == 0 else _bank(levels).synthesis_pad


def analysis_1d(x: Tensor, levels: int) -> Tensor:
    """Full wavelet packet analysis along the last dim.

    ``x [B, C, L]`` with ``L % 2**levels == 0`` -> ``coeffs [B, C * 2**levels, L / 2**levels]``
    (channel order in the module docstring). ``levels=0`` returns ``x`` unchanged.
    """
    _check_levels(levels)
    _check_tensor(x, rank=3, name="x", layout="[B, C, L]")
    _check_divisible(x, levels=levels, name="x", dims=(2,))
    return x if levels == 0 else _analysis_1d_fast(x, levels)


def synthesis_1d(coeffs: Tensor, levels: int) -> Tensor:
    """Exact inverse of :func:`analysis_1d`.

    ``coeffs [B, C * 2**levels, M]`` -> ``x_hat [B, C, M * 2**levels]``.
    """
    _check_levels(levels)
    _check_tensor(coeffs, rank=3, name="coeffs", layout="[B, C * 2**levels, M]")
    _check_channels(coeffs, n_bands=2**levels, levels=levels)
    return coeffs if levels == 0 else _synthesis_1d_fast(coeffs, levels)


def analysis_2d(x: Tensor, levels: int) -> Tensor:
    """Full 2D wavelet packet analysis (separable: along W, then along H).

    ``x [B, C, H, W]`` with ``H, W % 2**levels == 0`` ->
    ``coeffs [B, C * 4**levels, H / 2**levels, W / 2**levels]``
    (channel order in the module docstring). ``levels=0`` returns ``x`` unchanged. Integer ``x`` (e.g.
    uint8 pixels) is transformed in float32 without a separate conversion pass.
    """
    _check_levels(levels)
    _check_tensor(x, rank=4, name="x", layout="[B, C, H, W]", integers=True)
    _check_divisible(x, levels=levels, name="x", dims=(2, 3))
    return x if levels == 0 else _analysis_2d_fast(x, levels)


def analysis_2d_approximation(x: Tensor, levels: int) -> Tensor:
    """The part of :func:`analysis_2d` that descends from the level-1 approximation, computed alone.

    ``x [B, C, H, W]`` -> ``[B, C * 4**(levels - 1), H / 2**levels, W / 2**levels]``: channels
    ``c * 4**levels + k`` with ``k < 4**(levels - 1)`` of ``analysis_2d(x, levels)`` (the bands whose
    first-level digit is ``a``), for about a quarter of the work. An encoder with zero weights on
    every other band needs nothing more. Integer ``x`` (e.g. uint8 pixels) is transformed in float32
    without a separate conversion pass.
    """
    _check_levels(levels)
    if levels < 1:
        raise InputError("analysis_2d_approximation needs levels >= 1")
    _check_tensor(x, rank=4, name="x", layout="[B, C, H, W]", integers=True)
    _check_divisible(x, levels=levels, name="x", dims=(2, 3))
    approx = _approximation_2d(x)
    return approx if levels == 1 else _analysis_2d_fast(approx, levels - 1)


def synthesis_2d(coeffs: Tensor, levels: int) -> Tensor:
    """Exact inverse of :func:`analysis_2d`.

    ``coeffs [B, C * 4**levels, h, w]`` -> ``x_hat [B, C, h * 2**levels, w * 2**levels]``.
    """
    _check_levels(levels)
    _check_tensor(coeffs, rank=4, name="coeffs", layout="[B, C * 4**levels, h, w]")
    _check_channels(coeffs, n_bands=4**levels, levels=levels)
    return coeffs if levels == 0 else _synthesis_2d_fast(coeffs, levels)
