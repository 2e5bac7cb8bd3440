"""Distortion and rate of one decoded image: PSNR (RGB and Y), MS-SSIM, bits per pixel.

All metrics take uint8 arrays ``[H, W, 3]`` (or ``[H, W]``) of the same shape, compare them in
float64 (float32 for MS-SSIM), on the [0, 255] scale, without rounding intermediate results.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..errors import InputError

# BT.601 luma weights, full range (JPEG/JFIF convention): Y = 0.299 R + 0.587 G + 0.114 B, in [0, 255].
BT601 = (0.299, 0.587, 0.114)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, as in pytorch_msssim
MS_SSIM_WIN = 11


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, then restore the previous count.

    Metrics run single-threaded: MS-SSIM's small convolutions gain nothing from threads, and on a
    busy machine oversubscribed OpenMP threads make them tens of times slower."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise InputError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise InputError("cannot compare empty images")


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over every sample of ``a`` and ``b`` (``inf`` when they are equal)."""
    _check(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def luma(img: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma ``[H, W]`` (float64 in [0, 255]) of an RGB ``[H, W, 3]`` image;
    a grayscale image is returned as float64 unchanged."""
    x = img.astype(np.float64)
    if x.ndim == 2 or x.shape[2] == 1:
        return x.reshape(x.shape[0], x.shape[1])
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return BT601[0] * r + BT601[1] * g + BT601[2] * b


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of the BT.601 full-range luma (peak 255)."""
    _check(a, b)
    return psnr(luma(a), luma(b))


def ms_ssim_scales(height: int, width: int, win_size: int = MS_SSIM_WIN) -> int:
    """How many MS-SSIM scales (at most 5) an image of this size supports: the short side must
    exceed ``(win_size - 1) * 2**(scales - 1)`` (the bound pytorch_msssim asserts for 5 scales)."""
    side = min(height, width)
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and side > (win_size - 1) * 2**scales:
        scales += 1
    return scales


def ms_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """MS-SSIM on RGB in [0, 255] (``data_range=255``, Gaussian window 11 / 1.5) and the number of
    scales used.

    Images whose short side is over 160 px get the standard 5 scales (``pytorch_msssim.ms_ssim``).
    Smaller ones use as many scales as fit, with the first weights renormalised to sum to 1 (not
    comparable with published 5-scale numbers; the scale count is reported with every value).
    Images of 10 px or less on a side give ``(nan, 0)``. Runs on one torch thread.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    _check(a, b)
    scales = ms_ssim_scales(a.shape[0], a.shape[1])
    if scales == 0:
        return math.nan, 0

    def t(x: np.ndarray) -> torch.Tensor:
        x = x if x.ndim == 3 else x[:, :, None]
        return torch.from_numpy(np.array(x, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)

    with torch.inference_mode(), torch_threads(1):
        x, y = t(a), t(b)
        if scales == len(MS_SSIM_WEIGHTS):
            return float(_ms_ssim(x, y, data_range=255, size_average=True)), scales
        return _ms_ssim_fewer(x, y, scales), scales


def _ms_ssim_fewer(x, y, scales: int) -> float:
    """MS-SSIM with fewer scales: pytorch_msssim's own loop (its public function asserts 5)."""
    import torch
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype)
    if scales < len(MS_SSIM_WEIGHTS):  # the published 5 weights sum to 1.0001: keep them as they are
        weights = weights / weights.sum()
    win = _fspecial_gauss_1d(MS_SSIM_WIN, 1.5).repeat([x.shape[1], 1, 1, 1])
    mcs = []
    for i in range(scales):
        ssim_per_channel, cs = _ssim(x, y, win=win, data_range=255, size_average=False, K=(0.01, 0.03))
        if i < scales - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    stacked = torch.stack(mcs + [torch.relu(ssim_per_channel)], dim=0)
    return float(torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean())


def bpp(data: bytes, height: int, width: int) -> float:
    """Bits per pixel of the bytes actually produced: ``8 * len(data) / (height * width)``."""
    return 8.0 * len(data) / (height * width)


def image_metrics(original: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """``psnr_rgb``, ``psnr_y``, ``ms_ssim`` and ``ms_ssim_scales`` of a decoded image."""
    if decoded.shape != original.shape:
        raise InputError(f"the codec returned an image of shape {decoded.shape} for one of shape {original.shape}")
    value, scales = ms_ssim(original, decoded)
    return {
        "psnr_rgb": psnr(original, decoded),
        "psnr_y": psnr_y(original, decoded),
        "ms_ssim": value,
        "ms_ssim_scales": scales,
    }
