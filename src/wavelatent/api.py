"""compress/decompress: arrays <-> .wlt bytes (codec + entropy coder + container)."""
from __future__ import annotations

import math
import os
import zlib
from typing import Any

import numpy as np
import torch

from . import container
from .codec import WaveletCodec
from .entropy import context, rans
from .errors import HeaderError, InputError, LimitError, PresetError, WeightsMismatchError
from .io.audio import DEFAULT_MAX_SAMPLES
from .io.images import DEFAULT_MAX_PIXELS, image_to_array
from .models import load_codec
from .registry import list_presets

DEFAULT_PRESET = "image-rgb-16x"
_COLOR_CHANNELS = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3}

CodecLike = "str | os.PathLike | WaveletCodec"


def _resolve(codec: Any) -> WaveletCodec:
    return codec if isinstance(codec, WaveletCodec) else load_codec(codec)


def choose_preset(mode: str) -> str:
    """The default preset for an image mode: grayscale images use the gray preset when it ships."""
    from .weights import has_shipped_weights

    if _COLOR_CHANNELS.get(mode) == 1 and has_shipped_weights("image-gray-16x"):
        return "image-gray-16x"
    return DEFAULT_PRESET


def _sha(codec: WaveletCodec) -> str:
    if codec.weights_sha256 is None:
        import hashlib

        from .weights import serialize

        codec.weights_sha256 = hashlib.sha256(serialize(codec)).hexdigest()
    return codec.weights_sha256


def compress(
    image,
    preset: str | os.PathLike | WaveletCodec | None = None,
    quality: int | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Compress an image to .wlt bytes.

    ``image``: uint8 array ``[H, W]`` or ``[H, W, C]`` (C = 1..4) or a PIL image; or an N-channel
    / 16-bit / float array ``[H, W, N]`` (coded by :mod:`wavelatent.multiband` with a 1-channel preset).
    ``preset``: a preset name, a weights file, a loaded codec, or None: ``image-rgb-16x`` for colour,
    ``image-gray-16x`` for grayscale (when it ships) and multi-band arrays.
    ``quality``: 1 (smallest) .. the preset's number of qualities; None = preset default.
    Alpha channels are kept losslessly (zlib) beside the lossy colour channels.
    """
    bands = _multiband_array(image)
    if bands is not None:
        from .multiband import compress_bands

        return compress_bands(bands, _resolve(preset or "image-gray-16x"), quality, max_pixels=max_pixels)
    arr, mode = image_to_array(image, max_pixels=max_pixels)
    codec = _resolve(preset if preset is not None else choose_preset(mode))
    cfg = codec.config
    if cfg.modality != "image":
        raise InputError(f"preset {cfg.name} codes {cfg.modality}, not images")
    quality = cfg.check_quality(quality)
    n_color = _COLOR_CHANNELS[mode]
    color, alpha = arr[:, :, :n_color], (arr[:, :, n_color] if arr.shape[2] > n_color else None)
    if n_color == 1 and cfg.channels == 3:
        color = np.repeat(color, 3, axis=2)
    elif n_color != cfg.channels:
        raise InputError(
            f"preset {cfg.name} codes {cfg.channels}-channel images; this image is {mode} ({n_color} colour channels)"
        )
    H, W = arr.shape[:2]
    device = next(codec.parameters()).device
    with torch.inference_mode():  # large images go to float one stripe at a time
        q = codec.quantize(codec.encode(_pixels(color, device)), quality)  # uint8: converted stripe by stripe
    if cfg.context == "checkerboard":
        streams = {"latent": context.encode(q[0].cpu().numpy(), codec.context_tables(quality))}
    else:
        streams = {"latent": rans.encode(q[0].flatten(1).cpu().numpy() + cfg.max_symbol(quality), codec.tables(quality))}
    if alpha is not None:
        streams["alpha"] = zlib.compress(np.ascontiguousarray(alpha).tobytes(), 9)
    header = {
        "modality": "image",
        "preset": cfg.name,
        "preset_version": cfg.version,
        "weights_sha256": _sha(codec),
        "height": H,
        "width": W,
        "mode": mode,
        "bit_depth": 8,
        "coded_channels": cfg.channels,
        "padded": [math.ceil(H / cfg.block) * cfg.block, math.ceil(W / cfg.block) * cfg.block],
        "latent_shape": list(q.shape[1:]),
        "quality": quality,
        "wavelatent_version": _version(),
    }
    if cfg.context != "none":
        header["entropy"] = cfg.context
    return container.pack(header, streams)


def _pixels(color: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> uint8 ``[1, C, H, W]`` (a view of ``color`` on the CPU)."""
    if not (color.flags.writeable and color.flags.c_contiguous):
        color = np.array(color)
    return torch.from_numpy(color).to(device).permute(2, 0, 1).unsqueeze(0)


def _to_pixels(x_hat: torch.Tensor) -> torch.Tensor:
    """float -> uint8, exactly as :func:`wavelatent.io.images.to_uint8` of ``x_hat.clamp(0, 1)``."""
    return x_hat.clamp(0, 1).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


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


def _version() -> str:
    from . import __version__

    return __version__


def _field(header: dict, key: str, kind: type, check=None) -> Any:
    value = header.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) or (check is not None and not check(value)):
        raise HeaderError(f"header field {key!r} is missing or invalid: {value!r}")
    return value


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
            info["compression_ratio"] = (h * w * _COLOR_CHANNELS.get(mode if isinstance(mode, str) else "", 3)) / len(data)
    elif header.get("modality") == "audio":  # duration, real kbps, channel groups
        from .audio import audio_info

        info.update(audio_info(header, len(data)))
    return info


def decompress(
    data: bytes,
    codec: str | os.PathLike | WaveletCodec | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    limits: container.Limits = container.DEFAULT_LIMITS,
) -> np.ndarray:
    """.wlt bytes -> uint8 image ``[H, W]`` (L) or ``[H, W, C]`` (LA, RGB, RGBA).

    ``codec``: the weights to decode with; None uses the preset named in the file. The file's
    weights hash must match, otherwise :class:`WeightsMismatchError`. Audio files decode to float32
    samples ``[frames, channels]`` at their own rate (``read_info(data)["sample_rate"]``), at most
    ``max_samples`` (frames x channels) of them.
    """
    c = container.unpack(data, limits=limits)
    header = c.header
    modality = header.get("modality")
    if modality == "audio":
        from .audio import decompress_audio

        return decompress_audio(data, codec, max_samples=max_samples, limits=limits)[0]
    if modality not in ("image", "multiband"):
        raise HeaderError(f"this build decodes image and multi-band files; the file's modality is {modality!r:.40}")
    H = _field(header, "height", int, lambda v: v >= 1)
    W = _field(header, "width", int, lambda v: v >= 1)
    if H * W > max_pixels:
        raise LimitError(f"image of {W}x{H} pixels exceeds the limit of {max_pixels} pixels")
    model = _checked_codec(header, codec)
    if modality == "multiband":
        from .multiband import decompress_bands

        return decompress_bands(header, c.streams, model, max_pixels=max_pixels)
    cfg = model.config
    mode = _field(header, "mode", str, lambda v: v in _COLOR_CHANNELS)
    _field(header, "bit_depth", int, lambda v: v == 8)
    quality = _field(header, "quality", int, lambda v: 1 <= v <= cfg.qualities)
    expected = [cfg.latent_channels, *model.latent_size((H, W))]
    if header.get("latent_shape") != expected or header.get("coded_channels") != cfg.channels:
        raise HeaderError(f"latent shape {header.get('latent_shape')!r} does not fit a {W}x{H} image and {cfg.name}")
    if set(c.streams) - {"latent", "alpha"} or "latent" not in c.streams:
        raise HeaderError(f"unexpected streams {sorted(c.streams)}")
    K, h, w = expected
    if header.get("entropy", "none") != cfg.context:
        raise HeaderError(f"entropy model {header.get('entropy', 'none')!r:.40} does not match {cfg.name}'s {cfg.context!r}")
    if cfg.context == "checkerboard":
        symbols = context.decode(c.streams["latent"], model.context_tables(quality), (h, w))
        q = torch.from_numpy(symbols).view(1, K, h, w)
    else:
        symbols = rans.decode(c.streams["latent"], model.tables(quality), h * w)
        q = torch.from_numpy(symbols.astype(np.int32) - cfg.max_symbol(quality)).view(1, K, h, w)
    device = next(model.parameters()).device
    with torch.inference_mode():  # large images go to uint8 one stripe at a time
        pixels = model.decode(model.dequantize(q.to(device), quality), (H, W), postprocess=_to_pixels)
    out = pixels[0].permute(1, 2, 0).contiguous().cpu().numpy()
    if _COLOR_CHANNELS[mode] == 1 and out.shape[2] == 3:
        out = np.round(out.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
    has_alpha = mode in ("LA", "RGBA")
    if has_alpha != ("alpha" in c.streams):
        raise HeaderError(f"mode {mode} and the file's streams {sorted(c.streams)} disagree")
    if has_alpha:
        alpha = _inflate(c.streams["alpha"], H * W).reshape(H, W, 1)
        out = np.concatenate([out, alpha], axis=2)
    return out[:, :, 0] if out.shape[2] == 1 else out


def _checked_codec(header: dict, codec) -> WaveletCodec:
    """The codec to decode a file with: given or named by the header, its weights hash checked."""
    preset = _field(header, "preset", str)
    sha = _field(header, "weights_sha256", str)
    if codec is None and preset not in list_presets():  # never open a path named by the file
        raise PresetError(f"the file names preset {preset!r:.80}, which this build does not have; pass its weights")
    model = _resolve(codec if codec is not None else preset)
    if _sha(model) != sha:
        raise WeightsMismatchError(
            f"the file was written with weights {sha[:12]}… of preset {preset!r:.80}; the decoder has "
            f"{_sha(model)[:12]}… ({model.config.name}); pass the weights it was written with"
        )
    return model


def _inflate(data: bytes, size: int) -> np.ndarray:
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, size)
        if len(raw) != size or d.unconsumed_tail or not d.eof:
            raise HeaderError(f"alpha stream does not hold exactly {size} bytes")
    except zlib.error as e:
        raise HeaderError(f"alpha stream is corrupt: {e}") from None
    return np.frombuffer(raw, dtype=np.uint8)
