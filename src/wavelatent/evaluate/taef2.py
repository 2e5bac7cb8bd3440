"""TAEF2, the tiny autoencoder of FLUX.2's latent space, as a baseline and as an input type.

TAEF2 (``madebyollin/taesd``, MIT) maps RGB in [0, 1] ``[B, 3, H, W]`` to 32 latent channels at
1/8 resolution ``[B, 32, H/8, W/8]``: ``3 * 64 / 32 = 6x`` fewer values than the image. It is the
TAESD architecture (3x3 convs, ReLUs, residual blocks of three convs, stride-2 convs down and
nearest 2x upsampling up) with 32 latent channels and, in the three blocks at latent resolution on
each side, an extra residual branch ``1x1 conv -> GroupNorm(4) -> ReLU -> 1x1 conv`` at 4x the width
(TAESD's ``use_midblock_gn``). The state-dict layout (``nn.Sequential`` indices, ``conv.{0,2,4}``,
``pool.{0,1,3}``) is that of the published ``taef2_{encoder,decoder}.pth``, loaded strictly.

Constants and where they come from:

* ``LATENT_MAGNITUDE = 3``, ``LATENT_SHIFT = 0.5``: ``TAESD.latent_magnitude`` /
  ``TAESD.latent_shift`` in ``taesd.py`` of ``madebyollin/taesd``; ``scale_latents(y) =
  clamp(y / (2 * 3) + 0.5, 0, 1)`` and ``unscale_latents(s) = (s - 0.5) * 6``. Its ``main()`` stores
  ``round(255 * scale_latents(y))`` as an 8-bit PNG, the storage its README suggests ("clip and
  quantize the latents into 8-bit PNGs without much loss of quality"). The FLUX.2 variant uses the
  same constants (AUTOMATIC1111-style ``sd_vae_taesd.py`` ports with ``arch_variant == "flux_2"``).
* The decoder's first layer ``Clamp``: ``tanh(y / 3) * 3`` (TAESD's ``Clamp``).
* Images in [0, 1] (not [-1, 1]), decoder output clamped to [0, 1] (TAESD README and ``main()``).

Sides that are not multiples of 8 are replicate-padded at the bottom and right and the decoded
image is cropped back, as :meth:`wavelatent.codec.WaveletCodec.pad` does.

The baseline's files (:class:`TAEF2Codec`)::

    "TAF2" | u8 version=1 | u8 format (0 float32, 1 png8, 2 webp8) | u8 image channels (1 or 3)
           | u8 reserved=0 | u32 height | u32 width | payload | u32 CRC32 (of all before)   (LE)

20 bytes besides the payload (counted in the bpp).

``float32``: the latents ``[32, ceil(H/8), ceil(W/8)]`` as raw little-endian float32 (no entropy
coding: 16 bpp). ``png8`` / ``webp8``: 8-bit scaled latents as a lossless grayscale PNG / lossless
WebP mosaic of the 32 channel planes, 4 rows of 8 (channel ``c`` at row ``c // 8``, column ``c % 8``).

Weights: ``taef2_encoder.pth`` and ``taef2_decoder.pth`` in ``$WAVELATENT_TAEF2_DIR`` or
``../shared/data/reference/taef2`` beside the repository; read with ``torch.load(...,
weights_only=True)`` only, so a file carrying a pickled object is refused (:class:`WeightsError`).
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import (BadMagicError, ChecksumError, HeaderError, InputError, LimitError, TruncatedError,
                      UnsupportedVersionError, WeightsError)

LATENT_CHANNELS = 32
FACTOR = 8                       # spatial downsampling of the latents
WIDTH = 64                       # feature channels of every conv
LATENT_MAGNITUDE = 3.0           # taesd.py TAESD.latent_magnitude
LATENT_SHIFT = 0.5               # taesd.py TAESD.latent_shift
REDUCTION = 3 * FACTOR * FACTOR / LATENT_CHANNELS  # 6.0 signal values per latent value
MOSAIC = (4, 8)                  # rows x columns of channel planes in the 8-bit image
ENCODER_FILE = "taef2_encoder.pth"
DECODER_FILE = "taef2_decoder.pth"
ENV_DIR = "WAVELATENT_TAEF2_DIR"

MAGIC = b"TAF2"
VERSION = 1
_HEADER = struct.Struct("<4sBBBBII")
FORMATS = ("float32", "png8", "webp8")
MAX_SIDE = 1 << 16
_MAX_WEIGHT_BYTES = 64 << 20


# --------------------------------------------------------------------------- architecture
def _conv3(n_in: int, n_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp of the latents to (-3, 3): ``tanh(y / 3) * 3``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """``relu(conv3(relu(conv3(relu(conv3(x))))) + x)``, after ``x = x + pool(x)`` when
    ``midblock_gn`` (pool: 1x1 conv to 4x width, GroupNorm with 4 groups, ReLU, 1x1 conv back)."""

    def __init__(self, channels: int = WIDTH, *, midblock_gn: bool = False) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(_conv3(c, c), nn.ReLU(), _conv3(c, c), nn.ReLU(), _conv3(c, c))
        self.fuse = nn.ReLU()
        self.pool = None
        if midblock_gn:
            self.pool = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.GroupNorm(4, 4 * c), nn.ReLU(),
                                      nn.Conv2d(4 * c, c, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def build_encoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """RGB ``[B, 3, H, W]`` in [0, 1] -> latents ``[B, latent_channels, H/8, W/8]`` (H, W multiples of 8)."""
    w = WIDTH

    def down() -> nn.Conv2d:
        return _conv3(w, w, stride=2, bias=False)

    def blocks(gn: bool = False) -> list[nn.Module]:
        return [Block(w, midblock_gn=gn) for _ in range(3)]

    return nn.Sequential(_conv3(3, w), Block(w), down(), *blocks(), down(), *blocks(), down(), *blocks(True),
                         _conv3(w, latent_channels))


def build_decoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """Latents ``[B, latent_channels, h, w]`` -> RGB ``[B, 3, 8h, 8w]`` (about [0, 1]; clamp it)."""
    w = WIDTH

    def up() -> list[nn.Module]:
        return [nn.Upsample(scale_factor=2), _conv3(w, w, bias=False)]

    def blocks(gn: bool = False) -> list[nn.Module]:
        return [Block(w, midblock_gn=gn) for _ in range(3)]

    return nn.Sequential(Clamp(), _conv3(latent_channels, w), nn.ReLU(), *blocks(True), *up(), *blocks(), *up(),
                         *blocks(), *up(), Block(w), _conv3(w, 3))


# --------------------------------------------------------------------------- weights
def default_dir() -> Path:
    """``$WAVELATENT_TAEF2_DIR``, else ``shared/data/reference/taef2`` beside the repository."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "reference" / "taef2"


def available(weights_dir: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether both weight files are there, and why not."""
    d = Path(weights_dir) if weights_dir is not None else default_dir()
    missing = [f for f in (ENCODER_FILE, DECODER_FILE) if not (d / f).is_file()]
    if missing:
        return False, f"TAEF2 weights not found: {', '.join(str(d / f) for f in missing)} (set ${ENV_DIR})"
    return True, ""


def load_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """A plain state dict of tensors, read with ``weights_only=True`` (never full unpickling).

    Raises :class:`WeightsError` for a missing, oversized or malformed file, or one whose pickle
    names anything but tensors and containers (e.g. a ``__reduce__`` payload)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if path.stat().st_size > _MAX_WEIGHT_BYTES:
        raise WeightsError(f"{path}: larger than any TAEF2 weights file ({_MAX_WEIGHT_BYTES} bytes)")
    try:
        sd = torch.load(path, weights_only=True, map_location="cpu")
    except torch.serialization.pickle.UnpicklingError as e:  # what weights_only=True raises on objects
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: refused: not a plain tensor file ({first})") from None
    except (RuntimeError, EOFError, ValueError, OSError, TypeError, AttributeError) as e:
        raise WeightsError(f"{path}: cannot read weights: {e}") from None
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                     for k, v in sd.items()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return sd


def _load_into(module: nn.Module, path: Path) -> nn.Module:
    sd = load_state_dict(path)
    try:
        module.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{path}: does not match the TAEF2 architecture: {e}") from None
    return module.eval().requires_grad_(False)


def load_taef2(weights_dir: str | os.PathLike | None = None, *,
               device: torch.device | str | None = None) -> tuple[nn.Sequential, nn.Sequential]:
    """``(encoder, decoder)`` in float32, eval mode, loaded strictly from ``weights_dir``."""
    d = Path(weights_dir) if weights_dir is not None else default_dir()
    enc = _load_into(build_encoder(), d / ENCODER_FILE)
    dec = _load_into(build_decoder(), d / DECODER_FILE)
    return enc.to(device), dec.to(device)


@lru_cache(maxsize=4)
def _cached(weights_dir: str, device: str) -> tuple[nn.Sequential, nn.Sequential]:
    return load_taef2(weights_dir, device=device)


# --------------------------------------------------------------------------- tensors
def pad(x: Tensor) -> Tensor:
    """Replicate-pad ``[B, C, H, W]`` at the bottom/right to multiples of 8."""
    ph, pw = (-x.shape[-2]) % FACTOR, (-x.shape[-1]) % FACTOR
    if not (ph or pw):
        return x
    return torch.nn.functional.pad(x, [0, pw, 0, ph], mode="replicate")


def scale_latents(y: Tensor) -> Tensor:
    """Raw latents -> [0, 1] (clamped): ``y / (2 * 3) + 0.5``."""
    return y.div(2 * LATENT_MAGNITUDE).add(LATENT_SHIFT).clamp(0, 1)


def unscale_latents(s: Tensor) -> Tensor:
    """[0, 1] -> raw latents: ``(s - 0.5) * 6``."""
    return s.sub(LATENT_SHIFT).mul(2 * LATENT_MAGNITUDE)


def quantize_latents(y: Tensor) -> np.ndarray:
    """Latents ``[C, h, w]`` -> uint8 ``round(255 * scale_latents(y))`` (TAESD's 8-bit storage)."""
    return scale_latents(y).mul(255).round().to(torch.uint8).cpu().numpy()


def dequantize_latents(q: np.ndarray) -> Tensor:
    """uint8 ``[C, h, w]`` -> float32 latents."""
    return unscale_latents(torch.from_numpy(np.ascontiguousarray(q)).to(torch.float32).div(255))


def _images_to_tensor(images: np.ndarray, device) -> Tensor:
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3:
        raise InputError(f"TAEF2 takes uint8 images [N, H, W, 3], got {arr.dtype} {arr.shape}")
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr)
    return torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float().div_(255)


def taef2_encode(images: np.ndarray, *, weights_dir: str | os.PathLike | None = None, batch_size: int = 16,
                 device: str = "cpu") -> np.ndarray:
    """uint8 images ``[N, H, W, 3]`` -> float32 TAEF2 latents ``[N, 32, ceil(H/8), ceil(W/8)]``.

    Raw latents (not scaled to [0, 1]; typically within about +-3), sides replicate-padded to
    multiples of 8. Models are loaded once per weights folder and device."""
    enc, _ = _cached(str(Path(weights_dir) if weights_dir is not None else default_dir()), str(device))
    x_all = np.asarray(images)
    _images_to_tensor(x_all[:0], device)  # shape/dtype check, also for N = 0
    out = []
    with torch.inference_mode():
        for i in range(0, len(x_all), max(1, batch_size)):
            out.append(enc(pad(_images_to_tensor(x_all[i : i + batch_size], device))).float().cpu().numpy())
    if not out:
        h, w = (-(-s // FACTOR) for s in x_all.shape[1:3])
        return np.zeros((0, LATENT_CHANNELS, h, w), np.float32)
    return np.concatenate(out)


# --------------------------------------------------------------------------- 8-bit mosaic
def mosaic(q: np.ndarray) -> np.ndarray:
    """``[32, h, w]`` -> ``[4h, 8w]``: channel ``c`` at tile row ``c // 8``, column ``c % 8``."""
    rows, cols = MOSAIC
    c, h, w = q.shape
    if c != rows * cols:
        raise InputError(f"a mosaic takes {rows * cols} channels, got {c}")
    return np.ascontiguousarray(q.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w))


def unmosaic(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse of :func:`mosaic`: ``[4h, 8w]`` -> ``[32, h, w]``."""
    rows, cols = MOSAIC
    return np.ascontiguousarray(m.reshape(rows, h, cols, w).transpose(0, 2, 1, 3).reshape(rows * cols, h, w))


def mosaic_bytes(q: np.ndarray, fmt: str = "png8") -> bytes:
    """uint8 latents ``[32, h, w]`` -> a lossless grayscale PNG (``optimize=True``) or lossless WebP
    (``method=6``; stored as RGB with equal channels, which lossless WebP codes almost for free)."""
    from PIL import Image

    img = Image.fromarray(mosaic(q), mode="L")
    buf = io.BytesIO()
    if fmt == "png8":
        img.save(buf, format="PNG", optimize=True)
    elif fmt == "webp8":
        img.save(buf, format="WEBP", lossless=True, quality=100, method=6, exact=True)
    else:
        raise InputError(f"unknown 8-bit latent format {fmt!r}")
    return buf.getvalue()


def mosaic_from_bytes(data: bytes, h: int, w: int, fmt: str = "png8") -> np.ndarray:
    """Bytes of :func:`mosaic_bytes` -> uint8 ``[32, h, w]``; the image size is checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    rows, cols = MOSAIC
    try:
        with Image.open(io.BytesIO(data), formats=["PNG" if fmt == "png8" else "WEBP"]) as im:
            if im.size != (cols * w, rows * h):
                raise HeaderError(f"latent mosaic is {im.size[0]}x{im.size[1]}, expected {cols * w}x{rows * h}")
            im.load()
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise TruncatedError(f"latent mosaic does not decode: {e}") from None
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    return unmosaic(arr, h, w)


# --------------------------------------------------------------------------- the baseline
class TAEF2Codec:
    """TAEF2 behind the evaluate codec interface, one fixed rate point (the format name).

    ``variant``: ``png8`` (8-bit latents, lossless PNG mosaic), ``webp8`` (the same as lossless
    WebP) or ``float32`` (raw float latents, no entropy coding: the autoencoder's own quality).
    bpp = 8 * len(bytes) / pixels with bytes = 16-byte header + payload + CRC32. Grayscale ``[H, W]``
    images are coded as RGB and decoded to the channel mean.
    """

    kind = "taef2"
    reduction = REDUCTION

    def __init__(self, variant: str = "png8", weights_dir: str | os.PathLike | None = None, *,
                 name: str | None = None, device: str = "cpu") -> None:
        if variant not in FORMATS:
            raise InputError(f"unknown TAEF2 variant {variant!r}; known: {', '.join(FORMATS)}")
        ok, why = available(weights_dir)
        if not ok:
            raise WeightsError(why)
        self.variant = variant
        self.weights_dir = str(Path(weights_dir) if weights_dir is not None else default_dir())
        self.device = device
        self.name = name or f"taef2-{variant}"
        self.default_point = variant
        self._models: tuple[nn.Sequential, nn.Sequential] | None = None
        what = {"float32": "float32 latents, raw (no entropy coding)",
                "png8": "8-bit latents (TAESD scale_latents), lossless PNG mosaic",
                "webp8": "8-bit latents (TAESD scale_latents), lossless WebP mosaic"}[variant]
        self.description = (f"TAEF2 (FLUX.2 tiny autoencoder, madebyollin/taesd, MIT): 32 latent channels at 1/8 "
                            f"resolution, dimensionality reduction {REDUCTION:g}x; {what}; "
                            "16-byte header + 4-byte CRC32; replicate-padded to multiples of 8")

    @property
    def models(self) -> tuple[nn.Sequential, nn.Sequential]:
        if self._models is None:
            self._models = load_taef2(self.weights_dir, device=self.device)
        return self._models

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_models"] = None  # reload from the weights folder in the other process
        return state

    def spec(self) -> dict[str, Any]:
        """What rebuilds this codec in another process (the benchmark's memory child)."""
        return {"variant": self.variant, "weights_dir": self.weights_dir, "name": self.name}

    def points(self) -> list[str]:
        return [self.variant]

    # --- latents
    def latent(self, img: np.ndarray) -> Tensor:
        """uint8 ``[H, W, 3]`` -> float latents ``[1, 32, ceil(H/8), ceil(W/8)]`` (no storage)."""
        enc, _ = self.models
        with torch.inference_mode():
            return enc(pad(_images_to_tensor(np.asarray(img)[None], self.device)))

    def count_parameters(self) -> dict[str, int]:
        enc, dec = self.models
        return {"encoder": sum(p.numel() for p in enc.parameters()),
                "decoder": sum(p.numel() for p in dec.parameters())}

    def macs_per_pixel(self) -> dict[str, float]:
        """Multiply-accumulates per image pixel (convolutions; torch's FLOP counter / 2)."""
        from torch.utils.flop_counter import FlopCounterMode

        enc, dec = self.models
        x = torch.zeros(1, 3, 64, 64, device=self.device)
        with torch.inference_mode():
            with FlopCounterMode(display=False) as fe:
                y = enc(x)
            with FlopCounterMode(display=False) as fd:
                dec(y)
        return {"encoder": fe.get_total_flops() / 2 / 64**2, "decoder": fd.get_total_flops() / 2 / 64**2}

    # --- bytes
    def compress(self, img: np.ndarray, param: Any = None) -> bytes:
        if param is not None and param != self.variant:
            raise InputError(f"{self.name} has one point, {self.variant!r}; got {param!r}")
        arr = np.asarray(img)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
            raise InputError(f"TAEF2 codes uint8 [H, W, 3] or [H, W] images, got {arr.dtype} {arr.shape}")
        channels = 1 if arr.ndim == 2 else 3
        if channels == 1:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        h, w = arr.shape[:2]
        if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
            raise InputError(f"image size {w}x{h} is outside 1..{MAX_SIDE}")
        y = self.latent(arr)[0]
        if self.variant == "float32":
            payload = y.float().cpu().numpy().astype("<f4").tobytes()
        else:
            payload = mosaic_bytes(quantize_latents(y), self.variant)
        body = _HEADER.pack(MAGIC, VERSION, FORMATS.index(self.variant), channels, 0, h, w) + payload
        return body + struct.pack("<I", zlib.crc32(body))

    def decompress(self, data: bytes) -> np.ndarray:
        h, w, channels, fmt, payload = read_header(data)
        lh, lw = -(-h // FACTOR), -(-w // FACTOR)
        if fmt == "float32":
            n = LATENT_CHANNELS * lh * lw * 4
            if len(payload) != n:
                raise TruncatedError(f"float32 latents: {len(payload)} bytes, expected {n}")
            y = torch.from_numpy(np.frombuffer(payload, "<f4").astype(np.float32).reshape(LATENT_CHANNELS, lh, lw))
        else:
            y = dequantize_latents(mosaic_from_bytes(payload, lh, lw, fmt))
        _, dec = self.models
        with torch.inference_mode():
            x_hat = dec(y[None].to(self.device))[0, :, :h, :w].clamp(0, 1)
        out = x_hat.mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        if channels == 1:
            out = np.round(out.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return np.ascontiguousarray(out)


def read_header(data: bytes) -> tuple[int, int, int, str, bytes]:
    """``(height, width, image channels, format, payload)`` of a TAEF2 baseline file."""
    if len(data) < _HEADER.size + 4:
        raise TruncatedError(f"TAEF2 file of {len(data)} bytes is shorter than its header and checksum")
    magic, version, fmt, channels, _, h, w = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BadMagicError(f"not a TAEF2 baseline file (magic {magic!r})")
    if version != VERSION:
        raise UnsupportedVersionError(f"TAEF2 baseline file version {version} (this build reads {VERSION})")
    if fmt >= len(FORMATS) or channels not in (1, 3):
        raise HeaderError(f"TAEF2 header: format {fmt}, channels {channels}")
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise LimitError(f"TAEF2 header: image size {w}x{h} outside 1..{MAX_SIDE}")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if crc != zlib.crc32(memoryview(data)[:-4]):
        raise ChecksumError("TAEF2 file: CRC32 mismatch (truncated or corrupted)")
    return h, w, channels, FORMATS[fmt], bytes(data[_HEADER.size : -4])


def make_taef2_codecs(names: list[str], weights_dir: str | os.PathLike | None = None) -> list[TAEF2Codec]:
    """Codecs for ``taef2-<variant>`` names."""
    return [TAEF2Codec(n.removeprefix("taef2-"), weights_dir) for n in names]


__all__ = [
    "TAEF2Codec", "build_encoder", "build_decoder", "load_taef2", "load_state_dict", "taef2_encode",
    "scale_latents", "unscale_latents", "quantize_latents", "dequantize_latents", "mosaic", "unmosaic",
    "mosaic_bytes", "mosaic_from_bytes", "read_header", "available", "default_dir", "REDUCTION",
]
