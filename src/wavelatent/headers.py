"""File header schemas, one place for every modality: the typed field reader, the header each
modality writes (image, multiband, audio) and the checks a decoder runs on it, and the choice of
the codec that decodes a file (its weights hash checked)."""
from __future__ import annotations

from typing import Any, Callable

from .errors import HeaderError, PresetError, WeightsMismatchError

__all__ = [
    "COLOR_CHANNELS", "audio_header", "check_entropy", "check_image_header", "check_multiband_header",
    "checked_codec", "field", "image_header", "image_size", "multiband_header",
]

COLOR_CHANNELS = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3}
"""Colour channels of each image mode the image header may name (alpha is stored beside them)."""


SHA_PREFIX = 16
"""Hex digits of the weights hash that new files record (older files hold all 64)."""


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
        # 64 bits of the hash tell weights apart; files before version 0.2 hold all 256
        "weights_sha256": weights_sha256(codec)[:SHA_PREFIX],
        "quality": quality,
    }


def _entropy(entropy: str) -> dict:
    return {} if entropy == "none" else {"entropy": entropy}  # files of the factorized model carry no field


def check_entropy(header: dict, codec) -> str:
    """The file's entropy model (``"none"`` when absent), which must be one ``codec`` holds tables for
    (its own, or the older model it keeps for old files); returns its name."""
    entropy = header.get("entropy", "none")
    allowed = codec.config.entropy_models
    if not isinstance(entropy, str) or entropy not in allowed:
        raise HeaderError(f"entropy model {entropy!r:.40} is not one this codec decodes ({', '.join(allowed)})")
    return entropy


# --- image ------------------------------------------------------------------
def image_header(codec, quality: int, *, height: int, width: int, mode: str, entropy: str) -> dict:
    """The header of an 8-bit image file; the latent's shape follows from the size and the codec."""
    return {**_common(codec, "image", quality), "height": height, "width": width, "mode": mode, **_entropy(entropy)}


def image_size(header: dict) -> tuple[int, int]:
    """``(height, width)`` of an image or multi-band header (checked before any codec is loaded)."""
    return field(header, "height", int, lambda v: v >= 1), field(header, "width", int, lambda v: v >= 1)


def check_image_header(header: dict, codec) -> tuple[str, int, tuple[int, int], str]:
    """``(mode, quality, (h, w), entropy)`` of an image header decoded by ``codec``. Fields that older
    files also hold (bit depth, coded channels, latent shape) must agree when present."""
    cfg = codec.config
    H, W = image_size(header)
    mode = field(header, "mode", str, lambda v: v in COLOR_CHANNELS)
    quality = field(header, "quality", int, lambda v: 1 <= v <= cfg.qualities)
    expected = [cfg.latent_channels, *codec.latent_size((H, W))]
    if header.get("bit_depth", 8) != 8:
        raise HeaderError(f"bit depth {header.get('bit_depth')!r:.20} is not 8")
    if header.get("latent_shape", expected) != expected or header.get("coded_channels", cfg.channels) != cfg.channels:
        raise HeaderError(f"latent shape {header.get('latent_shape')!r:.80} does not fit a {W}x{H} image and {cfg.name}")
    return mode, quality, (expected[1], expected[2]), check_entropy(header, codec)


# --- multi-band -------------------------------------------------------------
def multiband_header(codec, quality: int, *, height: int, width: int, bands: int, dtype: str, latent_shape,
                     entropy: str = "none") -> dict:
    """The header of a multi-band file (``latent_shape [N, K, h, w]``, KLT side stream)."""
    return {
        **_common(codec, "multiband", quality),
        "height": height,
        "width": width,
        "bands": bands,
        "dtype": dtype,
        "latent_shape": [int(v) for v in latent_shape],
        "transform": "klt",
        **_entropy(entropy),
    }


def check_multiband_header(
    header: dict, codec, *, max_bands: int, dtypes
) -> tuple[int, int, int, str, int, tuple[int, int], str]:
    """``(H, W, N, dtype, quality, (h, w), entropy)`` of a multi-band header decoded by ``codec``."""
    cfg = codec.config
    H, W = image_size(header)
    N = field(header, "bands", int, lambda v: 1 <= v <= max_bands)
    dtype = field(header, "dtype", str, lambda v: v in dtypes)
    quality = field(header, "quality", int, lambda v: 1 <= v <= cfg.qualities)
    h, w = codec.latent_size((H, W))
    if header.get("latent_shape") != [N, cfg.latent_channels, h, w] or cfg.channels != 1:
        raise HeaderError(f"latent shape {header.get('latent_shape')!r:.80} does not fit {W}x{H}x{N} and {cfg.name}")
    return H, W, N, dtype, quality, (h, w), check_entropy(header, codec)


# --- audio ------------------------------------------------------------------
def audio_header(codec, quality: int, *, entropy: str, **fields: Any) -> dict:
    """The header of an audio file: the common fields plus the audio layout ``fields`` (see
    :mod:`wavelatent.audio`: sample_rate, channels, frames, subtype, source_format, gain, chunk; the
    rest follows from them and the codec)."""
    return {**_common(codec, "audio", quality), **fields, **_entropy(entropy)}


# --- the decoder ------------------------------------------------------------
def checked_codec(header: dict, codec=None):
    """The codec to decode a file with: ``codec`` (a preset name, weights path or loaded codec) or,
    when None, the preset the header names; its weights hash must be the file's
    (:class:`WeightsMismatchError` otherwise). Never opens a path named by the file."""
    from .models import resolve_codec
    from .registry import list_presets
    from .weights import accepts_weights, weights_sha256

    preset = field(header, "preset", str)
    sha = field(header, "weights_sha256", str)
    if codec is None and preset not in list_presets():
        raise PresetError(f"the file names preset {preset!r:.80}, which this build does not have; pass its weights")
    model = resolve_codec(codec if codec is not None else preset)
    have = weights_sha256(model)
    if not accepts_weights(model, sha):
        raise WeightsMismatchError(
            f"the file was written with weights {sha[:12]}… of preset {preset!r:.80}; the decoder has "
            f"{have[:12]}… ({model.config.name}); pass the weights it was written with"
        )
    return model
