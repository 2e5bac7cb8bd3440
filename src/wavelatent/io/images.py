"""Image conventions: uint8 arrays ``[H, W, C]`` <-> float tensors ``[1, C, H, W]`` in [0, 1]."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError, UnsupportedInputError

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's decompression-bomb error threshold (2x MAX_IMAGE_PIXELS)

# Pillow modes -> the mode we convert to before coding.
_CONVERT = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "La": "LA",
    "RGBa": "RGBA",
}
_CHANNELS_TO_MODE = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def image_to_array(image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str]:
    """A PIL image or uint8 array -> (``[H, W, C]`` uint8 array, mode in L/LA/RGB/RGBA)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        _check_pixels(image.width, image.height, max_pixels)
        mode = image.mode
        if mode == "P" or mode == "PA":
            mode = "RGBA" if ("transparency" in image.info or mode == "PA") else "RGB"
        elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            raise UnsupportedInputError(
                f"{mode} images (16-bit or float samples) are not supported by the 8-bit image presets yet"
            )
        else:
            mode = _CONVERT.get(mode)
            if mode is None:
                raise UnsupportedInputError(f"unsupported image mode {image.mode!r}")
        if image.mode != mode:
            image = image.convert(mode)
        arr = np.asarray(image, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return np.ascontiguousarray(arr), mode
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise UnsupportedInputError(
                f"image arrays must be uint8 (8-bit samples), got {image.dtype}; 16-bit and float images are not supported yet"
            )
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in _CHANNELS_TO_MODE:
            raise InputError(f"image arrays must be HxW or HxWxC with C in 1..4, got shape {image.shape}")
        _check_pixels(image.shape[1], image.shape[0], max_pixels)
        return np.ascontiguousarray(image), _CHANNELS_TO_MODE[image.shape[2]]
    raise InputError(f"expected a PIL image or a uint8 numpy array, got {type(image).__name__}")


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InputError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")


def read_image(path: str | os.PathLike | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str]:
    """Read PNG/JPEG/WebP/TIFF/... with Pillow -> (``[H, W, C]`` uint8, mode). EXIF rotation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = "<stdin>" if isinstance(path, bytes) else str(path)
    source = io.BytesIO(path) if isinstance(path, bytes) else path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                _check_pixels(img.width, img.height, max_pixels)
                img = ImageOps.exif_transpose(img)
                img.load()
                return image_to_array(img, max_pixels=max_pixels)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{name}: image exceeds the pixel limit") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{name}: cannot decode image: {e}") from None


def encode_png(arr: np.ndarray) -> bytes:
    """``[H, W]`` or ``[H, W, C]`` uint8 -> PNG bytes."""
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


OUTPUT_SUFFIXES = ("", ".png", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".webp")
"""Suffixes :func:`save_image` writes ("" and .png: PNG; .webp lossless)."""


def save_image(arr: np.ndarray, path: str | os.PathLike, *, force: bool = False) -> None:
    """Write an image atomically; PNG unless the suffix names another lossless format Pillow writes."""
    from PIL import Image

    from .files import atomic_write_bytes

    suffix = Path(str(path)).suffix.lower()
    if str(path) == "-" or suffix in ("", ".png"):
        data = encode_png(arr)
    elif suffix in OUTPUT_SUFFIXES:
        buf = io.BytesIO()
        img = Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
        fmt = {".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".ppm": "PPM", ".pgm": "PPM", ".webp": "WEBP"}[suffix]
        img.save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        data = buf.getvalue()
    else:
        raise InputError(f"{path}: cannot write {suffix} images (use .png, .tif, .bmp, .ppm or lossless .webp)")
    atomic_write_bytes(path, data, force=force)


def to_tensor(arr: np.ndarray, device: torch.device | str | None = None) -> Tensor:
    """``[H, W, C]`` uint8 -> ``[1, C, H, W]`` float32 in [0, 1]."""
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr)
    t = torch.from_numpy(arr).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0)


def to_uint8(x: Tensor) -> np.ndarray:
    """``[1, C, H, W]`` float in [0, 1] -> ``[H, W, C]`` uint8 (rounded, clamped)."""
    t = x[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return t.permute(1, 2, 0).contiguous().cpu().numpy()
