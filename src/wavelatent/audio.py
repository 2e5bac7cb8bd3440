"""Audio: sample arrays and audio files <-> .wlt bytes, in chunks (bounded memory, no seams).

Pipeline (``frames`` samples per channel at ``sample_rate``)::

    samples [frames, channels] -> x gain -> resample to the preset's rate (polyphase, streamed)
      -> channel groups of the preset's channel count -> latents, one chunk of T positions at a time
      -> rANS per chunk -> container (modality "audio")

The latent sequence of a file covers block positions ``-margin .. M + margin`` (``M =
ceil(frames' / block)``) of the signal extended symmetrically beyond both ends; the margin
(the synthesis filters' reach) is coded too, so the first and last samples decode with their
real context. Each chunk is computed from the samples it depends on plus the wavelet analysis
halo, and decoded from the latents it depends on plus the decoder's receptive field and the
synthesis halo, so chunked and whole-file coding agree up to float rounding: chunk boundaries
are inaudible by construction (tests check > 50 dB SNR between the two). Memory is bounded by
one chunk of signal plus the compressed bytes. Chunks are independent rANS streams, stored
back to back in the ``latent`` stream with their byte lengths (u32) in the ``chunks`` stream.

Files with more channels than the preset codes are split into groups of the preset's channel
count ((L,R), (C,LFE), (Ls,Rs) for 5.1 with a stereo preset); an incomplete last group repeats
its last channel, and mono through a stereo preset is coded as L = R. The header records the
groups, the original rate, channel count, length, sample type and the gain applied before coding
(1, or 1/peak for float sources that exceed full scale).
"""
from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np
import torch

from . import container
from .bitstream import LatentCoder
from .codec import WaveletCodec
from .errors import HeaderError, InputError, LimitError, UnsupportedAudioError
from .headers import audio_header, check_entropy, checked_codec, field
from .models import pick_codec
from .io.audio import (
    BLOCK_FRAMES,
    DEFAULT_MAX_SAMPLES,
    MAX_CHANNELS,
    MAX_FRAMES,
    MAX_RATE,
    AudioReader,
    AudioWriter,
    resample_blocks,
    resampled_length,
)

MODALITY = "audio"
CHUNK_SAMPLES = 1 << 18  # frames per chunk at the preset's rate (6 s at 44.1 kHz), divided among channel groups
MAX_CHUNK_SAMPLES = 1 << 22  # most frames x channel groups in one chunk (bounds the decoder's memory)
LOOKAHEAD_SYMBOLS = 1 << 20  # symbols entropy-decoded ahead of the decoder at most (4 MiB of int32)
MONO_PRESET = "audio-mono-2x"
STEREO_PRESET = "audio-stereo-5x"
_SUBTYPE_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}
_ARRAY_SUBTYPES = {"float32": "FLOAT", "float64": "DOUBLE", "int16": "PCM_16", "int32": "PCM_32", "uint8": "PCM_U8"}


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Geometry:
    """How far outputs reach, in latent positions (one position = ``block`` samples)."""

    block: int
    analysis: int  # a latent depends on the sample blocks within +-analysis
    synthesis: int  # an output block depends on the coefficient positions within +-synthesis
    decoder: int  # a decoded coefficient depends on the latents within +-decoder

    @property
    def margin(self) -> int:
        """Latent positions coded beyond each end of the signal."""
        return self.synthesis


def geometry(codec: WaveletCodec) -> Geometry:
    from .transforms.wavelets import analysis_halo, synthesis_halo

    levels = codec.config.levels
    radius = 0
    for module in codec.decoder.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
            radius += (module.kernel_size[0] - 1) * module.dilation[0] // 2
    return Geometry(codec.config.block, max(analysis_halo(levels)), max(synthesis_halo(levels)), radius)


def channel_groups(channels: int, per_group: int) -> list[list[int]]:
    """Input channels per coded group: consecutive runs of ``per_group``, the last one padded by
    repeating its last channel (mono through a stereo preset: ``[[0, 0]]``)."""
    groups = []
    for start in range(0, channels, per_group):
        g = list(range(start, min(start + per_group, channels)))
        groups.append(g + [g[-1]] * (per_group - len(g)))
    return groups


def choose_audio_preset(rate: int, channels: int) -> str:
    """The default preset: the mono speech preset for mono audio at up to 16 kHz when it ships,
    else the 5x stereo preset."""
    from .weights import has_shipped_weights

    if channels == 1 and rate <= 16000 and has_shipped_weights(MONO_PRESET):
        return MONO_PRESET
    return STEREO_PRESET


def _audio_codec(codec: Any, rate: int, channels: int) -> WaveletCodec:
    from .models import resolve_codec

    model = resolve_codec(codec if codec is not None else choose_audio_preset(rate, channels))
    if model.config.modality != MODALITY:
        raise InputError(f"preset {model.config.name} codes {model.config.modality}, not audio")
    return model


# --------------------------------------------------------------------------- sources
class _Extended:
    """Random access to a stream of ``frames`` frames, extended symmetrically beyond both ends
    (``x[-1 - k] = x[k]``, ``x[N + k] = x[N - 1 - k]``, repeated for short signals). Requests move
    forward; frames more than ``keep`` before the latest request are dropped."""

    def __init__(self, blocks: Iterable[np.ndarray], frames: int, keep: int) -> None:
        self._it = iter(blocks)
        self.frames, self.keep = frames, keep
        self._buf: np.ndarray | None = None
        self._start = 0

    def _fill(self, hi: int) -> None:
        parts = [] if self._buf is None else [self._buf]
        end = self._start + (0 if self._buf is None else len(self._buf))
        while end < hi:
            block = next(self._it, None)
            if block is None:
                raise InputError(f"the audio stream ended after {end} of {self.frames} frames")
            parts.append(np.asarray(block, dtype=np.float32))
            end += len(parts[-1])
        if len(parts) > 1 or self._buf is None:
            self._buf = np.concatenate(parts, axis=0)

    def _reflected(self, a: int, b: int) -> np.ndarray:
        """Frame indices of extended positions ``a .. b - 1``."""
        n = self.frames
        idx = np.mod(np.arange(a, b), 2 * n)
        return np.where(idx >= n, 2 * n - 1 - idx, idx)

    def get(self, a: int, b: int) -> np.ndarray:
        n = self.frames
        # the part inside the signal is a slice; only the positions beyond its ends need an index
        m0 = min(max(a, 0), b)
        m1 = max(min(b, n), m0)
        left, right = self._reflected(a, m0), self._reflected(m1, b)
        ends = [int(v) for part in (left, right) if len(part) for v in (part.min(), part.max())]
        lo, hi = min([m0] * (m1 > m0) + ends), max([m1] * (m1 > m0) + [e + 1 for e in ends])
        self._fill(hi)
        if lo < self._start:  # pragma: no cover - the geometry keeps enough
            raise RuntimeError(f"audio frame {lo} was dropped (kept from {self._start})")
        middle = self._buf[m0 - self._start : m1 - self._start]
        if not len(left) and not len(right):
            out = middle
        else:
            out = np.concatenate([self._buf[left - self._start], middle, self._buf[right - self._start]], axis=0)
        cut = min(lo, a) - self.keep - self._start
        if cut > BLOCK_FRAMES:
            self._buf = self._buf[cut:]
            self._start += cut
        return out


def _as_float(samples: np.ndarray) -> tuple[np.ndarray, str]:
    """``[frames]`` or ``[frames, channels]`` int/float samples -> float32 ``[frames, channels]``, subtype."""
    if not isinstance(samples, np.ndarray):
        raise InputError(f"expected a numpy array of samples, got {type(samples).__name__}")
    subtype = _ARRAY_SUBTYPES.get(samples.dtype.name)
    if subtype is None:
        raise UnsupportedAudioError(f"audio samples must be one of {sorted(_ARRAY_SUBTYPES)}, got {samples.dtype}")
    x = samples[:, None] if samples.ndim == 1 else samples
    if x.ndim != 2 or x.shape[0] < 1 or not 1 <= x.shape[1] <= MAX_CHANNELS:
        raise InputError(f"audio samples must be [frames, channels] with frames >= 1 and 1..{MAX_CHANNELS} "
                         f"channels, got shape {samples.shape}")
    if x.dtype == np.uint8:
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif x.dtype.kind == "i":
        x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    else:
        if not np.isfinite(x).all():
            raise InputError("audio samples contain NaN or infinite values")
        x = x.astype(np.float32, copy=False)
    return x, subtype


# --------------------------------------------------------------------------- compress
def compress_audio(
    samples: np.ndarray,
    sample_rate: int,
    codec: str | os.PathLike | WaveletCodec | None = None,
    quality: int | None = None,
    *,
    chunk_frames: int | None = None,
    preset: str | os.PathLike | WaveletCodec | None = None,
    entropy: str | None = None,
) -> bytes:
    """Compress samples ``[frames, channels]`` (or ``[frames]``; float in [-1, 1], or int16 /
    int32 / uint8 PCM) at ``sample_rate`` Hz to .wlt bytes.

    ``codec``: a preset name, weights file or loaded codec; None picks by rate and channels
    (``preset=`` is an old alias).
    ``quality``: 1 (smallest) .. the preset's number of qualities; None = preset default.
    ``chunk_frames``: frames per chunk at the preset's rate (memory vs a little rate); default
    :data:`CHUNK_SAMPLES` divided by the number of channel groups.
    ``entropy``: another entropy model the codec holds (e.g. ``"none"``); None = the codec's own.
    """
    codec = pick_codec(codec, preset)
    x, subtype = _as_float(samples)
    rate = _check_rate(sample_rate)
    peak = float(np.abs(x).max())
    gain = 1.0 / peak if peak > 1.0 else 1.0
    blocks = (x[i : i + BLOCK_FRAMES] for i in range(0, len(x), BLOCK_FRAMES))
    return _compress(blocks, rate, x.shape[1], len(x), subtype, "array", gain, _audio_codec(codec, rate, x.shape[1]),
                     quality, chunk_frames, entropy)


def compress_audio_file(
    source: str | os.PathLike | bytes | BinaryIO,
    codec: str | os.PathLike | WaveletCodec | None = None,
    quality: int | None = None,
    *,
    chunk_frames: int | None = None,
    preset: str | os.PathLike | WaveletCodec | None = None,
    entropy: str | None = None,
) -> bytes:
    """Compress an audio file (path, ``-`` for stdin, bytes) to .wlt bytes, reading it in blocks.
    ``codec`` as for :func:`compress_audio` (``preset=`` is an old alias)."""
    codec = pick_codec(codec, preset)
    with AudioReader(source) as reader:
        info = reader.info
        gain = 1.0
        if info.subtype in ("FLOAT", "DOUBLE") or info.format in ("OGG", "MP3"):
            peak = reader.peak()
            gain = 1.0 / peak if peak > 1.0 else 1.0
        model = _audio_codec(codec, info.sample_rate, info.channels)
        return _compress(reader.blocks(), info.sample_rate, info.channels, info.frames, info.subtype, info.format,
                         gain, model, quality, chunk_frames, entropy)


def _check_rate(rate: Any) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 1 <= rate <= MAX_RATE:
        raise InputError(f"sample rate must be an integer in 1..{MAX_RATE} Hz, got {rate!r}")
    return int(rate)


def _chunk_positions(chunk_frames: int | None, block: int, groups: int) -> int:
    """Latent positions per chunk: ``chunk_frames`` (default CHUNK_SAMPLES / groups) in whole blocks."""
    frames = max(1, CHUNK_SAMPLES // groups) if chunk_frames is None else chunk_frames
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames * groups <= MAX_CHUNK_SAMPLES:
        raise InputError(f"chunk_frames x {groups} channel group(s) must be in 1..{MAX_CHUNK_SAMPLES}, "
                         f"got {chunk_frames!r}")
    return max(1, frames // block)


def _compress(blocks: Iterable[np.ndarray], rate: int, channels: int, frames: int, subtype: str, fmt: str,
              gain: float, codec: WaveletCodec, quality: int | None, chunk_frames: int | None,
              entropy: str | None = None) -> bytes:
    cfg = codec.config
    quality = cfg.check_quality(quality)
    if frames > MAX_FRAMES:
        raise LimitError(f"{frames} frames exceed the limit of {MAX_FRAMES}")
    geo = geometry(codec)
    s, E, H = geo.block, geo.margin, geo.analysis + 1
    coded_frames = resampled_length(frames, rate, cfg.sample_rate)
    M = math.ceil(coded_frames / s)
    groups = channel_groups(channels, cfg.channels)
    G, K = len(groups), cfg.latent_channels
    T = _chunk_positions(chunk_frames, s, G)
    order = np.array([c for g in groups for c in g])
    if gain != 1.0:
        blocks = (b * np.float32(gain) for b in blocks)
    signal = _Extended(resample_blocks(blocks, rate, cfg.sample_rate, frames), coded_frames, keep=2 * (E + H + 1) * s)
    device = next(codec.parameters()).device
    coder = LatentCoder(codec, quality, entropy=entropy)
    blobs: list[bytes] = []
    for p0 in range(-E, M + E, T):
        p1 = min(p0 + T, M + E)
        x = signal.get((p0 - H) * s, (p1 + H) * s)[:, order]  # [L, G * C]
        xt = torch.from_numpy(np.ascontiguousarray(x.T)).view(G, cfg.channels, -1).to(device)
        with torch.inference_mode():
            q = codec.quantize(codec.encode(xt)[..., H : H + p1 - p0], quality)  # [G, K, n]
        blobs.append(coder.compress(q.transpose(0, 1).reshape(K, -1)))  # groups side by side: [K, G * n]
    header = audio_header(
        codec, quality, entropy=coder.entropy,
        sample_rate=rate,
        channels=channels,
        frames=frames,
        subtype=subtype,
        source_format=fmt,
        gain=gain,
        chunk=T,
    )
    lengths = np.array([len(b) for b in blobs], dtype="<u4").tobytes()
    return container.pack(header, {"latent": b"".join(blobs), "chunks": lengths})


# --------------------------------------------------------------------------- decompress
@dataclass(frozen=True)
class _Layout:
    header: dict
    streams: dict
    codec: WaveletCodec
    quality: int
    rate: int
    channels: int
    frames: int
    gain: float
    coded_frames: int
    groups: list
    margin: int
    chunk: int
    positions: int  # M + 2 * margin
    offsets: list  # byte offset of each chunk in the latent stream (and the end)
    entropy: str = "none"  # the entropy model the file names


def _layout(data: bytes, codec, limits: container.Limits) -> _Layout:
    c = container.unpack(data, limits=limits)
    h = c.header
    if h.get("modality") != MODALITY:
        raise HeaderError(f"not an audio file (modality {h.get('modality')!r:.40})")
    model = checked_codec(h, codec)
    cfg = model.config
    if cfg.modality != MODALITY:
        raise HeaderError(f"an audio file names {cfg.name}, which codes {cfg.modality}")
    quality = field(h, "quality", int, lambda v: 1 <= v <= cfg.qualities)
    rate = field(h, "sample_rate", int, lambda v: 1 <= v <= MAX_RATE)
    channels = field(h, "channels", int, lambda v: 1 <= v <= MAX_CHANNELS)
    frames = field(h, "frames", int, lambda v: 1 <= v <= MAX_FRAMES)
    gain = h.get("gain")
    if not isinstance(gain, (int, float)) or isinstance(gain, bool) or not (0 < gain <= 1):
        raise HeaderError(f"header field 'gain' is missing or invalid: {gain!r:.40}")
    field(h, "subtype", str)
    # fields that follow from the rest and the codec: files since v0.2 leave them out, older files
    # hold them, and where present they must agree
    if h.get("coded_rate", cfg.sample_rate) != cfg.sample_rate:
        raise HeaderError(f"coded rate {h.get('coded_rate')!r:.40} is not {cfg.name}'s {cfg.sample_rate} Hz")
    coded_frames = resampled_length(frames, rate, cfg.sample_rate)
    if h.get("coded_frames", coded_frames) != coded_frames:
        raise HeaderError(f"coded_frames {h.get('coded_frames')!r:.40} does not follow from {frames} frames")
    groups = channel_groups(channels, cfg.channels)
    if h.get("groups", groups) != groups:
        raise HeaderError(f"channel groups {h.get('groups')!r:.80} do not fit {channels} channels and {cfg.name}")
    geo = geometry(model)
    if h.get("block", geo.block) != geo.block or h.get("margin", geo.margin) != geo.margin:
        raise HeaderError("block or margin do not fit the codec")
    T = field(h, "chunk", int, lambda v: 1 <= v * geo.block * len(groups) <= MAX_CHUNK_SAMPLES)
    M = math.ceil(coded_frames / geo.block)
    P = M + 2 * geo.margin
    if h.get("latent_shape", [len(groups), cfg.latent_channels, P]) != [len(groups), cfg.latent_channels, P]:
        raise HeaderError(f"latent shape {h.get('latent_shape')!r:.80} does not fit the file")
    entropy = check_entropy(h, model)
    if set(c.streams) != {"latent", "chunks"}:
        raise HeaderError(f"an audio file has streams 'latent' and 'chunks', not {sorted(c.streams)}")
    count = math.ceil(P / T)
    if len(c.streams["chunks"]) != 4 * count:
        raise HeaderError(f"the chunk table holds {len(c.streams['chunks']) // 4} entries, not {count}")
    lengths = np.frombuffer(c.streams["chunks"], dtype="<u4").astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    if offsets[-1] != len(c.streams["latent"]):
        raise HeaderError(f"the chunks hold {offsets[-1]} bytes; the latent stream has {len(c.streams['latent'])}")
    return _Layout(h, c.streams, model, quality, rate, channels, frames, float(gain), coded_frames, groups,
                   geo.margin, T, P, offsets, entropy)


def noise_seed(header: dict) -> int:
    """The 32-bit noise-filling seed of an audio file: a CRC-32 of header fields every audio file
    holds (weights hash, quality, frames, rate, channels), so it never depends on the chunking and
    files written before noise filling get one too."""
    key = ":".join(str(header.get(k)) for k in ("weights_sha256", "quality", "frames", "sample_rate", "channels"))
    return zlib.crc32(key.encode())


def _decoded_blocks(lay: _Layout, chunk_frames: int | None = None, noise_fill: bool = True) -> Iterator[np.ndarray]:
    """Decoded float32 blocks ``[n, channels]`` at the original rate, ``lay.frames`` in total.
    ``noise_fill``: latents that quantized to zero decode as noise (:mod:`wavelatent.noise_fill`), keyed by
    channel group, latent channel and position in the file."""
    model, cfg = lay.codec, lay.codec.config
    geo = geometry(model)
    s, E, Hs, R = geo.block, geo.margin, geo.synthesis, geo.decoder
    G, K, T, P = len(lay.groups), cfg.latent_channels, lay.chunk, lay.positions
    M = P - 2 * E
    coder = LatentCoder(model, lay.quality, entropy=lay.entropy)
    # decode in steps of the default chunk (or chunk_frames), whatever the file's entropy chunks are: a
    # file cut into 1-position chunks must not make the decoder run once per position
    step = _chunk_positions(chunk_frames, s, G)
    latent = lay.streams["latent"]
    seed = noise_seed(lay.header)
    std = model.noise_std(lay.quality) if noise_fill else None
    cache: dict[int, torch.Tensor] = {}
    device = next(model.parameters()).device

    count = len(lay.offsets) - 1
    ahead = max(1, LOOKAHEAD_SYMBOLS // (K * G * T))  # whole chunks decoded together, the memory bounded

    def decode_chunks(indices: list[int]) -> None:
        """Entropy-decode chunks into the cache: the whole-length ones together, with the next ones up
        to :data:`LOOKAHEAD_SYMBOLS` (a file of many chunks, or of very short ones, costs a few batched
        steps, not one decoding per chunk), a short last one alone."""
        missing = [i for i in indices if i not in cache]
        if missing:  # and the next ones (the cache holds only chunks from the first needed on)
            missing += [i for i in range(missing[-1] + 1, min(count, missing[0] + ahead)) if i not in cache]
        full = [i for i in missing if (i + 1) * T <= P]
        if full:
            syms = coder.decompress_many([latent[lay.offsets[i] : lay.offsets[i + 1]] for i in full], (G * T,))
            for i, sym in zip(full, syms):
                cache[i] = torch.from_numpy(sym).view(K, G, T).transpose(0, 1)
        for i in indices:
            if i not in cache:
                n = P - i * T
                sym = coder.decompress(latent[lay.offsets[i] : lay.offsets[i + 1]], (G * n,))
                cache[i] = torch.from_numpy(sym).view(K, G, n).transpose(0, 1)

    def latents(lo: int, hi: int) -> torch.Tensor:  # latent indices (position + E), [G, K, hi - lo]
        first, last = lo // T, (hi - 1) // T
        for i in [i for i in cache if i < first]:
            del cache[i]
        decode_chunks(list(range(first, last + 1)))
        parts = [cache[i][..., max(lo - i * T, 0) : min(hi - i * T, T)] for i in range(first, last + 1)]
        return torch.cat(parts, dim=-1)

    pick = [next(g * cfg.channels + j for g, grp in enumerate(lay.groups) for j, c in enumerate(grp) if c == ch)
            for ch in range(lay.channels)]

    def coded() -> Iterator[np.ndarray]:
        left = lay.coded_frames
        for p0 in range(0, M, step):
            p1 = min(p0 + step, M)
            c0, c1 = p0 - Hs, p1 + Hs
            l0, l1 = max(c0 - R, -E), min(c1 + R, M + E)
            q = latents(l0 + E, l1 + E).contiguous().to(device)
            with torch.inference_mode():
                if noise_fill:
                    y_hat = model.dequantize_filled(q, lay.quality, seed=seed, start=l0 + E, std=std)
                else:
                    y_hat = model.dequantize(q, lay.quality)
                coeffs = model.decoder(y_hat)[..., c0 - l0 : c1 - l0]
                x = model.synthesis(coeffs)[..., Hs * s : (Hs + p1 - p0) * s] + model.signal_offset
            x = x.reshape(G * cfg.channels, -1).T.cpu().numpy()[:left, pick]
            left -= len(x)
            yield np.ascontiguousarray(x, dtype=np.float32)

    blocks: Iterator[np.ndarray] = coded()
    if lay.gain != 1.0:
        blocks = (b / np.float32(lay.gain) for b in blocks)
    left = lay.frames
    for b in resample_blocks(blocks, cfg.sample_rate, lay.rate, lay.coded_frames):
        b = b[:left]
        left -= len(b)
        if len(b):
            yield b
        if left == 0:
            return


def decompress_audio(
    data: bytes,
    codec: str | os.PathLike | WaveletCodec | None = None,
    *,
    chunk_frames: int | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    limits: container.Limits = container.DEFAULT_LIMITS,
    noise_fill: bool = True,
) -> tuple[np.ndarray, int]:
    """.wlt bytes -> (float32 samples ``[frames, channels]``, sample rate), as they went in.

    ``codec``: the weights to decode with; None uses the preset named in the file (its weights
    hash must match). Samples are not clipped (float sources may exceed full scale).
    ``max_samples``: the most frames x channels the header may claim (a tiny file can honestly
    describe hours of silence); :func:`decompress_audio_file` streams and needs no such bound.
    ``noise_fill``: fill latents that quantized to zero with deterministic noise (for listening: no
    spectral holes); False gives the MSE decoder's output (for measuring SNR, learning).
    """
    lay = _layout(data, codec, limits)
    if lay.frames * lay.channels > max_samples:
        raise LimitError(f"audio of {lay.frames} frames x {lay.channels} channels exceeds the limit of "
                         f"{max_samples} samples")
    return np.concatenate(list(_decoded_blocks(lay, chunk_frames, noise_fill)), axis=0), lay.rate


def decompress_audio_file(
    data: bytes,
    path: str | os.PathLike,
    codec: str | os.PathLike | WaveletCodec | None = None,
    *,
    force: bool = False,
    subtype: str | None = None,
    reference: str | os.PathLike | None = None,
    limits: container.Limits = container.DEFAULT_LIMITS,
    noise_fill: bool = True,
) -> dict[str, Any]:
    """Decode .wlt bytes to a WAV/FLAC file (or WAV on stdout for ``-``) block by block.

    The sample format follows the source's (int16 stays int16, int24 stays int24, float stays
    float in WAV; lossy sources become int16) unless ``subtype`` says otherwise. Returns the
    header, plus ``snr`` (dB) of the decoded samples against the ``reference`` audio file if given.
    ``noise_fill`` as for :func:`decompress_audio`.
    """
    lay = _layout(data, codec, limits)
    ref = _Reference(reference, lay) if reference is not None else None
    try:
        with AudioWriter(path, lay.rate, lay.channels, lay.frames, subtype=subtype,
                         source_subtype=lay.header["subtype"], force=force) as out:
            for block in _decoded_blocks(lay, noise_fill=noise_fill):
                out.write(block)
                if ref is not None:
                    ref.add(block)
    finally:
        if ref is not None:
            ref.close()
    result = dict(lay.header)
    if ref is not None:
        result["snr"] = ref.snr()
    return result


class _Reference:
    """Signal and error energy of decoded blocks against a reference file read alongside."""

    def __init__(self, path: str | os.PathLike, lay: _Layout) -> None:
        self._reader = AudioReader(path)
        info = self._reader.info
        if (info.frames, info.channels, info.sample_rate) != (lay.frames, lay.channels, lay.rate):
            self._reader.close()
            raise InputError(f"reference {path} has {info.frames} frames x {info.channels} channels at "
                             f"{info.sample_rate} Hz; the file decodes to {lay.frames} x {lay.channels} at {lay.rate} Hz")
        self._blocks = self._reader.blocks()
        self._buf = np.zeros((0, info.channels), np.float32)
        self.signal = self.error = 0.0

    def add(self, block: np.ndarray) -> None:
        while len(self._buf) < len(block):
            self._buf = np.concatenate([self._buf, next(self._blocks)], axis=0)
        ref, self._buf = self._buf[: len(block)].astype(np.float64), self._buf[len(block) :]
        self.signal += float(np.sum(ref**2))
        self.error += float(np.sum((ref - block) ** 2))

    def snr(self) -> float:
        return snr_db(self.signal, self.error)

    def close(self) -> None:
        self._reader.close()


def snr_db(signal: float, error: float) -> float:
    """``10 log10(signal / error)`` from energies (inf for no error)."""
    if error <= 0:
        return math.inf
    return 10 * math.log10(max(signal, 1e-30) / error)


def audio_info(header: dict, file_bytes: int) -> dict[str, Any]:
    """What follows from an audio header: duration, real kbps, ratio to PCM, the channel grouping."""
    info: dict[str, Any] = {}
    rate, frames, channels = header.get("sample_rate"), header.get("frames"), header.get("channels")
    limits = (MAX_RATE, MAX_FRAMES, MAX_CHANNELS)  # larger ints overflow float division
    if all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= m
           for v, m in zip((rate, frames, channels), limits)):
        seconds = frames / rate
        info["duration_s"] = seconds
        info["kbps"] = 8 * file_bytes / seconds / 1000
        bits = _SUBTYPE_BITS.get(header.get("subtype"), 16)
        info["compression_ratio"] = frames * channels * bits / 8 / file_bytes
    groups, preset = header.get("groups"), header.get("preset")
    if groups is None and isinstance(channels, int) and 0 < channels <= MAX_CHANNELS:  # newer files: derived
        from .registry import get_config, list_presets

        if isinstance(preset, str) and preset in list_presets() and get_config(preset).modality == MODALITY:
            groups = channel_groups(channels, get_config(preset).channels)
            info["groups"] = groups
    if isinstance(groups, list) and groups and all(isinstance(g, list) for g in groups):
        info["coding"] = (f"{len(groups)} group(s) of {len(groups[0])} channel(s) with {preset}: "
                          + " ".join("(" + ",".join(str(c) for c in g) + ")" for g in groups))
    return info
