"""N-channel arrays on disk: ``.npy`` (never pickled) and TIFF (tifffile), beside 8-bit images."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import InputError, UnsupportedInputError
from .images import DEFAULT_MAX_PIXELS, read_image, save_image

ARRAY_SUFFIXES = (".npy", ".tif", ".tiff")


def read_array(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``.npy`` or TIFF -> ``[H, W]`` / ``[H, W, N]`` array in its own dtype."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)  # header only: check before allocating
                if dtype.hasobject:
                    raise UnsupportedInputError(f"{path}: object arrays are not supported")
                _check_shape(shape, max_pixels, path)
            arr = np.load(path, allow_pickle=False)
        else:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                _check_shape(series.shape[:2] if len(series.shape) <= 3 else series.shape[-3:-1], max_pixels, path)
                arr = series.asarray()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read array: {e}") from None
    except Exception as e:  # tifffile raises its own error types for malformed files
        if type(e).__module__.startswith("tifffile"):
            raise InputError(f"{path}: cannot read TIFF: {e}") from None
        raise
    return arr


def _check_shape(shape, max_pixels: int, path) -> None:
    if len(shape) < 2 or len(shape) > 3 or min(shape) < 1:
        raise InputError(f"{path}: expected an [H, W] or [H, W, N] array, got shape {tuple(shape)}")
    if shape[0] * shape[1] > max_pixels:
        raise InputError(f"{path}: {shape[1]}x{shape[0]} pixels exceed the limit of {max_pixels}")


def read_any(path: str | os.PathLike | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image (uint8 ``[H, W, C]``) or, for ``.npy``/TIFF, an array of any supported dtype."""
    if not isinstance(path, bytes) and Path(path).suffix.lower() in ARRAY_SUFFIXES:
        arr = read_array(path, max_pixels=max_pixels)
        if arr.dtype == np.uint8 and (arr.ndim == 2 or arr.shape[2] <= 4):
            return arr if arr.ndim == 3 else arr[:, :, None]
        return arr
    return read_image(path, max_pixels=max_pixels)[0]


ARRAY_OUTPUT_SUFFIXES = (".npy", ".tif", ".tiff")
"""Suffixes :func:`save_any` writes arrays that are not 8-bit images with."""


def output_suffixes(dtype: str, bands: int) -> tuple[str, ...]:
    """The output suffixes :func:`save_any` can write an ``[H, W, bands]`` array of ``dtype`` to."""
    from .images import OUTPUT_SUFFIXES

    if dtype == "uint8" and bands <= 4:
        return OUTPUT_SUFFIXES + (".npy",)
    return ARRAY_OUTPUT_SUFFIXES


def save_any(arr: np.ndarray, path: str | os.PathLike, *, force: bool = False) -> None:
    """8-bit images as PNG (or other lossless formats by suffix); other arrays as ``.npy`` or TIFF."""
    from .files import atomic_write_bytes

    suffix = Path(str(path)).suffix.lower()
    is_image = arr.dtype == np.uint8 and (arr.ndim == 2 or arr.shape[2] <= 4)
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue(), force=force)
    elif suffix in (".tif", ".tiff") and not is_image:
        import tifffile

        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, photometric="minisblack")
        atomic_write_bytes(path, buf.getvalue(), force=force)
    elif is_image:
        save_image(arr, path, force=force)
    else:
        raise InputError(f"{path}: a {arr.dtype} array with shape {arr.shape} is written as .npy or .tif, not {suffix!r}")
