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

Analysis is a stride-2 convolution, synthesis a polyphase convolution followed by
interleaving; the circular boundary is an index wrap, so any size divisible by
``2**levels`` works, however short. All functions are batched, differentiable, and
run in the dtype and on the device of their input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from wavelatent.errors import InputError

__all__ = ["analysis_1d", "synthesis_1d", "analysis_2d", "synthesis_2d"]

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


def _wrap(x: Tensor, dim: int, pad: tuple[int, int]) -> Tensor:
    """Circularly extend ``x`` along ``dim`` by ``pad = (before, after)`` samples.

    Concatenates slices; signals shorter than the padding fall back to an index wrap.
    """
    n = x.shape[dim]
    before, after = pad
    if before > n or after > n:
        index = torch.arange(-before, n + after, device=x.device) % n
        return x.index_select(dim, index)
    return torch.cat([x.narrow(dim, n - before, before), x, x.narrow(dim, 0, after)], dim)


def _check_levels(levels: int) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int):
        raise InputError(f"levels must be an int, got {type(levels).__name__}")
    if levels < 0:
        raise InputError(f"levels must be >= 0, got {levels}")


def _check_tensor(x: Tensor, *, rank: int, name: str, layout: str) -> None:
    if not isinstance(x, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        raise InputError(f"{name} must have shape {layout}, got {tuple(x.shape)}")
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


# --------------------------------------------------------------------------- 1D
def analysis_1d(x: Tensor, levels: int) -> Tensor:
    """Full wavelet packet analysis along the last dim.

    ``x [B, C, L]`` with ``L % 2**levels == 0`` -> ``coeffs [B, C * 2**levels, L / 2**levels]``
    (channel order in the module docstring). ``levels=0`` returns ``x`` unchanged.
    """
    _check_levels(levels)
    _check_tensor(x, rank=3, name="x", layout="[B, C, L]")
    _check_divisible(x, levels=levels, name="x", dims=(2,))
    if levels == 0:
        return x
    batch, channels, length = x.shape
    weight = _analysis_weight(x).unsqueeze(1)  # [2, 1, 9]
    coeffs = x.reshape(batch * channels, 1, length)
    for _ in range(levels):
        # [N, 1, L] -> [N, 2, L/2] -> [2N, 1, L/2]: each band splits into (lo, hi) in place.
        coeffs = F.conv1d(_wrap(coeffs, -1, _ANALYSIS_PAD), weight, stride=2)
        length //= 2
        coeffs = coeffs.reshape(-1, 1, length)
    return coeffs.reshape(batch, channels * 2**levels, length)


def synthesis_1d(coeffs: Tensor, levels: int) -> Tensor:
    """Exact inverse of :func:`analysis_1d`.

    ``coeffs [B, C * 2**levels, M]`` -> ``x_hat [B, C, M * 2**levels]``.
    """
    _check_levels(levels)
    _check_tensor(coeffs, rank=3, name="coeffs", layout="[B, C * 2**levels, M]")
    _check_channels(coeffs, n_bands=2**levels, levels=levels)
    if levels == 0:
        return coeffs
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


# --------------------------------------------------------------------------- 2D
def analysis_2d(x: Tensor, levels: int) -> Tensor:
    """Full 2D wavelet packet analysis (separable: along W, then along H).

    ``x [B, C, H, W]`` with ``H, W % 2**levels == 0`` ->
    ``coeffs [B, C * 4**levels, H / 2**levels, W / 2**levels]``
    (channel order in the module docstring). ``levels=0`` returns ``x`` unchanged.
    """
    _check_levels(levels)
    _check_tensor(x, rank=4, name="x", layout="[B, C, H, W]")
    _check_divisible(x, levels=levels, name="x", dims=(2, 3))
    if levels == 0:
        return x
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


def synthesis_2d(coeffs: Tensor, levels: int) -> Tensor:
    """Exact inverse of :func:`analysis_2d`.

    ``coeffs [B, C * 4**levels, h, w]`` -> ``x_hat [B, C, h * 2**levels, w * 2**levels]``.
    """
    _check_levels(levels)
    _check_tensor(coeffs, rank=4, name="coeffs", layout="[B, C * 4**levels, h, w]")
    _check_channels(coeffs, n_bands=4**levels, levels=levels)
    if levels == 0:
        return coeffs
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
