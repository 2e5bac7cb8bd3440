"""uint8 pixels <-> integer symbols: the one path every image caller (``compress``, the latent caches,
latent inputs for downstream models) takes, so they all hold the same symbols."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["encode_latent", "decode_image_pixels", "encode_image_symbols", "pixels_to_tensor", "to_pixels"]


def pixels_to_tensor(pixels: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> uint8 ``[1, C, H, W]`` (a view of ``pixels`` on the CPU)."""
    if not (pixels.flags.writeable and pixels.flags.c_contiguous):
        pixels = np.array(pixels)
    return torch.from_numpy(pixels).to(device).permute(2, 0, 1).unsqueeze(0)


def _encode(codec, pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> latent ``[1, K, h, w]`` on the codec's device (call in inference mode).
    The image goes to the encoder as uint8 and is converted to float one stripe at a time."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        from .errors import InputError

        raise InputError(f"pixels must be uint8 [H, W, C], got {pixels.dtype} {pixels.shape}")
    return codec.encode(pixels_to_tensor(pixels, next(codec.parameters()).device))


def encode_latent(codec, pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels ``[H, W, C]`` (C = the codec's channels) -> float latent ``[K, h, w]``."""
    with torch.inference_mode():
        return _encode(codec, pixels)[0].cpu().numpy()


def encode_image_symbols(codec, pixels: np.ndarray, quality: int | None = None) -> np.ndarray:
    """uint8 pixels ``[H, W, C]`` -> int32 symbols ``[K, h, w]``: the latent of :func:`encode_latent`, quantized."""
    with torch.inference_mode():
        q = codec.quantize(_encode(codec, pixels), quality)
    return q[0].cpu().numpy().astype(np.int32, copy=False)


def to_pixels(x_hat: torch.Tensor) -> torch.Tensor:
    """float -> uint8, exactly as :func:`wavelatent.io.images.to_uint8` of ``x_hat.clamp(0, 1)``."""
    return x_hat.clamp(0, 1).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


def decode_image_pixels(codec, q: np.ndarray, size: tuple[int, int], quality: int | None = None) -> np.ndarray:
    """int32 symbols ``[K, h, w]`` -> uint8 pixels ``[H, W, C]`` (``size = (H, W)``), one stripe at a time."""
    device = next(codec.parameters()).device
    with torch.inference_mode():
        y_hat = codec.dequantize(torch.from_numpy(np.ascontiguousarray(q))[None].to(device), quality)
        pixels = codec.decode(y_hat, size, postprocess=to_pixels)
    return pixels[0].permute(1, 2, 0).contiguous().cpu().numpy()
