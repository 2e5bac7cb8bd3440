"""N-channel arrays (multispectral, hyperspectral, 16-bit, float): spectral KLT + a 1-channel preset.

``[H, W, N]`` array (uint8, uint16, float32 or float64) -> per-image KLT across the N bands
(mean and orthonormal basis stored losslessly in the file as float64) -> every component coded
by a grayscale preset at the same quantization step. All components share one scale, so the
low-variance components come out near zero and cost few bits: the KLT does the rate allocation.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import container
from .bitstream import LatentCoder
from .codec import WaveletCodec
from .errors import HeaderError, InputError, LimitError, UnsupportedInputError
from .headers import check_multiband_header, multiband_header
from .io.images import DEFAULT_MAX_PIXELS

DTYPES = ("uint8", "uint16", "float32", "float64")
MAX_BANDS = 1024
MODALITY = "multiband"


def _as_bands(array: np.ndarray) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(array).__name__}")
    if array.dtype.name not in DTYPES:
        raise UnsupportedInputError(f"multi-band arrays must be one of {DTYPES}, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InputError(f"multi-band arrays must be [H, W] or [H, W, N], got shape {array.shape}")
    if min(array.shape) < 1 or array.shape[2] > MAX_BANDS:
        raise InputError(f"array of shape {array.shape}: need H, W >= 1 and 1 <= N <= {MAX_BANDS}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError("array contains NaN or infinite values")
    return array


def klt(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[N]`` and orthonormal basis ``[N, N]`` (columns by decreasing variance) of ``[P, N]`` samples."""
    mean = x.mean(0)
    cov = np.cov(x - mean, rowvar=False).reshape(x.shape[1], x.shape[1])
    vals, vecs = np.linalg.eigh(cov)
    basis = vecs[:, ::-1]
    # a deterministic sign per column: the largest entry positive
    signs = np.sign(basis[np.abs(basis).argmax(0), np.arange(basis.shape[1])])
    return mean, basis * np.where(signs == 0, 1, signs)


def compress_bands(array: np.ndarray, codec: WaveletCodec, quality: int | None = None,
                   *, max_pixels: int = DEFAULT_MAX_PIXELS, entropy: str | None = None) -> bytes:
    """``[H, W, N]`` array -> .wlt bytes, with ``codec`` a 1-channel image codec."""
    array = _as_bands(array)
    cfg = codec.config
    if cfg.modality != "image" or cfg.channels != 1:
        raise InputError(f"multi-band arrays are coded with a 1-channel image preset, not {cfg.name}")
    H, W, N = array.shape
    if H * W > max_pixels:
        raise InputError(f"array of {W}x{H} pixels exceeds the limit of {max_pixels} pixels")
    quality = cfg.check_quality(quality)
    flat = array.reshape(-1, N).astype(np.float64)
    mean, basis = klt(flat)
    comps = (flat - mean) @ basis  # [P, N]
    peak = float(np.abs(comps).max())
    scale = 2.0 * peak if peak > 0 else 1.0
    x = torch.from_numpy((comps / scale + 0.5).T.reshape(N, 1, H, W).astype(np.float32))
    device = next(codec.parameters()).device
    with torch.inference_mode():
        q = codec.quantize(codec.encode(x.to(device)), quality)  # [N, K, h, w]
    side = np.concatenate([mean, basis.reshape(-1), [scale]]).astype("<f8").tobytes()
    coder = LatentCoder(codec, quality, entropy=entropy)
    latent = coder.compress(_stack(q.cpu().numpy(), coder.entropy))
    header = multiband_header(codec, quality, height=H, width=W, bands=N, dtype=array.dtype.name,
                              latent_shape=[N, *q.shape[1:]], entropy=coder.entropy)
    return container.pack(header, {"latent": latent, "klt": side})


def _stack(q: np.ndarray, entropy: str) -> np.ndarray:
    """Symbols ``[N, K, h, w]`` of the components as the entropy model codes them: side by side
    ``[K, N, h, w]`` for the factorized model, stacked vertically ``[K, N * h, w]`` for 2-D models."""
    q = q.transpose(1, 0, 2, 3)
    return q if entropy == "none" else q.reshape(q.shape[0], -1, q.shape[3])


def decompress_bands(header: dict, streams: dict[str, bytes], codec: WaveletCodec,
                     *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The inverse of :func:`compress_bands` given an unpacked, hash-checked container."""
    H, W, N, dtype, quality, (h, w), entropy = check_multiband_header(header, codec, max_bands=MAX_BANDS, dtypes=DTYPES)
    if H * W > max_pixels or H * W * N > 4 * max_pixels:
        raise LimitError(f"array of {W}x{H}x{N} exceeds the limit of {max_pixels} pixels")
    if set(streams) != {"latent", "klt"} or len(streams["klt"]) != 8 * (N + N * N + 1):
        raise HeaderError("a multi-band file needs a latent stream and a KLT stream of the right size")
    side = np.frombuffer(streams["klt"], dtype="<f8")
    mean, basis, scale = side[:N], side[N : N + N * N].reshape(N, N), float(side[-1])
    if not (np.isfinite(side).all() and scale > 0):
        raise HeaderError("KLT side information is not finite")
    spatial = (N, h, w) if entropy == "none" else (N * h, w)  # as _stack laid the components out
    symbols = LatentCoder(codec, quality, entropy=entropy).decompress(streams["latent"], spatial)
    q = torch.from_numpy(symbols.reshape(-1, N, h, w)).transpose(0, 1)  # [N, K, h, w]
    device = next(codec.parameters()).device
    with torch.inference_mode():
        x_hat = codec.decode(codec.dequantize(q.contiguous().to(device), quality), (H, W))
    comps = (x_hat[:, 0].double().cpu().numpy().reshape(N, -1).T - 0.5) * scale  # [P, N]
    out = (comps @ basis.T + mean).reshape(H, W, N)
    if dtype in ("uint8", "uint16"):
        info = np.iinfo(dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return out.astype(dtype)


def multiband_info(header: dict, file_bytes: int) -> dict[str, Any]:
    """What follows from a multi-band header: ``bpp`` (file bits per pixel, all bands together),
    ``bits_per_sample`` (per pixel and band) and ``compression_ratio`` against the array's bytes."""
    h, w, n, dtype = header.get("height"), header.get("width"), header.get("bands"), header.get("dtype")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31 for v in (h, w, n)):
        return {}
    info: dict[str, Any] = {"bpp": 8 * file_bytes / (h * w), "bits_per_sample": 8 * file_bytes / (h * w * n)}
    if dtype in DTYPES and file_bytes:
        info["compression_ratio"] = h * w * n * np.dtype(dtype).itemsize / file_bytes
    return info
