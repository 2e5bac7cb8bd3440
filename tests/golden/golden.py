"""What the golden files are and how they are read: shared by ``make_golden.py`` and ``tests/test_golden.py``.

A golden entry is one preset at one quality coding one stored source signal:

* ``{preset}-q{Q}.wlt``          the file ``compress`` wrote (sha256 pinned in ``manifest.json``)
* ``{preset}-q{Q}.symbols.npy``  its entropy-decoded symbols (int32; images ``[K, h, w]``, audio
                                 ``[K, sum over chunks of G * n]``, the order of the ``latent`` stream)
* ``{preset}-q{Q}.decoded.png``  (images, uint8) / ``.decoded.npy`` (audio, int16 at full scale 32768):
                                 what ``decompress`` returned

Symbols and bytes are integers and must match exactly on every machine; decoded samples come from
float arithmetic whose summation order depends on the CPU (oneDNN), so they are compared within
one LSB (``MAX_LSB``) with at most ``MAX_DIFFERING`` of the values off. Re-encoding the source is
float arithmetic too: a symbol may flip only where ``y / step`` lies within ``BOUNDARY`` of a
rounding boundary (x.5), which :func:`recorded_latents` measures from the codec's own float latent.
"""
from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
REGENERATE = "python tests/golden/make_golden.py"
MAX_LSB = 1
MAX_DIFFERING = 0.001  # fraction of decoded values allowed to differ (each by at most MAX_LSB)
BOUNDARY = 1e-4  # |frac(y / step) - 0.5| below this: the symbol may round either way on another CPU
MIN_NONZERO_TEST = 0.05  # the trained test presets code at least this fraction of nonzero symbols

# sources (committed; ``make_golden.py --sources`` cuts them again from ../shared/data)
IMAGE_SOURCE = "source-kodim23.png"  # kodim23.png rows 200:275, cols 300:400 (75x100: neither a multiple of 8)
SPEECH_SOURCE = "source-fsdd.npy"  # fsdd/7_jackson_32.wav, 8 kHz mono int16, the first 4,000 samples (0.5 s)
MUSIC_SOURCE = "source-music.npy"  # music-cc hyde_acoustically_driven_instrumental.mp3, 0.5 s from 60 s, int16 stereo


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(Path(path).read_bytes())


def read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def source_for(preset: str) -> tuple[str, np.ndarray, int | None]:
    """(source file name, signal, sample rate or None) that ``preset`` codes in the goldens.

    Images: the RGB crop (gray presets: its channel 0). Audio: the music excerpt for 44.1 kHz
    presets, the spoken digit for 8 kHz ones (mono through a stereo preset is L = R).
    """
    from wavelatent.registry import get_config

    cfg = get_config(preset)
    if cfg.modality == "image":
        image = read_png(HERE / IMAGE_SOURCE)
        return IMAGE_SOURCE, (image if cfg.channels == 3 else np.ascontiguousarray(image[:, :, 0])), None
    if cfg.sample_rate == 44100:
        return MUSIC_SOURCE, read_npy(HERE / MUSIC_SOURCE), 44100
    return SPEECH_SOURCE, read_npy(HERE / SPEECH_SOURCE), 8000


def qualities(cfg) -> list[int]:
    """Every quality of image presets; the coarsest, middle and finest of audio presets."""
    n = cfg.qualities
    return list(range(1, n + 1)) if cfg.modality == "image" else sorted({1, (n + 1) // 2, n})


def compress(codec, signal: np.ndarray, rate: int | None, quality: int) -> bytes:
    import wavelatent as wl

    if rate is None:
        return wl.compress(signal, codec, quality)
    from wavelatent.audio import compress_audio

    return compress_audio(signal, rate, codec, quality)


def decoded(codec, data: bytes) -> np.ndarray:
    """``decompress`` output as integers: uint8 pixels, or audio as int16 at full scale 32768."""
    import wavelatent as wl
    from wavelatent import container
    from wavelatent.audio import decompress_audio

    if container.read_header(data).get("modality") == "audio":
        out = decompress_audio(data, codec)[0]
        return np.clip(np.round(out.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
    return wl.decompress(data, codec)


def stream_symbols(data: bytes, codec) -> np.ndarray:
    """Unpack a .wlt file and entropy-decode its latent stream with the model the header names: int32
    symbols (integers only)."""
    from wavelatent import container
    from wavelatent.bitstream import LatentCoder

    c = container.unpack(data)
    h = c.header
    coder = LatentCoder(codec, h["quality"], entropy=h.get("entropy", "none"))
    if h["modality"] == "image":
        return coder.decompress(c.streams["latent"], codec.latent_size((h["height"], h["width"])))
    G, K, P = audio_latent_shape(h, codec)
    T = h["chunk"]
    lengths = np.frombuffer(c.streams["chunks"], dtype="<u4").astype(np.int64)
    parts, start = [], 0
    for i, length in enumerate(lengths):
        n = min(T, P - i * T)
        blob = c.streams["latent"][start : start + length]
        start += length
        parts.append(coder.decompress(blob, (G * n,)))
    return np.concatenate(parts, axis=1)


def audio_latent_shape(h: dict, codec) -> tuple[int, int, int]:
    """``(groups, K, positions)`` of an audio file: held by older headers, derived for newer ones."""
    import math

    from wavelatent.audio import channel_groups, geometry
    from wavelatent.io.audio import resampled_length

    if "latent_shape" in h:
        return tuple(h["latent_shape"])
    cfg, geo = codec.config, geometry(codec)
    coded = resampled_length(h["frames"], h["sample_rate"], cfg.sample_rate)
    return len(channel_groups(h["channels"], cfg.channels)), cfg.latent_channels, math.ceil(coded / geo.block) + 2 * geo.margin


def encode_streams(symbols: np.ndarray, data: bytes, codec) -> dict[str, bytes]:
    """Entropy-code ``symbols`` again with the model the header names, laid out as in ``data``
    (header fields only): the streams a file with these symbols must hold."""
    from wavelatent import container
    from wavelatent.bitstream import LatentCoder

    h = container.read_header(data)
    coder = LatentCoder(codec, h["quality"], entropy=h.get("entropy", "none"))
    if h["modality"] == "image":
        return {"latent": coder.compress(symbols)}
    G, K, P = audio_latent_shape(h, codec)
    T = h["chunk"]
    blobs = [coder.compress(symbols[:, G * p0 : G * (p0 + min(T, P - p0))]) for p0 in range(0, P, T)]
    return {"latent": b"".join(blobs), "chunks": np.array([len(b) for b in blobs], dtype="<u4").tobytes()}


@contextmanager
def recorded_latents(codec, out: list):
    """While active, every ``codec.quantize(y, quality)`` appends ``y / step`` (float32, numpy, the
    value that is rounded) to ``out``: images ``[K, h, w]``, audio chunks ``[K, G * n]``, the
    layout of :func:`stream_symbols`."""
    cfg = codec.config
    original = codec.quantize

    def quantize(y, quality=None):
        ratio = (y / cfg.step(quality)).detach().cpu().numpy()
        out.append(ratio[0] if cfg.modality == "image" else ratio.transpose(1, 0, 2).reshape(ratio.shape[1], -1))
        return original(y, quality)

    codec.quantize = quantize  # an instance attribute shadows the method
    try:
        yield out
    finally:
        del codec.quantize


def near_boundary(ratio: np.ndarray, tol: float = BOUNDARY) -> np.ndarray:
    """True where ``ratio`` lies within ``tol`` of x.5, where rounding may go either way."""
    r = ratio.astype(np.float64)
    return np.abs(r - np.floor(r) - 0.5) < tol
