"""compress/decompress: arrays <-> .wlt bytes (codec + entropy coder + container)."""
from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from . import container
from .bitstream import LatentCoder
from .codec import WaveletCodec
from .errors import HeaderError, InputError, LimitError
from .headers import COLOR_CHANNELS, check_image_header, checked_codec, image_header, image_size
from .io.images import DEFAULT_MAX_PIXELS, image_to_array
from .models import pick_codec, resolve_codec
from .pixels import decode_image_pixels, encode_image_symbols

DEFAULT_PRESET = "image-rgb-16x"

CodecLike = "str | os.PathLike | WaveletCodec"


def choose_preset(mode: str) -> str:
    """The default preset for an image mode: grayscale images use the gray preset when it ships."""
    from .weights import has_shipped_weights

    if COLOR_CHANNELS.get(mode) == 1 and has_shipped_weights("image-gray-16x"):
        return "image-gray-16x"
    return DEFAULT_PRESET


def compress(
    image,
    codec: str | os.PathLike | WaveletCodec | None = None,
    quality: int | None = None,
    *,
    preset: str | os.PathLike | WaveletCodec | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    entropy: str | None = None,
) -> bytes:
    """Compress an image to .wlt bytes.

    ``image``: uint8 array ``[H, W]`` or ``[H, W, C]`` (C = 1..4) or a PIL image; or an N-channel
    / 16-bit / float array ``[H, W, N]`` (coded by :mod:`wavelatent.multiband` with a 1-channel preset).
    ``codec``: a preset name, a weights file, a loaded codec, or None: ``image-rgb-16x`` for colour,
    ``image-gray-16x`` for grayscale (when it ships) and multi-band arrays. ``preset=`` is an old
    alias of ``codec=``.
    ``quality``: 1 (smallest) .. the preset's number of qualities; None = preset default.
    Alpha channels are kept losslessly (zlib) beside the lossy colour channels.
    ``entropy``: another entropy model the codec holds (``codec.config.entropy_models``, e.g.
    ``"none"``: per-channel tables, larger files, faster coding); None = the codec's own.
    """
    codec = pick_codec(codec, preset)
    bands = _multiband_array(image)
    if bands is not None:
        from .multiband import compress_bands

        return compress_bands(bands, resolve_codec(codec if codec is not None else "image-gray-16x"), quality,
                              max_pixels=max_pixels, entropy=entropy)
    arr, mode = image_to_array(image, max_pixels=max_pixels)
    model = resolve_codec(codec if codec is not None else choose_preset(mode))
    cfg = model.config
    if cfg.modality != "image":
        raise InputError(f"preset {cfg.name} codes {cfg.modality}, not images")
    quality = cfg.check_quality(quality)
    n_color = COLOR_CHANNELS[mode]
    color, alpha = arr[:, :, :n_color], (arr[:, :, n_color] if arr.shape[2] > n_color else None)
    if n_color == 1 and cfg.channels == 3:
        color = np.repeat(color, 3, axis=2)
    elif n_color != cfg.channels:
        raise InputError(
            f"preset {cfg.name} codes {cfg.channels}-channel images; this image is {mode} ({n_color} colour channels)"
        )
    H, W = arr.shape[:2]
    q = encode_image_symbols(model, color, quality)  # [K, h, w]; uint8 converted to float stripe by stripe
    coder = LatentCoder(model, quality, entropy=entropy)
    streams = {"latent": coder.compress(q)}
    if alpha is not None:
        streams["alpha"] = zlib.compress(np.ascontiguousarray(alpha).tobytes(), 9)
    header = image_header(model, quality, height=H, width=W, mode=mode, entropy=coder.entropy)
    return container.pack(header, streams)


def _multiband_array(image) -> np.ndarray | None:
    """The array if ``image`` needs the multi-band path (not 8-bit, or more than 4 channels)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 and image.dtype.name in ("uint16", "float32", "float64"):
            return image
        if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] > 4:
            return image
        return None
    from PIL import Image

    if isinstance(image, Image.Image) and image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image).astype(np.uint16)
    return None


def read_info(data: bytes, *, limits: container.Limits = container.DEFAULT_LIMITS) -> dict[str, Any]:
    """The header of a .wlt file plus what follows from it (file size, bits per pixel)."""
    header = container.read_header(data, limits=limits)
    info = dict(header)
    info["file_bytes"] = len(data)
    if header.get("modality") == "image":
        h, w = header.get("height"), header.get("width")
        if isinstance(h, int) and isinstance(w, int) and 0 < h < 2**63 and 0 < w < 2**63:  # no float overflow
            info["bpp"] = 8 * len(data) / (h * w)
            mode = header.get("mode")
            info["compression_ratio"] = (h * w * COLOR_CHANNELS.get(mode if isinstance(mode, str) else "", 3)) / len(data)
    elif header.get("modality") == "multiband":  # bits per pixel (all bands), ratio against the array's bytes
        from .multiband import multiband_info

        info.update(multiband_info(header, len(data)))
    elif header.get("modality") == "audio":  # duration, real kbps, channel groups
        from .audio import audio_info

        info.update(audio_info(header, len(data)))
    return info


def decompress(
    data: bytes,
    codec: str | os.PathLike | WaveletCodec | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_samples: int | None = None,
    limits: container.Limits = container.DEFAULT_LIMITS,
) -> np.ndarray:
    """.wlt bytes -> uint8 image ``[H, W]`` (L) or ``[H, W, C]`` (LA, RGB, RGBA), or the array
    ``[H, W, N]`` of a multi-band file in its original dtype.

    ``codec``: the weights to decode with (a preset name, weights file or loaded codec); None uses
    the preset named in the file. The file's weights hash must match, otherwise
    :class:`WeightsMismatchError`. Audio files raise :class:`InputError` (their sample rate would
    be lost): decode them with :func:`wavelatent.audio.decompress_audio`, which returns
    ``(samples, sample_rate)``. ``max_samples`` is accepted for old callers and unused.
    """
    c = container.unpack(data, limits=limits)
    header = c.header
    modality = header.get("modality")
    if modality == "audio":
        raise InputError("this is an audio file: decode it with wavelatent.audio.decompress_audio(data), "
                         "which returns (samples, sample_rate)")
    if modality not in ("image", "multiband"):
        raise HeaderError(f"this build decodes image and multi-band files; the file's modality is {modality!r:.40}")
    H, W = image_size(header)
    if H * W > max_pixels:
        raise LimitError(f"image of {W}x{H} pixels exceeds the limit of {max_pixels} pixels")
    model = checked_codec(header, codec)
    if modality == "multiband":
        from .multiband import decompress_bands

        return decompress_bands(header, c.streams, model, max_pixels=max_pixels)
    mode, quality, latent_size, entropy = check_image_header(header, model)
    if set(c.streams) - {"latent", "alpha"} or "latent" not in c.streams:
        raise HeaderError(f"unexpected streams {sorted(c.streams)}")
    q = LatentCoder(model, quality, entropy=entropy).decompress(c.streams["latent"], latent_size)
    out = decode_image_pixels(model, q, (H, W), quality)  # large images go to uint8 one stripe at a time
    if COLOR_CHANNELS[mode] == 1 and out.shape[2] == 3:
        out = np.round(out.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
    has_alpha = mode in ("LA", "RGBA")
    if has_alpha != ("alpha" in c.streams):
        raise HeaderError(f"mode {mode} and the file's streams {sorted(c.streams)} disagree")
    if has_alpha:
        alpha = _inflate(c.streams["alpha"], H * W).reshape(H, W, 1)
        out = np.concatenate([out, alpha], axis=2)
    return out[:, :, 0] if out.shape[2] == 1 else out


def _inflate(data: bytes, size: int) -> np.ndarray:
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, size)
        if len(raw) != size or d.unconsumed_tail or not d.eof:
            raise HeaderError(f"alpha stream does not hold exactly {size} bytes")
    except zlib.error as e:
        raise HeaderError(f"alpha stream is corrupt: {e}") from None
    return np.frombuffer(raw, dtype=np.uint8)
