"""File header schemas, one place for every modality: the typed field reader, the header each
modality writes (image, multiband, audio) and the checks a decoder runs on it, and the choice of
the codec that decodes a file (its weights hash checked)."""
from __future__ import annotations

import math
from typing import Any, Callable

from .errors import HeaderError, PresetError, WeightsMismatchError

__all__ = [
    "COLOR_CHANNELS", "audio_header", "check_entropy", "check_image_header", "check_multiband_header",
    "checked_codec", "field", "image_header", "image_size", "multiband_header", "version",
]

COLOR_CHANNELS = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3}
"""Colour channels of each image mode the image header may name (alpha is stored beside them)."""


def version() -> str:
    """The library version written into every header."""
    from . import __version__

    return __version__


def field(header: dict, key: str, kind: type, check: Callable[[Any], bool] | None = None) -> Any:
    """``header[key]`` if it is a ``kind`` (never a bool) passing ``check``, else HeaderError."""
    value = header.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) or (check is not None and not check(value)):
        raise HeaderError(f"header field {key!r} is missing or invalid: {value!r:.80}")
    return value


def _common(codec, modality: str, quality: int) -> dict:
    from .weights import weights_sha256

    cfg = codec.config
    return {
        "modality": modality,
        "preset": cfg.name,
        "preset_version": cfg.version,
        "weights_sha256": weights_sha256(codec),
        "quality": quality,
        "wavelatent_version": version(),
    }


def _entropy(entropy: str) -> dict:
    return {} if entropy == "none" else {"entropy": entropy}  # files of the factorized model carry no field


def check_entropy(header: dict, entropy: str) -> None:
    """The file's entropy model (``"none"`` when absent) must be the decoder's ``entropy``."""
    if header.get("entropy", "none") != entropy:
        raise HeaderError(f"entropy model {header.get('entropy', 'none')!r:.40} does not match the decoder's {entropy!r}")


# --- image ------------------------------------------------------------------
def image_header(codec, quality: int, *, height: int, width: int, mode: str, latent_shape, entropy: str) -> dict:
    """The header of an 8-bit image file (``latent_shape [K, h, w]``)."""
    cfg = codec.config
    return {
        **_common(codec, "image", quality),
        "height": height,
        "width": width,
        "mode": mode,
        "bit_depth": 8,
        "coded_channels": cfg.channels,
        "padded": [math.ceil(height / cfg.block) * cfg.block, math.ceil(width / cfg.block) * cfg.block],
        "latent_shape": [int(v) for v in latent_shape],
        **_entropy(entropy),
    }


def image_size(header: dict) -> tuple[int, int]:
    """``(height, width)`` of an image or multi-band header (checked before any codec is loaded)."""
    return field(header, "height", int, lambda v: v >= 1), field(header, "width", int, lambda v: v >= 1)


def check_image_header(header: dict, codec) -> tuple[str, int, tuple[int, int]]:
    """``(mode, quality, (h, w))`` of an image header decoded by ``codec`` (and its entropy model)."""
    cfg = codec.config
    H, W = image_size(header)
    mode = field(header, "mode", str, lambda v: v in COLOR_CHANNELS)
    field(header, "bit_depth", int, lambda v: v == 8)
    quality = field(header, "quality", int, lambda v: 1 <= v <= cfg.qualities)
    expected = [cfg.latent_channels, *codec.latent_size((H, W))]
    if header.get("latent_shape") != expected or header.get("coded_channels") != cfg.channels:
        raise HeaderError(f"latent shape {header.get('latent_shape')!r:.80} does not fit a {W}x{H} image and {cfg.name}")
    check_entropy(header, cfg.context)
    return mode, quality, (expected[1], expected[2])


# --- multi-band -------------------------------------------------------------
def multiband_header(codec, quality: int, *, height: int, width: int, bands: int, dtype: str, latent_shape) -> dict:
    """The header of a multi-band file (``latent_shape [N, K, h, w]``, KLT side stream)."""
    return {
        **_common(codec, "multiband", quality),
        "height": height,
        "width": width,
        "bands": bands,
        "dtype": dtype,
        "latent_shape": [int(v) for v in latent_shape],
        "transform": "klt",
    }


def check_multiband_header(header: dict, codec, *, max_bands: int, dtypes) -> tuple[int, int, int, str, int, tuple[int, int]]:
    """``(H, W, N, dtype, quality, (h, w))`` of a multi-band header decoded by ``codec``."""
    cfg = codec.config
    H, W = image_size(header)
    N = field(header, "bands", int, lambda v: 1 <= v <= max_bands)
    dtype = field(header, "dtype", str, lambda v: v in dtypes)
    quality = field(header, "quality", int, lambda v: 1 <= v <= cfg.qualities)
    h, w = codec.latent_size((H, W))
    if header.get("latent_shape") != [N, cfg.latent_channels, h, w] or cfg.channels != 1:
        raise HeaderError(f"latent shape {header.get('latent_shape')!r:.80} does not fit {W}x{H}x{N} and {cfg.name}")
    check_entropy(header, "none")
    return H, W, N, dtype, quality, (h, w)


# --- audio ------------------------------------------------------------------
def audio_header(codec, quality: int, *, entropy: str, **fields: Any) -> dict:
    """The header of an audio file: the common fields plus the audio layout ``fields`` (see
    :mod:`wavelatent.audio`: sample_rate, channels, frames, subtype, source_format, gain, coded_rate,
    coded_frames, groups, block, margin, chunk, latent_shape)."""
    return {**_common(codec, "audio", quality), **fields, **_entropy(entropy)}


# --- the decoder ------------------------------------------------------------
def checked_codec(header: dict, codec=None):
    """The codec to decode a file with: ``codec`` (a preset name, weights path or loaded codec) or,
    when None, the preset the header names; its weights hash must be the file's
    (:class:`WeightsMismatchError` otherwise). Never opens a path named by the file."""
    from .models import resolve_codec
    from .registry import list_presets
    from .weights import weights_sha256

    preset = field(header, "preset", str)
    sha = field(header, "weights_sha256", str)
    if codec is None and preset not in list_presets():
        raise PresetError(f"the file names preset {preset!r:.80}, which this build does not have; pass its weights")
    model = resolve_codec(codec if codec is not None else preset)
    have = weights_sha256(model)
    if have != sha:
        raise WeightsMismatchError(
            f"the file was written with weights {sha[:12]}… of preset {preset!r:.80}; the decoder has "
            f"{have[:12]}… ({model.config.name}); pass the weights it was written with"
        )
    return model
