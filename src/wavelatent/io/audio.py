"""Audio files <-> float32 sample blocks ``[frames, channels]`` (soundfile / libsndfile).

Reading: WAV, FLAC, OGG (Vorbis, Opus), MP3 and the other formats libsndfile decodes. Integer
samples come back scaled by ``2**(bits - 1)`` (int16 / 32768), float samples as they are.
Files are read in blocks of :data:`BLOCK_FRAMES`; lossy sources (OGG, MP3) are decoded once more
up front, because their declared frame count can be an estimate and the codec needs the exact
length before it starts; float sources get the same first pass to find their peak.

Writing: WAV or FLAC by suffix (atomically: temporary file, then rename), or WAV to stdout
(``-``) with its header written first from the known length. Float-to-integer conversion is
done here, rounding and clipping (libsndfile would wrap around on overflow), so an int16 or int24
file read and written back is bit-exact.

Resampling: polyphase (``scipy.signal.resample_poly``), streamed segment by segment with enough
overlap that the result equals resampling the whole signal (see :func:`resample_blocks`).
"""
from __future__ import annotations

import io
import math
import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from ..errors import InputError, OutputError, OutputExistsError, UnreadableAudioError, UnsupportedAudioError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
OUTPUT_SUFFIXES = (".wav", ".flac")
BLOCK_FRAMES = 1 << 16
MAX_CHANNELS = 256
MAX_RATE = 768_000
MAX_FRAMES = 1 << 40
MAX_RESAMPLE_TERM = 1 << 14  # up or down of a resampling ratio in lowest terms (see resample_ratio)
DEFAULT_MAX_SAMPLES = 1 << 28  # frames x channels one in-memory decode may return (1 GiB of float32)
_LOSSY_FORMATS = ("OGG", "MP3")  # frame counts in their headers may be estimates: count them
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III")
# output sample formats: name -> (bits, WAV format tag)
_PCM = {"PCM_U8": (8, 1), "PCM_16": (16, 1), "PCM_24": (24, 1), "PCM_32": (32, 1), "FLOAT": (32, 3),
        "DOUBLE": (64, 3)}
_WAV_LIMIT = (1 << 32) - 1024  # data bytes a plain RIFF/WAV header can describe


def _soundfile():
    try:
        import soundfile
    except ImportError:  # pragma: no cover - an optional dependency
        raise UnsupportedAudioError("audio needs the 'soundfile' package: pip install soundfile") from None
    return soundfile


def is_audio_path(path: str | os.PathLike) -> bool:
    """Whether a file name has one of the audio suffixes this package reads."""
    return Path(str(path)).suffix.lower() in AUDIO_SUFFIXES


def sniff_audio(head: bytes) -> bool:
    """Whether the first bytes of a file look like WAV, FLAC, OGG or MP3."""
    if head[:4] in (b"RIFF", b"RF64", b"fLaC", b"OggS", b"FORM") and (head[:4] != b"RIFF" or head[8:12] == b"WAVE"):
        return True
    if head[:3] == b"ID3":
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0  # MPEG frame


@dataclass(frozen=True)
class AudioInfo:
    """What an audio source is: ``frames`` samples per channel at ``sample_rate`` Hz."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


class AudioReader:
    """An open audio source: ``info`` and float32 blocks ``[n, channels]``.

    ``source``: a path, ``-`` (stdin, read into memory: libsndfile needs to seek), bytes, or a
    seekable binary file object. Use as a context manager.
    """

    def __init__(self, source: str | os.PathLike | bytes | BinaryIO) -> None:
        sf = _soundfile()
        self.name = "<stdin>" if str(source) == "-" else ("<bytes>" if isinstance(source, (bytes, bytearray)) else str(source))
        if isinstance(source, (bytes, bytearray, memoryview)):
            target: object = io.BytesIO(bytes(source))
        elif isinstance(source, (str, os.PathLike)) and str(source) == "-":
            from .files import read_input_bytes

            target = io.BytesIO(read_input_bytes("-"))
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.exists():
                raise InputError(f"{path}: no such file")
            if path.is_dir():
                raise InputError(f"{path}: is a directory")
            target = str(path)
        else:
            target = source
        try:
            self._file = sf.SoundFile(target)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise UnreadableAudioError(f"{self.name}: not a readable audio file ({_reason(e)})") from None
        except OSError as e:
            raise InputError(f"{self.name}: cannot read: {e.strerror or e}") from None
        f = self._file
        try:
            if not 1 <= f.channels <= MAX_CHANNELS:
                raise UnsupportedAudioError(f"{self.name}: {f.channels} channels (at most {MAX_CHANNELS} are supported)")
            if not 1 <= f.samplerate <= MAX_RATE:
                raise UnsupportedAudioError(f"{self.name}: sample rate {f.samplerate} Hz is not in 1..{MAX_RATE}")
            frames = int(f.frames)
            self._peak: float | None = None
            if f.format in _LOSSY_FORMATS or f.subtype in ("FLOAT", "DOUBLE"):
                frames, self._peak = self._scan()
            if frames < 1:
                raise UnreadableAudioError(f"{self.name}: no audio frames")
            if frames > MAX_FRAMES:
                raise UnsupportedAudioError(f"{self.name}: {frames} frames exceed the limit of {MAX_FRAMES}")
        except BaseException:
            f.close()
            raise
        self.info = AudioInfo(int(f.samplerate), int(f.channels), frames, str(f.subtype), str(f.format))

    def _scan(self) -> tuple[int, float]:
        """Decode everything once: the exact frame count and the peak magnitude."""
        frames, peak = 0, 0.0
        for block in self._raw_blocks():
            frames += len(block)
            if len(block):
                peak = max(peak, float(np.max(np.abs(block))))
        if not math.isfinite(peak):
            raise UnreadableAudioError(f"{self.name}: contains NaN or infinite samples")
        return frames, peak

    def _raw_blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        sf = _soundfile()
        try:
            self._file.seek(0)
            while True:
                block = self._file.read(frames, dtype="float32", always_2d=True)
                if not len(block):
                    return
                yield block
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise UnreadableAudioError(f"{self.name}: cannot decode ({_reason(e)})") from None

    def peak(self) -> float:
        """The largest sample magnitude (one pass over the file unless already known)."""
        if self._peak is None:
            self._peak = self._scan()[1]
        return self._peak

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Exactly ``info.frames`` frames, as float32 blocks ``[n <= frames, channels]``."""
        left = self.info.frames
        for block in self._raw_blocks(frames):
            block = block[:left]
            if not np.isfinite(block).all():
                raise UnreadableAudioError(f"{self.name}: contains NaN or infinite samples")
            left -= len(block)
            yield block
            if left == 0:
                return
        if left:
            raise UnreadableAudioError(f"{self.name}: ends {left} frames before the length it declares")

    def read(self) -> np.ndarray:
        """All frames, float32 ``[frames, channels]``."""
        return np.concatenate(list(self.blocks()), axis=0)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[-1][:200]


def read_audio(source: str | os.PathLike | bytes | BinaryIO) -> tuple[np.ndarray, AudioInfo]:
    """A whole audio file: float32 samples ``[frames, channels]`` and its :class:`AudioInfo`."""
    with AudioReader(source) as r:
        return r.read(), r.info


# --------------------------------------------------------------------------- writing
def output_format(path: str | os.PathLike) -> str:
    """``WAV`` or ``FLAC`` for an output path by suffix (``-`` writes WAV to stdout)."""
    if str(path) == "-":
        return "WAV"
    suffix = Path(str(path)).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"{path}: audio is decoded to .wav or .flac, not {suffix or 'a file without suffix'!r}")
    return "FLAC" if suffix == ".flac" else "WAV"


def output_subtype(source_subtype: str, fmt: str) -> str:
    """The sample format to write: the source's where ``fmt`` has it, else the nearest (PCM_16 for
    lossy sources; FLAC has no float, so float sources become PCM_24 there)."""
    if fmt == "FLAC":
        return "PCM_24" if source_subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "PCM_16"
    return source_subtype if source_subtype in _PCM else "PCM_16"


def to_pcm(block: np.ndarray, subtype: str) -> np.ndarray:
    """Float samples -> the array soundfile writes exactly for ``subtype`` (rounded, clipped)."""
    if subtype == "FLOAT":
        return np.ascontiguousarray(block, dtype=np.float32)
    if subtype == "DOUBLE":
        return np.ascontiguousarray(block, dtype=np.float64)
    bits = _PCM[subtype][0]
    x = np.asarray(block, dtype=np.float64)
    top = float(2 ** (bits - 1))
    v = np.clip(np.round(x * top), -top, top - 1)
    if bits == 32:
        return v.astype(np.int32)
    if bits == 24:
        return (v.astype(np.int32) << 8).astype(np.int32)  # soundfile writes the top 24 bits of int32
    if bits == 16:
        return v.astype(np.int16)
    return (v.astype(np.int16) << 8).astype(np.int16)  # PCM_U8 from the top 8 bits of int16


def _wav_header(rate: int, channels: int, frames: int, subtype: str) -> bytes:
    bits, tag = _PCM[subtype]
    size = frames * channels * bits // 8
    if size > _WAV_LIMIT:
        raise OutputError(f"{size} bytes of samples do not fit a WAV stream; write to a .wav or .flac file instead")
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + size + (size & 1)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size))


def _wav_bytes(block: np.ndarray, subtype: str) -> bytes:
    pcm = to_pcm(block, subtype)
    if subtype == "PCM_24":
        raw = (pcm >> 8).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        return raw.tobytes()
    if subtype == "PCM_U8":
        return ((pcm >> 8) + 128).astype(np.uint8).tobytes()
    return pcm.astype(pcm.dtype.newbyteorder("<")).tobytes()


class AudioWriter:
    """Write float32 blocks ``[n, channels]`` to a WAV/FLAC file (atomically) or to stdout (``-``).

    ``frames`` is the total that will be written (needed for the stdout header; checked at the
    end). Use as a context manager: the file appears only when the block exits without error.
    """

    def __init__(self, path: str | os.PathLike, rate: int, channels: int, frames: int, *,
                 subtype: str | None = None, source_subtype: str = "PCM_16", force: bool = False) -> None:
        self.path, self.rate, self.channels, self.frames = str(path), int(rate), int(channels), int(frames)
        self.format = output_format(path)
        self.subtype = subtype or output_subtype(source_subtype, self.format)
        if self.subtype not in _PCM or (self.format == "FLAC" and self.subtype not in ("PCM_16", "PCM_24")):
            raise UnsupportedAudioError(f"cannot write {self.format} samples as {self.subtype}")
        if self.format == "FLAC" and channels > 8:
            raise UnsupportedAudioError(f"FLAC holds at most 8 channels, not {channels}; write a .wav")
        self.written = 0
        self._tmp: str | None = None
        if self.path == "-":
            self._out = sys.stdout.buffer
            self._out.write(_wav_header(self.rate, self.channels, self.frames, self.subtype))
            self._file = None
            return
        dst = Path(self.path)
        if dst.is_dir():
            raise OutputError(f"{dst} is a directory")
        if dst.exists() and not force:
            raise OutputExistsError(f"{dst} exists; use --force to overwrite")
        sf = _soundfile()
        bits = _PCM[self.subtype][0]
        fmt = self.format
        if fmt == "WAV" and self.frames * self.channels * bits // 8 > _WAV_LIMIT:
            fmt = "RF64"
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
            os.close(fd)
            self._file = sf.SoundFile(self._tmp, "w", samplerate=self.rate, channels=self.channels,
                                      subtype=self.subtype, format=fmt)
        except (OSError, sf.LibsndfileError, RuntimeError) as e:
            self._cleanup()
            raise OutputError(f"cannot write {dst}: {_reason(e)}") from None

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise InputError(f"expected blocks [n, {self.channels}], got {block.shape}")
        if self.written + len(block) > self.frames:
            raise InputError(f"more than the {self.frames} frames announced")
        try:
            if self._file is None:
                self._out.write(_wav_bytes(block, self.subtype))
            else:
                self._file.write(to_pcm(block, self.subtype))
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.written += len(block)

    def close(self) -> None:
        """Finish the file (rename into place); raises if fewer frames were written than announced."""
        if self.written != self.frames:
            self.abort()
            raise OutputError(f"{self.path}: {self.written} of {self.frames} frames written")
        if self._file is None:
            size = self.frames * self.channels * _PCM[self.subtype][0] // 8
            if size & 1:
                self._out.write(b"\0")
            self._out.flush()
            return
        try:
            self._file.close()
            os.chmod(self._tmp, 0o666 & ~_umask())
            os.replace(self._tmp, self.path)
        except OSError as e:
            self._cleanup()
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._tmp = None

    def abort(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:
                pass
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_audio(path: str | os.PathLike, samples: np.ndarray, rate: int, *, subtype: str | None = None,
                force: bool = False) -> None:
    """Write float samples ``[frames, channels]`` (or ``[frames]``) to a WAV/FLAC file or stdout."""
    x = np.asarray(samples, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    with AudioWriter(path, rate, x.shape[1], len(x), subtype=subtype or "PCM_16", force=force) as w:
        for i in range(0, len(x), BLOCK_FRAMES):
            w.write(x[i : i + BLOCK_FRAMES])


# --------------------------------------------------------------------------- resampling
def resample_ratio(rate_in: int, rate_out: int) -> tuple[int, int]:
    """``(up, down)`` in lowest terms with ``rate_out / rate_in = up / down``.

    Terms over :data:`MAX_RESAMPLE_TERM` are refused: the filter has ``20 max(up, down)`` taps, so
    a near-coprime pair (767999 Hz to 8 kHz) would take seconds and hundreds of MB per segment.
    Every pair of common rates (8 kHz .. 768 kHz, 44.1 kHz and 48 kHz families) needs at most 2560.
    """
    g = math.gcd(int(rate_in), int(rate_out))
    up, down = int(rate_out) // g, int(rate_in) // g
    if max(up, down) > MAX_RESAMPLE_TERM:
        raise UnsupportedAudioError(f"resampling {rate_in} Hz to {rate_out} Hz ({up}:{down}) is not supported: "
                                    f"the ratio's terms may be at most {MAX_RESAMPLE_TERM}")
    return up, down


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
    """Frames out of ``resample_poly`` for ``frames`` in: ``ceil(frames * up / down)``."""
    up, down = resample_ratio(rate_in, rate_out)
    return -(-int(frames) * up // down)


def resample_blocks(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int, frames: int, *,
                    segment: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Stream ``frames`` input frames (float32 blocks ``[n, C]``) to ``rate_out``.

    Equals ``scipy.signal.resample_poly(x, up, down, axis=0)`` of the whole signal (up to float
    rounding): each segment of a multiple of ``down`` input frames is resampled with ``pad``
    real neighbouring frames (zeros beyond the signal, like resample_poly's own padding) on both
    sides, more than the filter's half-length, and the outputs that depend on the pads are dropped.
    """
    up, down = resample_ratio(rate_in, rate_out)
    if up == down:
        yield from blocks
        return
    from scipy.signal import resample_poly  # imported only when needed: it takes a second

    half = 10 * max(up, down) / up  # resample_poly's default filter half-length, in input frames
    pad = down * math.ceil((half + 2) / down)
    seg = down * max(1, segment // down)
    total = resampled_length(frames, rate_in, rate_out)
    lead, step = pad * up // down, seg * up // down
    it = iter(blocks)
    first = next(it, None)
    if first is None or total == 0:
        return
    first = np.asarray(first, dtype=np.float32)
    buf = np.concatenate([np.zeros((pad, first.shape[1]), np.float32), first], axis=0)  # from j * seg - pad
    pending: list[np.ndarray] = []
    have, done, exhausted = 0, 0, False
    while done < total:
        while not exhausted and len(buf) + have < seg + 2 * pad:
            b = next(it, None)
            if b is None:
                exhausted = True
                break
            pending.append(np.asarray(b, dtype=np.float32))
            have += len(pending[-1])
        if pending:
            buf = np.concatenate([buf, *pending], axis=0)
            pending, have = [], 0
        ext = buf[: seg + 2 * pad]
        if len(ext) < seg + 2 * pad:
            ext = np.concatenate([ext, np.zeros((seg + 2 * pad - len(ext), ext.shape[1]), np.float32)], axis=0)
        y = resample_poly(ext, up, down, axis=0)
        n = min(step, total - done)
        yield y[lead : lead + n].astype(np.float32)
        done += n
        buf = buf[seg:]


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """A whole signal ``[frames, C]`` resampled (the same arithmetic as :func:`resample_blocks`)."""
    x = np.asarray(x, dtype=np.float32)
    blocks = (x[i : i + BLOCK_FRAMES] for i in range(0, len(x), BLOCK_FRAMES))
    out = list(resample_blocks(blocks, rate_in, rate_out, len(x)))
    return np.concatenate(out, axis=0) if out else np.zeros((0, x.shape[1]), np.float32)
