"""The registry of input types a ``wavelatent learn`` experiment can train on.

An input type turns a batch of images into the arrays a model sees::

    features(images: uint8 [N, H, W, 3]) -> array [N, C, H / f, W / f]   (any real dtype)

for one integer downsampling factor ``f`` (inferred from the shapes). The model's input is
``features * scale``, standardized per channel with the training set's mean and std. ``H`` is
the stored image size (``--size``, 144 by default): the experiment crops the model's window
(``--crop``, 128) out of the features, at offsets on a grid of ``--grid`` pixels, so ``f`` must
divide the size, the crop and the grid.

Built in (``get_input`` also accepts the parametric forms ``pixels:N``,
``latents:PRESET_OR_WEIGHTS[@QUALITY]``, and the stored-file forms ``jpeg:N@QUALITY``,
``webp:N@QUALITY`` and ``png:N``: the window shrunk to ``N`` px and kept as that file, the model
seeing the decoded image):

=================  =====================================================================
``latents-16x``    ``image-rgb-16x`` symbols (int8, scale = the quantization step); 12x16x16 per 128 px
``latents-4x``     ``image-rgb-4x`` symbols; 48x16x16 per 128 px
``pixels-32``      the image shrunk 4x by box filtering (area average, rounded to uint8): 32x32x3
``pixels-64``      shrunk 2x: 64x64x3
``pixels-128``     the pixels themselves: 128x128x3
``taef2``          TAEF2 (FLUX.2 tiny autoencoder) float latents; 32x16x16 per 128 px (6x reduction)
=================  =====================================================================

Add one with :func:`register_input`, e.g. latents of another autoencoder::

    from wavelatent.learn.inputs import register_input
    register_input("taef2", taef2_latents, description="TAEF2 latents, 32x16x16 per 128 px")

where ``taef2_latents(images)`` returns float ``[N, 32, H/8, W/8]``; then
``wavelatent learn DATA -o OUT --inputs taef2,latents-16x`` (the CLI imports modules named with
``--plugin`` first). Training flips such an input by computing its features of the mirrored
images as well, unless it is registered with ``reversible=True`` (reversing the features' width
is then exact, as for pixels). ``disk_bytes(crops) -> {"raw": bytes, "coded": bytes}`` per sample of
``crops`` (uint8 ``[N, crop, crop, 3]``, the model's windows) reports what the input costs to
store; without it the raw size is the features' ``nbytes`` and the coded size is left out.

Audio inputs (``modality="audio"``, for the spoken-digit experiment) take int16 clips
``[N, L]`` at 8 kHz and return ``[N, C, L / f]``:

=================  =====================================================================
``latents-2x``     ``audio-mono-2x`` symbols (int16): 16 channels, one step per 32 samples
``samples-4k``     the clip resampled to 4 kHz (``resample_poly``, rounded to int16): equal size
``samples-2k``     resampled to 2 kHz
``samples-8k``     the samples themselves
=================  =====================================================================

(also ``samples:RATE``, ``latents:AUDIO_PRESET_OR_WEIGHTS[@Q]`` for mono audio codecs, and
``opus:RATE@LEVEL``: the clip resampled to ``RATE`` Hz, stored as Ogg Opus at soundfile's
compression level ``LEVEL`` (0-1; Opus codes at 8 kHz, so lower rates are upsampled for the
encoder), the model seeing the decoded clip at ``RATE``).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from ..errors import InputError

__all__ = ["INPUT_TYPES", "DEFAULT_INPUTS", "DEFAULT_AUDIO_INPUTS", "InputType", "get_input", "register_input",
           "pixel_input", "sample_input", "latent_input", "file_input", "opus_input", "FILE_FORMATS"]

FeatureFn = Callable[[np.ndarray], np.ndarray]
BytesFn = Callable[[np.ndarray], dict]


@dataclass(frozen=True)
class InputType:
    """A named input: ``features(images) -> [N, C, h, w]``, scale, and how to size it on disk."""

    name: str
    features: FeatureFn
    scale: float = 1.0
    disk_bytes: BytesFn | None = None
    description: str = ""
    reversible: bool = False  # reversing the width of the features of an image = the features of its mirror
    modality: str = "image"  # what it takes: uint8 images [N, H, W, 3], or int16 8 kHz clips [N, L] ("audio")


INPUT_TYPES: dict[str, InputType] = {}
DEFAULT_INPUTS = ("latents-16x", "pixels-32", "pixels-128", "latents-4x", "pixels-64")
DEFAULT_AUDIO_INPUTS = ("latents-2x", "samples-4k", "samples-8k", "samples-2k")
AUDIO_RATE = 8000  # the spoken-digit clips' rate


def register_input(name: str, features: FeatureFn, *, scale: float = 1.0, disk_bytes: BytesFn | None = None,
                   description: str = "", reversible: bool = False, modality: str = "image",
                   replace: bool = False) -> InputType:
    """Add an input type to :data:`INPUT_TYPES` (``replace`` to redefine a name).

    ``reversible``: True when reversing the width of ``features(images)`` gives exactly the
    features of the mirrored images (pixels); otherwise (latents, see :mod:`wavelatent.data.flip`)
    flips are made by computing the features of the mirrored training images too.
    ``modality``: "image" or "audio" (what ``features`` takes).
    """
    if name in INPUT_TYPES and not replace:
        raise ValueError(f"input type {name!r} is already registered")
    if modality not in ("image", "audio"):
        raise ValueError(f"modality must be 'image' or 'audio', got {modality!r}")
    spec = InputType(name, features, float(scale), disk_bytes, description, bool(reversible), modality)
    INPUT_TYPES[name] = spec
    return spec


def get_input(name: str, *, crop: int = 128) -> InputType:
    """A registered input type, or one built from ``pixels:N`` / ``samples:RATE`` /
    ``latents:PRESET_OR_WEIGHTS[@Q]``.

    ``crop``: the model's window in pixels of the stored images (pixel inputs shrink it to N),
    or in samples of the 8 kHz clips.
    """
    if name in INPUT_TYPES:
        spec = INPUT_TYPES[name]
        return _BUILTIN[name](crop=crop) if spec.features is _lazy else spec
    kind, sep, arg = name.partition(":")
    shrunk = {"pixels": (pixel_input, "pixels:N needs an integer N"),
              "samples": (sample_input, "samples:RATE needs an integer rate in Hz")}
    if sep and kind in shrunk:
        make, need = shrunk[kind]
        try:
            n = int(arg)
        except ValueError:
            raise InputError(f"{need}, got {name!r}") from None
        return make(n, crop=crop, name=name)
    if sep and kind in FILE_FORMATS:
        side, at, q = arg.partition("@")
        try:
            n = int(side)
            quality = int(q) if at else None
        except ValueError:
            raise InputError(f"{kind}:N@QUALITY needs integers, got {name!r}") from None
        return file_input(kind, n, quality, crop=crop, name=name)
    if sep and kind == "opus":
        rate, at, level = arg.partition("@")
        try:
            r, lev = int(rate), float(level) if at else 1.0
        except ValueError:
            raise InputError(f"opus:RATE@LEVEL needs an integer rate and a level in [0, 1], got {name!r}") from None
        return opus_input(r, lev, crop=crop, name=name)
    if sep and kind == "latents":
        target, at, q = arg.rpartition("@") if "@" in arg else (arg, "", "")
        try:
            quality = int(q) if at else None
        except ValueError:
            raise InputError(f"latents:PRESET@Q needs an integer quality, got {name!r}") from None
        return latent_input(target, quality, name=name)
    raise InputError(f"unknown input type {name!r}; known: {', '.join(INPUT_TYPES)}, pixels:N, samples:RATE, "
                     "latents:PRESET[@Q], jpeg:N@Q, webp:N@Q, png:N, opus:RATE@LEVEL")


# --- pixels -----------------------------------------------------------------
def box_downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` -> ``[N, C, H/f, W/f]`` uint8 area averages (rounded)."""
    n, h, w, c = images.shape
    if h % factor or w % factor:
        raise InputError(f"cannot shrink {h}x{w} images by {factor}")
    x = images.reshape(n, h // factor, factor, w // factor, factor, c).astype(np.float32).mean(axis=(2, 4))
    return np.ascontiguousarray(np.round(x).astype(np.uint8).transpose(0, 3, 1, 2))


def _png_bytes(x: np.ndarray) -> int:
    from ..io.images import encode_png

    return len(encode_png(np.ascontiguousarray(x.transpose(1, 2, 0))))


def pixel_input(side: int, *, crop: int = 128, name: str | None = None) -> InputType:
    """``side x side x 3`` pixels per ``crop x crop`` window: the images shrunk ``crop / side`` times."""
    if side < 1 or crop % side:
        raise InputError(f"pixels:{side}: the crop ({crop} px) must be a multiple of {side}")
    factor = crop // side
    how = "the pixels of the crop" if factor == 1 else f"the crop shrunk {factor}x by box filtering"
    return _shrunk_input(name or f"pixels:{side}", partial(box_downsample, factor=factor), _png_bytes, "PNG",
                         f"{side}x{side}x3 pixels ({how})", reversible=True)


def _shrunk_input(name: str, shrink: FeatureFn, coded_bytes: Callable[[np.ndarray], int], coded_as: str,
                  description: str, **kw) -> InputType:
    """An input that is the signal itself, shrunk: stored raw, or losslessly coded one sample at a time."""

    def disk_bytes(windows: np.ndarray) -> dict:
        x = shrink(windows)
        return {"raw": float(x[0].nbytes), "coded": float(np.mean([coded_bytes(v) for v in x])), "coded_as": coded_as}

    return InputType(name, shrink, kw.pop("scale", 1.0), disk_bytes, description, **kw)


# --- pixels stored as image files ---------------------------------------------
# The strongest settings each format offers for storage (smallest files at a quality):
# JPEG with optimized Huffman tables, WebP with its slowest method, PNG at maximum compression.
FILE_FORMATS = {"jpeg": ("JPEG", (("optimize", True),)), "webp": ("WEBP", (("method", 6),)), "png": ("PNG", ())}


def _file_codec(kind: str, quality: int | None):
    """``(compress(hwc uint8) -> bytes, decompress(bytes) -> hwc uint8, label)`` for a stored-file input."""
    from PIL import Image

    fmt, options = FILE_FORMATS[kind]
    if kind == "png":
        if quality is not None:
            raise InputError("png:N takes no quality (it is lossless)")
        from ..io.images import encode_png

        compress = encode_png
        label = "PNG file"
    else:
        if quality is None or not 1 <= quality <= 100:
            raise InputError(f"{kind}:N@QUALITY needs a quality in 1..100, got {quality}")
        from ..evaluate.codecs import PillowCodec

        codec = PillowCodec(kind, fmt, (quality,), options)

        def compress(img: np.ndarray) -> bytes:
            return codec.compress(img, quality)

        label = f"{fmt} q{quality} file ({', '.join(f'{k}={v}' for k, v in options)})"

    def decompress(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))

    return compress, decompress, label


def file_input(kind: str, side: int, quality: int | None = None, *, crop: int = 128,
               name: str | None = None) -> InputType:
    """``side x side x 3`` pixels per window (box-shrunk like ``pixels:N``), kept as a JPEG, WebP or
    PNG file; the model sees the decoded image. Bytes per sample: the file of each validation window."""
    if kind not in FILE_FORMATS:
        raise InputError(f"unknown file format {kind!r}; known: {', '.join(FILE_FORMATS)}")
    if side < 1 or crop % side:
        raise InputError(f"{kind}:{side}: the crop ({crop} px) must be a multiple of {side}")
    compress, decompress, label = _file_codec(kind, quality)
    factor = crop // side

    def coded(images: np.ndarray) -> np.ndarray:  # uint8 [N, S, S, 3] -> decoded uint8 [N, 3, S/f, S/f]
        x = box_downsample(images, factor)
        for i, v in enumerate(x):
            x[i] = decompress(compress(np.ascontiguousarray(v.transpose(1, 2, 0)))).transpose(2, 0, 1)
        return x

    def size(v: np.ndarray) -> int:
        return len(compress(np.ascontiguousarray(v.transpose(1, 2, 0))))

    def disk_bytes(windows: np.ndarray) -> dict:  # the file of each shrunk window, not of the decoded pixels
        x = box_downsample(windows, factor)
        return {"raw": float(x[0].nbytes), "coded": float(np.mean([size(v) for v in x])), "coded_as": label}

    return InputType(name or f"{kind}:{side}" + (f"@{quality}" if quality is not None else ""), coded, 1.0,
                     disk_bytes, f"{side}x{side}x3 pixels as a {label}, decoded", reversible=True)


# --- latents ----------------------------------------------------------------
def latent_input(preset_or_weights: str, quality: int | None = None, *, name: str | None = None,
                 crop: int = 128) -> InputType:
    """Integer latent symbols (int8/int16) of an RGB image codec, or of a mono 8 kHz audio codec
    (for int16 clips), scaled by the quantization step; encoded exactly as ``wavelatent cache`` does."""
    from ..data.cache import coded_shard_bytes, encode_symbols, symbol_dtype
    from ..models import load_codec

    codec = load_codec(preset_or_weights)
    cfg = codec.config
    audio = cfg.modality == "audio"
    if (cfg.channels != 1 or cfg.sample_rate != AUDIO_RATE) if audio else cfg.channels != 3:
        raise InputError(f"latent inputs need an RGB image or a mono {AUDIO_RATE} Hz audio preset, got {cfg.name}")
    quality = cfg.check_quality(quality)
    dtype = symbol_dtype(cfg.max_symbol(quality))

    def symbols(samples: np.ndarray) -> np.ndarray:
        if audio:  # int16 clips [N, L] -> float [1, L] one at a time
            samples = (np.asarray(c, np.float32)[None] / 32768.0 for c in samples)
        return encode_symbols(codec, samples, quality)

    def features(samples: np.ndarray) -> np.ndarray:
        return symbols(samples).astype(dtype)

    def disk_bytes(windows: np.ndarray) -> dict:
        from ..weights import weights_sha256

        q = symbols(windows)
        coded = coded_shard_bytes(codec, quality, 0, q, None, weights_sha256(codec))
        return {"raw": float(q[0].size * dtype.itemsize), "coded": len(coded) / len(q), "coded_as": "rANS shard (.wlt)",
                "weights_sha256": weights_sha256(codec)}

    K = cfg.latent_channels
    where = f", one step per {cfg.block} samples" if audio else f" at 1/{cfg.block} resolution"
    return InputType(name or f"latents:{preset_or_weights}", features, cfg.step(quality), disk_bytes,
                     f"{cfg.name} latents q{quality}: {K} channels{where}", modality=cfg.modality)


def resample_clips(clips: np.ndarray, factor: int) -> np.ndarray:
    """int16 ``[N, L]`` -> int16 ``[N, 1, L / factor]``: ``resample_poly(x, 1, factor)``, rounded."""
    if clips.shape[-1] % factor:
        raise InputError(f"cannot resample {clips.shape[-1]} samples by 1/{factor}")
    if factor == 1:
        return np.ascontiguousarray(clips[:, None])
    from scipy.signal import resample_poly

    y = resample_poly(np.asarray(clips, np.float32), 1, factor, axis=-1)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)[:, None]


def _flac_bytes(x: np.ndarray, rate: int) -> int:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, rate, format="FLAC", subtype="PCM_16")
    return len(buf.getvalue())


def sample_input(rate: int, *, crop: int = 7680, name: str | None = None) -> InputType:
    """The 8 kHz clips resampled to ``rate`` Hz (``8000 / rate`` must be an integer dividing ``crop``)."""
    if rate < 1 or AUDIO_RATE % rate or crop % (AUDIO_RATE // rate):
        raise InputError(f"samples:{rate}: {AUDIO_RATE} / rate must be an integer that divides the crop ({crop})")
    factor = AUDIO_RATE // rate
    how = "the samples themselves" if factor == 1 else f"resampled {factor}x down"
    return _shrunk_input(name or f"samples:{rate}", partial(resample_clips, factor=factor),
                         lambda v: _flac_bytes(v[0], rate), "FLAC", f"{rate} Hz samples ({how})",
                         scale=1 / 32768, modality="audio")


def opus_input(rate: int, level: float = 1.0, *, crop: int = 7680, name: str | None = None) -> InputType:
    """The 8 kHz clips resampled to ``rate`` Hz and stored as Ogg Opus (soundfile, compression level
    ``level``); the model sees the decoded clip at ``rate``. Opus encodes at 8 kHz at least, so a
    lower ``rate`` is upsampled back to 8 kHz for the encoder (band-limited Opus)."""
    if rate < 1 or AUDIO_RATE % rate or crop % (AUDIO_RATE // rate):
        raise InputError(f"opus:{rate}: {AUDIO_RATE} / rate must be an integer that divides the crop ({crop})")
    if not 0.0 <= level <= 1.0:
        raise InputError(f"opus:{rate}@{level}: the compression level must lie in [0, 1]")
    factor = AUDIO_RATE // rate

    def encode(clip: np.ndarray) -> bytes:  # int16 [L] at `rate` -> Ogg Opus bytes (coded at 8 kHz)
        import soundfile as sf
        from scipy.signal import resample_poly

        x = np.asarray(clip, np.float32) / 32768.0
        if factor > 1:
            x = resample_poly(x, factor, 1).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, x, AUDIO_RATE, format="OGG", subtype="OPUS", compression_level=level)
        return buf.getvalue()

    def decode(data: bytes, length: int) -> np.ndarray:  # -> int16 [length] at `rate`
        import soundfile as sf
        from scipy.signal import resample_poly

        y, r = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        y = y[:, 0]
        if r != AUDIO_RATE:
            y = resample_poly(y, AUDIO_RATE, r)
        if factor > 1:
            y = resample_poly(y, 1, factor)
        y = np.pad(y[:length], (0, max(0, length - len(y))))
        return np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16)

    def features(clips: np.ndarray) -> np.ndarray:  # int16 [N, L] -> int16 [N, 1, L / factor]
        x = resample_clips(clips, factor)
        for i, v in enumerate(x):
            x[i, 0] = decode(encode(v[0]), x.shape[-1])
        return x

    def disk_bytes(windows: np.ndarray) -> dict:
        x = resample_clips(windows, factor)
        return {"raw": float(x[0].nbytes), "coded": float(np.mean([len(encode(v[0])) for v in x])),
                "coded_as": f"Ogg Opus file (level {level})"}

    return InputType(name or f"opus:{rate}@{level:g}", features, 1 / 32768, disk_bytes,
                     f"{rate} Hz samples as Ogg Opus (compression level {level:g}), decoded", modality="audio")


def taef2_input(*, crop: int = 128, name: str = "taef2") -> InputType:
    """TAEF2 latents (:func:`wavelatent.evaluate.taef2.taef2_encode`): float32 ``[N, 32, H/8, W/8]``.
    Stored size: raw float32, and coded as TAESD's 8-bit storage of them (a lossless PNG mosaic)."""
    from ..evaluate.taef2 import available, mosaic_bytes, quantize_latents, taef2_encode

    ok, why = available()
    if not ok:
        raise InputError(why)

    def disk_bytes(crops: np.ndarray) -> dict:
        import torch

        y = taef2_encode(crops)
        coded = [len(mosaic_bytes(quantize_latents(torch.from_numpy(v)))) for v in y]
        return {"raw": float(y[0].nbytes), "coded": float(np.mean(coded)), "coded_as": "8-bit PNG mosaic"}

    return InputType(name, taef2_encode, 1.0, disk_bytes, "TAEF2 float latents: 32 channels at 1/8 resolution")


def _lazy(images):  # placeholder features of built-ins that load weights on first use
    raise RuntimeError("unresolved input type")


_BUILTIN: dict[str, Callable[[], InputType]] = {
    "latents-16x": partial(latent_input, "image-rgb-16x", name="latents-16x"),
    "latents-4x": partial(latent_input, "image-rgb-4x", name="latents-4x"),
    "pixels-32": partial(pixel_input, 32, name="pixels-32"),
    "pixels-64": partial(pixel_input, 64, name="pixels-64"),
    "pixels-128": partial(pixel_input, 128, name="pixels-128"),
    "taef2": taef2_input,
    "latents-2x": partial(latent_input, "audio-mono-2x", name="latents-2x"),
    "samples-8k": partial(sample_input, 8000, name="samples-8k"),
    "samples-4k": partial(sample_input, 4000, name="samples-4k"),
    "samples-2k": partial(sample_input, 2000, name="samples-2k"),
}
for _name in _BUILTIN:
    INPUT_TYPES[_name] = InputType(_name, _lazy, description="built in (resolved on use)",
                                   modality="audio" if _name in DEFAULT_AUDIO_INPUTS else "image")
