"""Image codecs behind one small interface: Pillow baselines and a wavelatent adapter.

A codec is anything with ``name``, ``description``, ``points()`` (its rate parameters, coarse to
fine), ``compress(img, param) -> bytes`` and ``decompress(data) -> img``. Images are uint8 arrays
``[H, W, 3]`` (or ``[H, W]``); what comes back has the shape that went in. Every codec here can be
pickled, so a process pool can take them; a wavelatent codec loaded from a preset or a weights file
reloads itself in the worker instead of shipping its tensors.

This module imports neither torch nor the wavelatent model code until a wavelatent codec is used.
"""
from __future__ import annotations

import importlib.util
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError, PresetError

DEFAULT_QUALITIES = (2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95)  # low ones so low-rate codecs are bracketed
BASELINES = ("jpeg", "webp", "avif", "jxl")
DEFAULT_BASELINES = ("jpeg", "webp", "avif")  # + jxl where pillow-jxl-plugin is installed
# Optional, never default: TAEF2 (evaluate/taef2.py); "taef2" means png8 + float32.
TAEF2_BASELINES = ("taef2-png8", "taef2-float32", "taef2-webp8")
TAEF2_GROUP = ("taef2-png8", "taef2-float32")


@runtime_checkable
class ImageCodec(Protocol):
    """What :func:`wavelatent.evaluate.evaluate` and :func:`wavelatent.bench.bench` need of a codec."""

    name: str
    description: str

    def points(self) -> list[Any]:
        """Rate parameters (e.g. qualities), from the smallest files to the largest."""
        ...

    def compress(self, img: np.ndarray, param: Any) -> bytes:
        ...

    def decompress(self, data: bytes) -> np.ndarray:
        ...


# --------------------------------------------------------------------------- Pillow baselines
@dataclass(frozen=True)
class PillowCodec:
    """A lossy format Pillow writes, swept over its ``quality`` setting; other options fixed.

    Pillow's defaults are kept unless ``options`` says otherwise: JPEG with 4:2:0 chroma
    subsampling and the standard tables, WebP ``method=4`` (always 4:2:0), AVIF ``speed=6`` and
    4:2:0, JPEG XL (pillow-jxl-plugin) ``effort=7``.
    """

    name: str
    format: str
    qualities: tuple[int, ...] = DEFAULT_QUALITIES
    options: tuple[tuple[str, Any], ...] = ()
    description: str = ""
    kind: str = field(default="baseline", init=False)

    def points(self) -> list[int]:
        return list(self.qualities)

    def compress(self, img: np.ndarray, param: Any) -> bytes:
        from PIL import Image

        _register_plugin(self.format)
        buf = io.BytesIO()
        image = Image.fromarray(np.ascontiguousarray(img))
        image.save(buf, format=self.format, quality=int(param), **dict(self.options))
        return buf.getvalue()

    def decompress(self, data: bytes) -> np.ndarray:
        from PIL import Image

        _register_plugin(self.format)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            return np.asarray(im)


def _register_plugin(fmt: str) -> None:
    if fmt == "JXL":
        import pillow_jxl  # noqa: F401  (registers the JXL plugin with Pillow)


def baseline_available(name: str) -> tuple[bool, str]:
    """Whether a baseline can run in this environment, and why not."""
    from PIL import features

    if name == "jpeg":
        return features.check("jpg"), "Pillow was built without libjpeg"
    if name == "webp":
        return features.check("webp"), "Pillow was built without libwebp"
    if name == "avif":
        return bool(_check_feature("avif")), "Pillow was built without AVIF support (Pillow >= 11.2 with libavif)"
    if name == "jxl":
        return importlib.util.find_spec("pillow_jxl") is not None, "JPEG XL needs `pip install pillow-jxl-plugin`"
    if name == "taef2" or name in TAEF2_BASELINES:
        from .taef2 import available

        return available()
    raise InputError(f"unknown baseline {name!r}; known: {', '.join(BASELINES + ('taef2',) + TAEF2_BASELINES)}")


def _check_feature(name: str) -> bool:
    from PIL import features

    try:
        return bool(features.check(name))
    except Exception:  # an unknown feature name warns and returns False/None on older Pillow
        return False


def _library_version(name: str) -> str:
    import PIL
    from PIL import features

    lib = {"jpeg": "libjpeg_turbo", "webp": "libwebp", "avif": "libavif"}.get(name)
    version = None
    if lib is not None:
        try:
            version = features.version(lib.removeprefix("lib") if name != "jpeg" else lib)
            if version is None and name == "jpeg":
                lib, version = "libjpeg", features.version("jpg")
        except Exception:
            version = None
    if name == "jxl":
        try:
            from importlib.metadata import version as dist_version

            lib, version = "pillow-jxl-plugin", dist_version("pillow-jxl-plugin")
        except Exception:
            version = None
    return f"Pillow {PIL.__version__}" + (f", {lib} {version}" if version else "")


def make_baseline(name: str, qualities: tuple[int, ...] | None = None) -> PillowCodec:
    """One Pillow baseline by name (``jpeg``, ``webp``, ``avif``, ``jxl``); raises if unavailable."""
    ok, why = baseline_available(name)
    if not ok:
        raise InputError(f"baseline {name} is not available: {why}")
    if name == "taef2" or name in TAEF2_BASELINES:  # one fixed point each; qualities do not apply
        from .taef2 import TAEF2Codec

        return TAEF2Codec("png8" if name == "taef2" else name.removeprefix("taef2-"))
    q = tuple(qualities) if qualities else DEFAULT_QUALITIES
    lib = _library_version(name)
    if name == "jpeg":
        return PillowCodec("jpeg", "JPEG", q, description=f"JPEG, 4:2:0 (Pillow default), quality sweep; {lib}")
    if name == "webp":
        return PillowCodec("webp", "WEBP", q, (("method", 4),), f"WebP lossy, method 4, 4:2:0; {lib}")
    if name == "avif":
        return PillowCodec("avif", "AVIF", q, (("speed", 6), ("subsampling", "4:2:0")),
                           f"AVIF, speed 6, 4:2:0; {lib}")
    return PillowCodec("jxl", "JXL", q, (("effort", 7),), f"JPEG XL, effort 7; {lib}")


def make_baselines(
    names: str | list[str] | tuple[str, ...] | None = None,
    qualities: tuple[int, ...] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> list[PillowCodec]:
    """Baselines by name (a list or comma-separated string). ``None``: JPEG, WebP, AVIF where
    Pillow has it, and JPEG XL where pillow-jxl-plugin is installed (the missing ones are skipped
    with a message to ``log``). Names asked for explicitly must be available."""
    if names is None:
        out = []
        for n in BASELINES:
            ok, why = baseline_available(n)
            if ok:
                out.append(make_baseline(n, qualities))
            elif n in DEFAULT_BASELINES and log is not None:
                log(f"skipping baseline {n}: {why}")
        return out
    if isinstance(names, str):
        names = [n for n in (s.strip().lower() for s in names.split(",")) if n]
    seen = []
    for n in names:
        if n not in BASELINES and n != "taef2" and n not in TAEF2_BASELINES:
            raise InputError(f"unknown baseline {n!r}; known: {', '.join(BASELINES + ('taef2',) + TAEF2_BASELINES)}")
        for m in TAEF2_GROUP if n == "taef2" else (n,):
            if m not in seen:
                seen.append(m)
    return [make_baseline(n, qualities) for n in seen]


# --------------------------------------------------------------------------- wavelatent
class WavelatentCodec:
    """``wavelatent.compress`` / ``decompress`` at every quality ``1..config.qualities`` of one codec.

    ``source``: a preset name (its shipped weights), a ``.safetensors`` weights file, or a loaded
    :class:`~wavelatent.codec.WaveletCodec`. Raises :class:`PresetError` for a preset that ships no
    weights. ``name`` defaults to the preset name, or ``<preset>-<file stem>`` for a weights file.
    """

    kind = "wavelatent"

    def __init__(self, source: Any, *, name: str | None = None, qualities: list[int] | None = None) -> None:
        from ..models import load_codec

        if isinstance(source, (str, os.PathLike)):
            self.source: Any = str(source) if isinstance(source, str) else Path(source)
            codec = load_codec(source)
        else:
            self.source = source
            codec = source
        self._codec = codec
        cfg = codec.config
        if cfg.modality != "image":
            raise InputError(f"{cfg.name} codes {cfg.modality}, not images")
        if name is None:
            name = f"wavelatent-{cfg.name}"
            if isinstance(source, os.PathLike) or (isinstance(source, str) and source != cfg.name):
                stem = Path(source).stem if isinstance(source, (str, os.PathLike)) else ""
                if stem and stem != cfg.name:
                    name = f"wavelatent-{cfg.name}-{stem}"
        self.name = name
        self.preset = cfg.name
        self.reduction = cfg.reduction  # signal values per latent value
        self.channels = cfg.channels
        self.default_point = cfg.default_quality
        self._qualities = list(qualities) if qualities else list(range(1, cfg.qualities + 1))
        for q in self._qualities:
            cfg.check_quality(q)
        from ..weights import weights_sha256

        sha = weights_sha256(codec)
        self.description = f"wavelatent {cfg.name}: {cfg.description} weights sha256 {sha[:12]}"

    @property
    def codec(self):
        if self._codec is None:
            from ..models import load_codec

            self._codec = load_codec(self.source)
        return self._codec

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if isinstance(self.source, (str, os.PathLike)):
            state["_codec"] = None  # reload from the file in the other process
        return state

    def points(self) -> list[int]:
        return list(self._qualities)

    def compress(self, img: np.ndarray, param: Any) -> bytes:
        from ..api import compress

        return compress(img, self.codec, int(param))

    def decompress(self, data: bytes) -> np.ndarray:
        from ..api import decompress

        return decompress(data, self.codec)


def load_wavelatent_codecs(
    presets: list[str] | None = None,
    weights: list[str | os.PathLike] | tuple = (),
    *,
    log: Callable[[str], None] | None = None,
    gray: bool = False,
) -> list:
    """Wavelatent codecs of presets and weights files.

    ``presets=None``: every registered RGB image preset (the ``test-*`` ones excepted). Presets
    without shipped weights and presets that do not code RGB images are skipped with a message to
    ``log``; unknown preset names and unreadable weights files raise. ``gray``: 1-channel image
    presets and weights are kept, wrapped in :class:`GrayToRGB` (the classify task: what coding the
    luma alone costs), instead of skipped or refused.
    """
    from ..registry import get_config, list_presets

    if presets is None:
        presets = [p for p in list_presets() if not p.startswith("test-")]
        implicit = True
    else:
        implicit = False
    out: list[WavelatentCodec] = []
    for p in presets:
        cfg = get_config(p)  # unknown -> PresetError
        if cfg.modality != "image" or cfg.channels != 3 and not gray:
            if log is not None and (not implicit or cfg.modality == "image"):
                log(f"skipping preset {p}: it codes {cfg.channels}-channel {cfg.modality}; "
                    "evaluation compares RGB images")
            continue
        try:
            codec = WavelatentCodec(p)
        except PresetError as e:
            if log is not None:
                log(f"skipping preset {p}: {e}")
            continue
        out.append(GrayToRGB(codec) if codec.channels == 1 else codec)
    for w in weights:
        codec = WavelatentCodec(w)
        if codec.channels == 1 and gray:
            codec = GrayToRGB(codec)
        elif codec.channels != 3:
            raise InputError(f"{w}: {codec.preset} codes {codec.channels}-channel images; evaluation compares RGB")
        out.append(codec)
    return out


class GrayToRGB:
    """A grayscale image codec (``[H, W]`` in and out) applied to RGB images: RGB -> BT.601 luma
    (Pillow ``L``), coded by ``inner``, the decoded luma replicated to ``[H, W, 3]``. The colour is
    lost by design; the rate is that of the gray file."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.kind = getattr(inner, "kind", "other")
        self.default_point = getattr(inner, "default_point", None)
        self.reduction = getattr(inner, "reduction", None)
        self.description = (f"{inner.description}; RGB inputs coded as their BT.601 luma, decoded gray replicated "
                            "to RGB")

    def points(self) -> list[Any]:
        return self.inner.points()

    def compress(self, img: np.ndarray, param: Any) -> bytes:
        from PIL import Image

        gray = img if img.ndim == 2 else np.asarray(Image.fromarray(np.ascontiguousarray(img)).convert("L"))
        return self.inner.compress(np.ascontiguousarray(gray), param)

    def decompress(self, data: bytes) -> np.ndarray:
        y = np.asarray(self.inner.decompress(data))
        y = y[:, :, 0] if y.ndim == 3 else y
        return np.ascontiguousarray(np.repeat(y[:, :, None], 3, axis=2))


@dataclass(frozen=True)
class ResizeCodec:
    """Resolution reduction, the no-codec baseline: the image shrunk ``factor`` times (Pillow
    bicubic, antialiased; sides rounded, at least 1 px), stored as lossless PNG after a 4-byte
    header (original height and width, uint16 big-endian); decoded by bicubic upsampling back."""

    name: str = "resize"
    factors: tuple[float, ...] = (8, 6, 4, 3, 2)
    description: str = ("resolution reduction: bicubic downsample by the factor, lossless PNG (+4-byte size "
                        "header), bicubic upsample back")
    kind: str = field(default="no-codec", init=False)

    def points(self) -> list[float]:
        return list(self.factors)

    def compress(self, img: np.ndarray, param: Any) -> bytes:
        from PIL import Image

        from ..io.images import encode_png

        h, w = img.shape[:2]
        if h > 65535 or w > 65535:
            raise InputError(f"resize codec: {w}x{h} is too large for its header")
        f = float(param)
        small = Image.fromarray(np.ascontiguousarray(img)).resize((max(1, round(w / f)), max(1, round(h / f))),
                                                                   Image.BICUBIC)
        return h.to_bytes(2, "big") + w.to_bytes(2, "big") + encode_png(np.asarray(small))

    def decompress(self, data: bytes) -> np.ndarray:
        from PIL import Image

        h, w = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:4], "big")
        with Image.open(io.BytesIO(data[4:])) as im:
            im.load()
            return np.asarray(im.resize((w, h), Image.BICUBIC))


def unique_names(codecs: list) -> None:
    """Make codec names unique (``name``, ``name-2``, ...) and safe as file names, in place."""
    seen: set[str] = set()
    for c in codecs:
        base = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in c.name) or "codec"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen.add(name)
        if name != c.name:
            try:
                c.name = name
            except (AttributeError, TypeError):  # frozen dataclass
                object.__setattr__(c, "name", name)


__all__ = [
    "ImageCodec",
    "PillowCodec",
    "WavelatentCodec",
    "make_baseline",
    "make_baselines",
    "load_wavelatent_codecs",
    "baseline_available",
    "unique_names",
    "GrayToRGB",
    "ResizeCodec",
]
