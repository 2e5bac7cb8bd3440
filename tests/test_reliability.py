"""Reliability (issue 7, images and audio): hostile files, corruption, determinism, interrupted jobs, bad input.

Every input must end in a result or a :class:`wavelatent.WavelatentError` subclass -- no other
exception, no hang, no allocation sized by an unchecked header field. The codecs are the committed
fixtures ``tests/data/test-image.safetensors`` and ``tests/data/test-audio.safetensors``
(``create_codec("test-image" / "test-audio", seed=0)``), so hashes are the same on every machine.
Error types and messages are catalogued in ``docs/errors.md``.
"""
from __future__ import annotations

import ast
import errno
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import wavelatent as wl
from wavelatent import container
from wavelatent.audio import decompress_audio
from wavelatent.cli import main
from wavelatent.errors import (
    ContainerError,
    HeaderError,
    LimitError,
    OutputError,
    PresetError,
    UnsupportedAudioError,
    UnsupportedInputError,
    WavelatentError,
    WeightsMismatchError,
)

from .conftest import smooth_image

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "tests" / "data" / "test-image.safetensors"
GOLDEN = ROOT / "tests" / "golden"
WEIGHTS_SHA256 = "650a8fa53e90a1f50eba01f5bfc562bb3c4b11d1e56c2295174a8c6b60718f7e"
AUDIO_WEIGHTS = ROOT / "tests" / "data" / "test-audio.safetensors"
AUDIO_WEIGHTS_SHA256 = "9ffb156afce43f05a9b26edb37b4dea40517ab15960f4954c30143e0867b64f7"
FUZZ_MAX_PIXELS = 1 << 16  # a header may claim up to this; see test_max_pixels_bounds_decoding_work
FUZZ_MAX_SAMPLES = 1 << 16  # frames x channels, the same for audio
SECONDS_PER_INPUT = 2.0

FUZZ = settings(
    deadline=2000,
    derandomize=True,  # the same examples on every run and machine
    database=None,  # no .hypothesis/ in the repository tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a loaded machine
    yield


@pytest.fixture(scope="module")
def codec():
    c = wl.load_codec(WEIGHTS)
    assert c.weights_sha256 == WEIGHTS_SHA256, "tests/data/test-image.safetensors changed"
    return c


@pytest.fixture(scope="module")
def gray_codec():
    """A 1-channel codec for multi-band files (hashes need not be stable here)."""
    from wavelatent.models import create_codec

    return create_codec("test-gray", seed=0)


@pytest.fixture(scope="module")
def audio_codec():
    import scipy.signal  # noqa: F401 - the resampler imports it lazily, and the first import takes a second

    c = wl.load_codec(AUDIO_WEIGHTS)
    assert c.weights_sha256 == AUDIO_WEIGHTS_SHA256, "tests/data/test-audio.safetensors changed"
    return c


@pytest.fixture(scope="module")
def samples(codec, gray_codec, audio_codec) -> dict[str, bytes]:
    """Small valid files of every image mode, a multi-band file, stereo and mono audio (each < 1 kB)."""
    from wavelatent.audio import compress_audio

    rgb = smooth_image(8, 12, 4, seed=3)
    gray = smooth_image(8, 8, 2, seed=4)
    bands = (smooth_image(8, 8, 5, seed=5).astype(np.uint16) * 257)
    out = {
        "RGB": wl.compress(rgb[:, :, :3], codec, 1),
        "RGBA": wl.compress(rgb, codec, 2),
        "L": wl.compress(gray[:, :, 0], codec, 1),
        "LA": wl.compress(gray, codec, 3),
        "BANDS": wl.compress(bands, gray_codec, 1),
        "STEREO": compress_audio(stereo_signal(), 8000, audio_codec, 1),
        "MONO": compress_audio(mono_signal(), 8000, audio_codec, 2),
        # the shipped tiny presets code with the grid context model
        "GRID": wl.compress(rgb[:, :, :3], "test-image", 2),
        "GRID_AUDIO": compress_audio(stereo_signal(), 8000, "test-audio", 2),
    }
    assert all(len(d) < 1024 for d in out.values())
    return out


def stereo_signal() -> np.ndarray:
    t = np.arange(40)[:, None] / 8000
    return (0.3 * np.sin(2 * np.pi * np.array([440, 660]) * t)).astype(np.float32)


def mono_signal() -> np.ndarray:
    return (np.arange(25) % 7 * 3000 - 9000).astype(np.int16)


@pytest.fixture(scope="module")
def codec_for(codec, gray_codec, audio_codec):
    shipped = {"GRID": wl.load_codec("test-image"), "GRID_AUDIO": wl.load_codec("test-audio")}
    return lambda sample: {"BANDS": gray_codec, "STEREO": audio_codec, "MONO": audio_codec, **shipped}.get(sample, codec)


def edit(data: bytes, streams: dict | None = None, /, **fields) -> bytes:
    """Change header fields (``...`` deletes one) and/or the streams; the CRC stays valid. A value the
    compact header cannot hold (an integer over 272 bits) goes into a version 1 file (JSON), which can."""
    c = container.unpack(data)
    header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version")}
    for key, value in fields.items():
        if value is ...:
            header.pop(key, None)
        else:
            header[key] = value
    streams = c.streams if streams is None else streams
    try:
        return container.pack(header, streams)
    except ValueError:
        return container.pack(header, streams, version=1)


def fix_crc(data: bytes) -> bytes:
    body = bytes(data[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


def decode(data: bytes, codec=None, *, max_pixels: int = FUZZ_MAX_PIXELS, max_samples: int = FUZZ_MAX_SAMPLES):
    """``wl.decompress``, or ``decompress_audio``'s samples for audio files (``wl.decompress`` refuses those)."""
    try:
        audio = container.read_header(data).get("modality") == "audio"
    except WavelatentError:
        audio = False
    if audio:
        return decompress_audio(data, codec, max_samples=max_samples)[0]
    return wl.decompress(data, codec, max_pixels=max_pixels)


def outcome(data: bytes, codec, *, max_pixels: int = FUZZ_MAX_PIXELS, max_samples: int = FUZZ_MAX_SAMPLES) -> list:
    """Feed ``data`` to read_info and decompress (given weights and by preset name).

    Returns what each call returned or raised; anything but a WavelatentError, a call slower than
    SECONDS_PER_INPUT, or a result that contradicts the header fails the test.
    """
    results = []
    calls = [
        ("read_info", lambda: wl.read_info(data)),
        ("decompress", lambda: decode(data, codec, max_pixels=max_pixels, max_samples=max_samples)),
        ("decompress-by-preset", lambda: decode(data, max_pixels=max_pixels, max_samples=max_samples)),
    ]
    for name, call in calls:
        t0 = time.perf_counter()
        try:
            result = call()
        except WavelatentError as e:
            result = e
            assert str(e), f"{name}: {type(e).__name__} without a message"
        except BaseException as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{name} raised {type(e).__name__}: {e!r:.300} for input {data[:120]!r}...")
        seconds = time.perf_counter() - t0
        assert seconds < SECONDS_PER_INPUT, f"{name} took {seconds:.2f} s"
        if isinstance(result, np.ndarray):
            header = container.read_header(data)
            if header["modality"] == "audio":
                assert result.shape == (header["frames"], header["channels"]) and result.dtype == np.float32
                assert result.size <= max_samples
            elif header["modality"] == "multiband":
                assert result.shape == (header["height"], header["width"], header["bands"])
                assert result.dtype.name == header["dtype"]
            else:
                assert result.dtype == np.uint8 and result.shape[:2] == (header["height"], header["width"])
                assert result.ndim == (2 if header["mode"] == "L" else 3)
        results.append(result)
    return results


# --- 1. fuzzing -------------------------------------------------------------------
MODES = ["RGB", "RGBA", "L", "LA", "BANDS", "GRID"]
AUDIO = ["STEREO", "MONO", "GRID_AUDIO"]
FAMILIES = {"image": MODES, "audio": AUDIO}


@pytest.mark.parametrize("family", FAMILIES)
@settings(FUZZ, max_examples=60)
@given(st.data())
def test_fuzz_raw_bytes(codec_for, samples, family, data):
    """Bit flips, truncations, insertions and overwrites, with and without a recomputed CRC."""
    sample = data.draw(st.sampled_from(FAMILIES[family]), "sample")
    buf = bytearray(samples[sample])
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        op = data.draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "delete"]), "op")
        pos = data.draw(st.integers(0, max(len(buf) - 1, 0)), "pos")
        if op == "flip" and buf:
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        elif op == "overwrite":
            chunk = data.draw(st.binary(min_size=1, max_size=8))
            buf[pos : pos + len(chunk)] = chunk
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 16))]
    if data.draw(st.booleans(), "fix_crc") and len(buf) >= 4:
        buf = bytearray(fix_crc(bytes(buf)))
    outcome(bytes(buf), codec_for(sample))


HEADER_KEYS = [
    "modality", "preset", "preset_version", "weights_sha256", "height", "width", "mode", "bit_depth",
    "coded_channels", "padded", "latent_shape", "quality", "wavelatent_version", "bands", "dtype", "transform",
    "entropy",
]
AUDIO_HEADER_KEYS = [
    "modality", "preset", "preset_version", "weights_sha256", "sample_rate", "channels", "frames", "subtype",
    "source_format", "gain", "coded_rate", "coded_frames", "groups", "block", "margin", "chunk", "latent_shape",
    "quality", "wavelatent_version", "entropy",
]
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2, 3, 4, 6, 8, 12, 65, 100_000, 2**31, 2**63, -(2**63), 10**40, 10**400]),
    st.sampled_from([16, 25, 40, 256, 257, 8000, 65536, 768_000, 768_001, 2**22, 2**40, 2**40 + 1]),  # audio sizes
    st.sampled_from([1e-300, 1e-40, 0.5, 1.0, 1.5, -1.0, 0.0]),  # gains
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["RGB", "RGBA", "L", "LA", "CMYK", "P", "I;16", "image", "audio", "test-image", "test-gray",
                     "image-rgb-16x", "no-such-preset", "/dev/null", "../../etc/passwd", "x.safetensors", "",
                     "multiband", "uint8", "uint16", "float32", "float64", "object", "klt",
                     "test-audio", "audio-stereo-5x", "FLOAT", "PCM_16", "DOUBLE", "WAV", "array",
                     "grid", "grid2", "grid3", "checkerboard", "none"]),  # entropy models
    st.lists(st.integers(-3, 10**6), max_size=4),
    st.lists(st.sampled_from([6, 2, 3, 4, 25_000]), min_size=3, max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.lists(st.lists(st.integers(-1, 300), max_size=3), max_size=3),  # channel groups
    st.sampled_from([[[0, 1]], [[0, 0]], [[1, 0]], [[0, 1], [0, 1]], [[0, 1, 2]], [[0]], []]),
)


@pytest.mark.parametrize("family", FAMILIES)
@settings(FUZZ, max_examples=80)
@given(st.data())
def test_fuzz_header_fields(codec_for, samples, family, data):
    """Header fields replaced by hostile values or deleted, the CRC recomputed."""
    sample = data.draw(st.sampled_from(FAMILIES[family]), "sample")
    base = samples[sample]
    keys = AUDIO_HEADER_KEYS if family == "audio" else HEADER_KEYS
    fields = {}
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        key = data.draw(st.sampled_from(keys) | st.text(min_size=1, max_size=6), "key")
        if key in ("streams", "format_version"):
            continue
        fields[key] = data.draw(st.just(...) | HOSTILE, "value")
    with np.errstate(all="ignore"):  # a tiny gain may scale samples to inf: garbage, not an exception
        outcome(edit(base, **fields), codec_for(sample))


@settings(FUZZ, max_examples=50)
@given(st.data())
def test_fuzz_streams(codec_for, samples, data):
    """Streams dropped, added, replaced, reordered; alpha streams that inflate to the wrong size;
    multi-band side information that is not finite or overflows."""
    sample = data.draw(st.sampled_from(MODES), "sample")
    base = samples[sample]
    c = container.unpack(base)
    streams = dict(c.streams)
    pixels = c.header["height"] * c.header["width"]
    for _ in range(data.draw(st.integers(1, 2), "edits")):
        op = data.draw(st.sampled_from(["drop", "add", "latent", "alpha", "swap", "klt"]), "op")
        if op == "drop" and streams:
            streams.pop(data.draw(st.sampled_from(sorted(streams))))
        elif op == "add":
            streams[data.draw(st.sampled_from(["extra", "latent2", "ALPHA", ""]))] = data.draw(st.binary(max_size=16))
        elif op == "latent":
            n = data.draw(st.sampled_from([0, 1, 3, 4, 8, 64, len(streams.get("latent", b""))]))
            streams["latent"] = data.draw(st.binary(min_size=n, max_size=n))
        elif op == "alpha":
            size = data.draw(st.sampled_from([0, 1, pixels - 1, pixels, pixels + 1, 1000 * pixels, 10**7]))
            raw = bytes([data.draw(st.integers(0, 255))]) * size
            streams["alpha"] = data.draw(st.sampled_from([zlib.compress(raw, 9), zlib.compress(raw, 9)[:-3], raw[:64]]))
        elif op == "swap":
            streams = dict(reversed(list(streams.items())))
        elif op == "klt":
            n = len(streams.get("klt", b"")) // 8 or 31
            values = data.draw(st.sampled_from([np.nan, np.inf, 0.0, -1.0, 1e308, -1e308, 1e-308]))
            side = np.full(n, values, "<f8")
            side[data.draw(st.integers(0, n - 1))] = data.draw(st.floats(allow_nan=True))
            streams["klt"] = side.tobytes()[: data.draw(st.sampled_from([8 * n, 8 * n - 1, 8]))]
    with np.errstate(all="ignore"):  # overflowing side information may give garbage, not an exception
        outcome(edit(base, streams), codec_for(sample))


@settings(FUZZ, max_examples=50)
@given(st.data())
def test_fuzz_audio_streams(codec_for, samples, data):
    """Audio streams dropped, added, swapped; latent bytes replaced; chunk tables with the wrong
    number of entries, lengths that do not add up, zero or huge lengths, and lengths that add up
    but cut the chunks in the wrong places."""
    sample = data.draw(st.sampled_from(AUDIO), "sample")
    base = samples[sample]
    streams = dict(container.unpack(base).streams)
    for _ in range(data.draw(st.integers(1, 2), "edits")):
        op = data.draw(st.sampled_from(["drop", "add", "latent", "chunks", "split", "swap"]), "op")
        latent = streams.get("latent", b"")
        if op == "drop" and streams:
            streams.pop(data.draw(st.sampled_from(sorted(streams))))
        elif op == "add":
            name = data.draw(st.sampled_from(["extra", "alpha", "klt", "CHUNKS", ""]))
            streams[name] = data.draw(st.binary(max_size=16))
        elif op == "latent":
            n = data.draw(st.sampled_from([0, 1, 3, 4, 8, 64, len(latent)]))
            streams["latent"] = data.draw(st.binary(min_size=n, max_size=n))
        elif op == "chunks":
            values = data.draw(st.lists(st.sampled_from([0, 1, 4, len(latent), 2**32 - 1]) | st.integers(0, 2**32 - 1),
                                        max_size=3))
            streams["chunks"] = struct.pack(f"<{len(values)}I", *values)[: data.draw(st.sampled_from([None, 1, 3, 5]))]
        elif op == "split":  # two chunk entries that add up to the latent stream
            cut = data.draw(st.integers(0, len(latent)))
            streams["chunks"] = struct.pack("<2I", cut, len(latent) - cut)
        elif op == "swap":
            streams = dict(reversed(list(streams.items())))
    outcome(edit(base, streams), codec_for(sample))


def _audio_consistent(data: bytes, codec, *, frames: int | None = None, rate: int | None = None,
                      channels: int | None = None, chunk: int | None = None) -> bytes:
    """An audio header with every derived field made to agree (empty latent chunks: rANS decodes
    them to zeros), i.e. a tiny file that honestly describes that much silence."""
    from wavelatent.audio import channel_groups, geometry
    from wavelatent.io.audio import resampled_length

    h = container.read_header(data)
    frames, rate, channels = frames or h["frames"], rate or h["sample_rate"], channels or h["channels"]
    cfg, geo = codec.config, geometry(codec)
    groups = channel_groups(channels, cfg.channels)
    T = chunk or (1 << 22) // (geo.block * len(groups))
    coded = resampled_length(frames, rate, cfg.sample_rate)
    P = -(-coded // geo.block) + 2 * geo.margin
    count = -(-P // T)
    return edit(data, {"latent": b"", "chunks": bytes(4 * count)}, frames=frames, sample_rate=rate,
                channels=channels, groups=groups, coded_frames=coded, chunk=T, latent_shape=[len(groups), 2, P])


EIGHT_HOURS = 8 * 3600 * 8000
# (sample, header edits or a function of the sample and codec, expected error type of decompress with weights)
HOSTILE_AUDIO = {
    "hours": ("STEREO", lambda d, c: _audio_consistent(d, c, frames=EIGHT_HOURS), LimitError),
    "upsampled-bomb": ("STEREO", lambda d, c: _audio_consistent(d, c, frames=384 << 20, rate=768_000), LimitError),
    "max-frames": ("MONO", lambda d, c: _audio_consistent(d, c, frames=1 << 40), LimitError),
    "too-many-frames": ("MONO", dict(frames=(1 << 40) + 1), HeaderError),
    "frames-lie": ("STEREO", dict(frames=EIGHT_HOURS), HeaderError),
    "256-channels": ("MONO", lambda d, c: _audio_consistent(d, c, channels=256), None),
    "257-channels": ("MONO", lambda d, c: _audio_consistent(d, c, channels=257), HeaderError),
    # channel groups follow from the channels (newer headers do not repeat them): a consistent lie decodes
    "channels-lie": ("STEREO", dict(channels=1), None),
    "zero-channels": ("STEREO", dict(channels=0), HeaderError),
    "rate-1hz": ("MONO", lambda d, c: _audio_consistent(d, c, frames=1, rate=1), None),
    "rate-max": ("MONO", lambda d, c: _audio_consistent(d, c, rate=768_000), None),
    "rate-too-high": ("MONO", dict(sample_rate=768_001), HeaderError),
    # found by this suite: a coprime rate needed a 15M-tap filter (8 s, 700 MB for 40 frames)
    "rate-coprime": ("MONO", dict(sample_rate=767_999, coded_frames=1), UnsupportedAudioError),
    "rate-coprime-small": ("MONO", lambda d, c: _audio_consistent(d, c, rate=16_381), None),  # 16381:8000 is fine
    "rate-zero": ("MONO", dict(sample_rate=0), HeaderError),
    "rate-float": ("MONO", dict(sample_rate=8000.0), HeaderError),
    "huge-int": ("STEREO", dict(frames=10**400, sample_rate=10**400, channels=10**400), HeaderError),
    "coded-rate": ("STEREO", dict(coded_rate=16000), HeaderError),
    "chunk-zero": ("STEREO", dict(chunk=0), HeaderError),
    "chunk-huge": ("STEREO", lambda d, c: _audio_consistent(d, c, chunk=1 << 21), HeaderError),
    "chunk-of-one": ("STEREO", lambda d, c: _audio_consistent(d, c, chunk=1), None),
    "gain-zero": ("STEREO", dict(gain=0), HeaderError),
    "gain-two": ("STEREO", dict(gain=2.0), HeaderError),
    "gain-string": ("STEREO", dict(gain="1"), HeaderError),
    "groups-lie": ("STEREO", dict(groups=[[0, 0]]), HeaderError),
    "groups-bad-channel": ("STEREO", dict(groups=[[0, 5]]), HeaderError),
    "block": ("STEREO", dict(block=8), HeaderError),
    "subtype-missing": ("STEREO", dict(subtype=...), HeaderError),
    "modality-image": ("STEREO", dict(modality="image"), HeaderError),
    "image-preset": ("STEREO", dict(preset="test-image"), None),  # the given weights decide
    "other-weights": ("STEREO", dict(weights_sha256="0" * 64), WeightsMismatchError),
    "missing-chunks": ("STEREO", lambda d, c: edit(d, _streams(d, chunks=None)), HeaderError),
    "extra-stream": ("STEREO", lambda d, c: edit(d, _streams(d, alpha=b"x")), HeaderError),
    "chunks-overrun": ("STEREO", lambda d, c: edit(d, _streams(d, chunks=struct.pack("<I", 2**32 - 1))), HeaderError),
    "latent-garbage": ("STEREO", lambda d, c: edit(d, _streams(d, latent=b"\xff\x01\x02\x03",
                                                               chunks=struct.pack("<I", 4))), WavelatentError),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_AUDIO))
def test_hostile_audio_headers(audio_codec, samples, case):
    sample, change, expected = HOSTILE_AUDIO[case]
    data = change(samples[sample], audio_codec) if callable(change) else edit(samples[sample], **change)
    assert len(data) < (1 << 21)
    info, decoded, by_preset = outcome(data, audio_codec, max_samples=1 << 28)  # the default bound
    if expected is None:
        assert isinstance(decoded, np.ndarray), decoded
    else:
        assert isinstance(decoded, expected), f"{type(decoded).__name__}: {decoded}"
    assert isinstance(by_preset, WavelatentError)  # test-audio ships no weights


def test_huge_audio_header_refused_without_allocating(audio_codec, samples):
    """A 1 kB file that consistently claims 8 hours of stereo (or 400M frames by upsampling 8 kHz
    to 768 kHz) is refused before decoding: in-memory decodes are bounded by ``max_samples``
    (frames x channels, default 2**28)."""
    claims = [HOSTILE_AUDIO[k][1](samples["STEREO"], audio_codec) for k in ("hours", "upsampled-bomb")]
    for data in claims:
        assert len(data) < 1024
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(LimitError, match="exceeds the limit of 268435456 samples"):
                decode(data, audio_codec, max_samples=1 << 28)
            assert wl.read_info(data)["duration_s"] > 500  # the header alone is fine to read
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20, f"{peak} bytes allocated"
        assert time.perf_counter() - t0 < 1.0
    with pytest.raises(LimitError):  # the bound is the caller's to set
        decode(_audio_consistent(samples["STEREO"], audio_codec, frames=1000), audio_codec, max_samples=1999)
    assert decode(_audio_consistent(samples["STEREO"], audio_codec, frames=1000), audio_codec,
                  max_samples=2000).shape == (1000, 2)


def _consistent(data: bytes, codec, h: int, w: int) -> bytes:
    """A header that claims an h x w image, with every derived field made to agree."""
    cfg = codec.config
    return edit(data, height=h, width=w, latent_shape=[cfg.latent_channels, *codec.latent_size((h, w))],
                padded=[-(-h // cfg.block) * cfg.block, -(-w // cfg.block) * cfg.block])


def _streams(data: bytes, **change) -> dict:
    streams = dict(container.unpack(data).streams)
    for name, blob in change.items():
        if blob is None:
            streams.pop(name)
        else:
            streams[name] = blob
    return streams


# (sample, header edits or a function of the sample, expected error type of decompress with weights)
HOSTILE_CASES = {
    "huge-size": ("RGB", dict(height=100_000, width=100_000), LimitError),
    "huge-size-consistent": ("RGB", lambda d, c: _consistent(d, c, 100_000, 100_000), LimitError),
    "negative-height": ("RGB", dict(height=-8), HeaderError),
    "zero-width": ("RGB", dict(width=0), HeaderError),
    "float-width": ("RGB", dict(width=12.0), HeaderError),
    "bool-height": ("RGB", dict(height=True), HeaderError),
    "string-height": ("RGB", dict(height="8"), HeaderError),
    "huge-int": ("RGB", dict(height=10**40), LimitError),
    "latent-shape-lie": ("RGB", dict(latent_shape=[6, 200, 200]), HeaderError),
    "latent-shape-wrong-type": ("RGB", dict(latent_shape="6x2x3"), HeaderError),
    "size-lie-same-latent": ("RGB", dict(height=7), None),  # 7 rows need the same latent: a valid file
    "unknown-quality": ("RGB", dict(quality=4), HeaderError),
    "quality-zero": ("RGB", dict(quality=0), HeaderError),
    "unknown-mode": ("RGB", dict(mode="CMYK"), HeaderError),
    "mode-list": ("RGB", dict(mode=[1]), HeaderError),
    "bit-depth-16": ("RGB", dict(bit_depth=16), HeaderError),
    "modality-audio": ("RGB", dict(modality="audio"), HeaderError),
    "no-modality": ("RGB", dict(modality=...), HeaderError),
    "coded-channels-lie": ("RGB", dict(coded_channels=1), HeaderError),
    "unknown-preset": ("RGB", dict(preset="no-such-preset"), None),  # the given weights decide
    "other-weights": ("RGB", dict(weights_sha256="0" * 64), WeightsMismatchError),
    "missing-latent": ("RGB", lambda d, c: edit(d, _streams(d, latent=None)), HeaderError),
    "unknown-stream": ("RGB", lambda d, c: edit(d, _streams(d, extra=b"x")), HeaderError),
    "missing-alpha": ("RGBA", lambda d, c: edit(d, _streams(d, alpha=None)), HeaderError),
    "alpha-without-mode": ("RGB", lambda d, c: edit(d, _streams(d, alpha=zlib.compress(bytes(96)))), HeaderError),
    "alpha-inflates-more": ("RGBA", lambda d, c: edit(d, _streams(d, alpha=zlib.compress(bytes(97)))), HeaderError),
    "alpha-bomb": ("RGBA", lambda d, c: edit(d, _streams(d, alpha=zlib.compress(bytes(10**7), 9))), HeaderError),
    "alpha-inflates-less": ("RGBA", lambda d, c: edit(d, _streams(d, alpha=zlib.compress(bytes(95)))), HeaderError),
    "alpha-not-zlib": ("RGBA", lambda d, c: edit(d, _streams(d, alpha=b"\x00" * 96)), HeaderError),
    "latent-garbage": ("RGB", lambda d, c: edit(d, _streams(d, latent=b"\xff\x01\x02")), WavelatentError),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CASES))
def test_hostile_headers(codec, samples, case):
    sample, change, expected = HOSTILE_CASES[case]
    data = change(samples[sample], codec) if callable(change) else edit(samples[sample], **change)
    info, decoded, by_preset = outcome(data, codec)
    if expected is None:
        assert isinstance(decoded, np.ndarray), decoded
    else:
        assert isinstance(decoded, expected), f"{type(decoded).__name__}: {decoded}"
    assert isinstance(by_preset, WavelatentError)  # test-image ships no weights


@pytest.mark.parametrize("preset", ["/dev/null", str(WEIGHTS), "../test-image.safetensors"])
def test_preset_named_by_a_file_is_never_opened_as_a_path(samples, preset):
    """Found by this suite: a header's preset was passed to load_codec, which opens paths, so a
    file naming ``/dev/zero`` read until memory ran out. (Only harmless paths are tried here.)"""
    with pytest.raises(PresetError, match="does not have"):
        wl.decompress(edit(samples["RGB"], preset=preset))


def test_huge_header_refused_without_allocating(codec, samples):
    """A header claiming 100000 x 100000 pixels is refused before anything of that size exists.

    tracemalloc sees Python and numpy allocations; torch tensors bypass it, so the decode is also
    timed (allocating and filling 10**10 pixels would take far longer than the bound).
    """
    claims = [edit(samples["RGBA"], height=100_000, width=100_000), _consistent(samples["RGB"], codec, 100_000, 100_000)]
    for data in claims:
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(LimitError, match="exceeds the limit"):
                wl.decompress(data, codec)
            assert wl.read_info(data)["width"] == 100_000  # the header alone is fine to read
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20, f"{peak} bytes allocated"
        assert time.perf_counter() - t0 < 1.0


def test_max_pixels_bounds_decoding_work(codec, samples):
    """A tiny file may honestly describe a big image: rANS codes symbol 0 for free from the empty
    state, so a short stream decodes to any number of trailing zeros. ``max_pixels`` is the bound."""
    bomb = _consistent(samples["RGB"], codec, 2048, 2048)
    assert len(bomb) < 1024
    with pytest.raises(LimitError):
        wl.decompress(bomb, codec, max_pixels=1 << 20)
    small = _consistent(samples["RGB"], codec, 64, 64)
    assert wl.decompress(small, codec).shape == (64, 64, 3)


# --- 2. corruption ----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "STEREO", "MONO"])
def test_every_single_byte_change_is_detected(codec_for, samples, mode):
    data, codec = samples[mode], codec_for(mode)
    assert len(data) < 1024
    assert isinstance(decode(data, codec), np.ndarray)
    for pos in range(len(data)):
        for mask in (0x01, 0xFF):
            bad = bytearray(data)
            bad[pos] ^= mask
            with pytest.raises(ContainerError):
                decode(bytes(bad), codec)
            if mode in AUDIO:
                with pytest.raises(ContainerError):
                    wl.read_info(bytes(bad))


# --- 3. determinism (this machine) -------------------------------------------------
# Cross-machine goldens (bytes and symbols exact, pixels within 1 LSB): tests/test_golden.py.
# Here: on one machine, 1 or 2 threads and a fresh process give identical bytes and outputs.
def _determinism_input() -> np.ndarray:
    return np.asarray(Image.open(GOLDEN / "source-kodim23.png").convert("RGB"))


def test_same_bytes_with_one_or_two_threads(codec):
    image = _determinism_input()
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        data = wl.compress(image, codec, 3)
        results.append((data, wl.decompress(data, codec).tobytes()))
    assert results[0] == results[1]


_SUBPROCESS = """
import hashlib, json, sys
import numpy as np, torch
from PIL import Image
torch.set_num_threads(int(sys.argv[1]))
import wavelatent as wl
from wavelatent.audio import compress_audio, decompress_audio
out = {}
for preset in ("test-image", "image-rgb-16x"):
    codec = wl.load_codec(preset)
    image = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
    for q in range(1, codec.config.qualities + 1):
        data = wl.compress(image, codec, q)
        x = wl.decompress(data, codec)
        out[f"{preset}-q{q}"] = [hashlib.sha256(data).hexdigest(), hashlib.sha256(x.tobytes()).hexdigest()]
codec = wl.load_codec("test-audio")
clip = np.load(sys.argv[3], allow_pickle=False)
for q in range(1, codec.config.qualities + 1):
    data = compress_audio(clip, 8000, codec, q)
    x = decompress_audio(data, codec)[0]
    out[f"test-audio-q{q}"] = [hashlib.sha256(data).hexdigest(), hashlib.sha256(x.tobytes()).hexdigest()]
print(json.dumps(out))
"""


def test_same_bytes_in_fresh_processes():
    """Fresh processes with 1 and 2 threads write the same bytes and decode the same outputs
    (images and audio), bit for bit, on this machine."""
    args = [str(GOLDEN / "source-kodim23.png"), str(GOLDEN / "source-fsdd.npy")]
    procs = [subprocess.Popen([sys.executable, "-c", _SUBPROCESS, threads, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for threads in ("1", "2")]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout))
    assert outs[0] == outs[1]
    assert len(outs[0]) == 3 + 5 + 3


# --- 4. safe loading --------------------------------------------------------------
def test_pickle_refusal_is_tested():
    tree = ast.parse((ROOT / "tests" / "test_weights.py").read_text())
    assert "test_pickle_is_refused" in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_no_module_can_unpickle():
    problems = []
    for path in sorted((ROOT / "src" / "wavelatent").rglob("*.py")):
        where = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                if name.split(".")[0] in ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"):
                    problems.append(f"{where}:{node.lineno}: imports {name}")
            if isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                kwargs = {k.arg: k.value for k in node.keywords}
                if func == "torch.load" or func.endswith("serialization.load"):
                    flag = kwargs.get("weights_only")
                    if not (isinstance(flag, ast.Constant) and flag.value is True):
                        problems.append(f"{where}:{node.lineno}: {func} without weights_only=True")
                flag = kwargs.get("allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}:{node.lineno}: {func}(allow_pickle=...)")
        text = path.read_text()
        for m in re.finditer(r"\bpickle\.(loads?|Unpickler)\b|\btorch\.load\(|allow_pickle\s*=\s*True", text):
            line = text.count("\n", 0, m.start()) + 1
            if m.group(0).startswith("torch.load(") and "weights_only=True" in text[m.start() : m.start() + 300]:
                continue
            problems.append(f"{where}:{line}: {m.group(0)}")
    assert not problems, "\n".join(sorted(set(problems)))


# --- 5. batch jobs lose nothing ---------------------------------------------------
def _wlt_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.wlt"))


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def test_killed_batch_resumes(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    n = 30
    for i in range(n):
        Image.fromarray(smooth_image(48, 64, seed=i)).save(src / ("sub" if i % 3 == 0 else "") / f"img{i:02d}.png")
    cmd = [sys.executable, "-m", "wavelatent", "--threads", "1", "compress", str(src), "-o", str(out),
           "-w", str(WEIGHTS), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while len(_wlt_files(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the batch ended before it was killed: {proc.stderr.read()!r}"
    proc.stderr.close()
    done = {p: p.read_bytes() for p in _wlt_files(out)}
    assert 1 <= len(done) < n
    for data in done.values():  # every output that exists is whole
        container.unpack(data)
    # a kill during a write leaves its temporary file; the rerun clears it
    stale = (out / f".img{n - 1:02d}.wlt.k1ll3d.part")
    stale.write_bytes(b"half a file")

    assert main(["--threads", "1", "compress", str(src), "-o", str(out), "-w", str(WEIGHTS)]) == 0
    assert f"{n - len(done)} done, {len(done)} skipped" in capsys.readouterr().err
    assert main(["compress", str(src), "-o", str(out), "-w", str(WEIGHTS)]) == 0
    assert f"0 done, {n} skipped" in capsys.readouterr().err
    assert len(_wlt_files(out)) == n and not _temp_files(out)
    for path, data in done.items():  # finished files were skipped, not redone
        assert path.read_bytes() == data
    for path in _wlt_files(out):
        assert wl.read_info(path.read_bytes())["preset"] == "test-image"


def _png16() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` (with one tiny IDAT): a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _truncated_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(smooth_image(32, 32)).save(buf, format="PNG")
    return buf.getvalue()[:-200]


BAD_IMAGES = {
    "empty.png": b"",
    "text.png": b"hello, I am text\n",
    "random.jpg": bytes(range(256)) * 4,
    "truncated.png": _truncated_png(),
    "deep16.png": _png16(),
    "bomb.png": _png_header(100_000, 100_000),
    "zero.png": _png_header(0, 0),
}


def test_bad_files_in_a_batch_are_reported_and_the_rest_complete(tmp_path, capsys):
    src, coded, decoded = tmp_path / "src", tmp_path / "coded", tmp_path / "decoded"
    src.mkdir()
    good = [f"good{i}.png" for i in range(4)]
    for i, name in enumerate(good):
        Image.fromarray(smooth_image(16, 24, seed=i)).save(src / name)
    for name, data in BAD_IMAGES.items():
        (src / name).write_bytes(data)
    args = ["compress", str(src), "-o", str(coded), "-w", str(WEIGHTS)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{len(good)} done, 0 skipped (exist; --force to redo), {len(BAD_IMAGES)} failed" in err
    assert "Traceback" not in err and "internal error" not in err
    for name in BAD_IMAGES:
        assert re.search(rf"^wavelatent: error: .*{re.escape(name)}: ", err, re.M), name
    assert sorted(p.name for p in _wlt_files(coded)) == sorted(n.replace(".png", ".wlt") for n in good)
    # the rerun redoes only the failures, which fail again
    assert main(args) == 1
    assert f"0 done, {len(good)} skipped" in capsys.readouterr().err

    # decompressing a tree with broken files: the same
    (coded / "empty.wlt").write_bytes(b"")
    flipped = bytearray((coded / "good0.wlt").read_bytes())
    flipped[len(flipped) // 2] ^= 0x10
    (coded / "flipped.wlt").write_bytes(bytes(flipped))
    (coded / "cut.wlt").write_bytes((coded / "good1.wlt").read_bytes()[:40])
    assert main(["decompress", str(coded), "-o", str(decoded), "-w", str(WEIGHTS)]) == 1
    err = capsys.readouterr().err
    assert f"{len(good)} done, 0 skipped (exist; --force to redo), 3 failed" in err
    assert "CRC32 mismatch" in err and "truncated" in err and "Traceback" not in err
    assert sorted(p.name for p in decoded.glob("*.png")) == sorted(good)
    assert not _temp_files(tmp_path)


# --- 6. bad input everywhere (CLI, in-process) -------------------------------------
def _clean_error(rc: int, err: str, match: str) -> None:
    lines = err.strip().splitlines()
    assert rc == 1, err
    assert len(lines) == 1 and lines[0].startswith("wavelatent: error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize("name, match", [
    ("empty.png", "not an image"),
    ("text.png", "not an image"),
    ("random.jpg", "not an image"),
    ("truncated.png", "cannot decode image"),
    ("deep16.png", "16-bit"),
    ("bomb.png", "pixel limit"),
    ("zero.png", "not an image"),
])
def test_cli_refuses_bad_images(tmp_path, capsys, name, match):
    path = tmp_path / name
    path.write_bytes(BAD_IMAGES[name])
    tracemalloc.start()
    try:
        rc = main(["compress", str(path), "-o", str(tmp_path / "out.wlt"), "-w", str(WEIGHTS)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _clean_error(rc, capsys.readouterr().err, match)
    assert peak < 16 << 20, f"{peak} bytes allocated for {name}"
    assert list(tmp_path.iterdir()) == [path]


def _wav(frames: int = 400) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros((frames, 2), np.int16), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


BAD_AUDIO = {
    "empty.wav": (b"", "not a readable audio file"),
    "text.flac": (b"hello, I am text, not FLAC\n" * 4, "not a readable audio file"),
    "cut-header.wav": (_wav()[:30], "not a readable audio file"),
    "no-frames.wav": (_wav(0), "no audio frames"),
    "riff-only.wav": (b"RIFF\x24\x00\x00\x00WAVE", "not a readable audio file"),
}


@pytest.mark.parametrize("name", sorted(BAD_AUDIO))
def test_cli_refuses_bad_audio(tmp_path, capsys, name):
    """(A WAV cut inside its data chunk is not an error: libsndfile decodes the frames it has;
    tests/test_audio.py::test_bad_audio_files.)"""
    pytest.importorskip("soundfile")
    data, match = BAD_AUDIO[name]
    path = tmp_path / name
    path.write_bytes(data)
    rc = main(["compress", str(path), "-o", str(tmp_path / "out.wlt"), "-w", str(AUDIO_WEIGHTS)])
    _clean_error(rc, capsys.readouterr().err, match)
    assert list(tmp_path.iterdir()) == [path]


def test_cli_refuses_hostile_audio_containers(tmp_path, capsys, samples, audio_codec):
    pytest.importorskip("soundfile")
    for name, data, match in [
        ("flipped.wlt", bytes([samples["STEREO"][0]]) + samples["STEREO"][1:-1] + b"\0", "CRC32 mismatch"),
        ("cut.wlt", samples["MONO"][:100], "truncated"),
        ("groups.wlt", edit(samples["STEREO"], groups=[[1, 0]]), "channel groups"),
        ("other.wlt", edit(samples["STEREO"], weights_sha256="0" * 64), "pass the weights it was written with"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        _clean_error(main(["decompress", str(path), "-o", str(tmp_path / "o.wav"), "-w", str(AUDIO_WEIGHTS)]),
                     capsys.readouterr().err, match)
        assert not (tmp_path / "o.wav").exists() and not _temp_files(tmp_path)


def test_cli_converts_cmyk_jpeg(tmp_path, capsys):
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (24, 16), (10, 120, 30, 40)).save(src)
    assert main(["compress", str(src), "-o", str(tmp_path / "c.wlt"), "-w", str(WEIGHTS)]) == 0
    assert "RGB" in capsys.readouterr().err
    assert wl.read_info((tmp_path / "c.wlt").read_bytes())["mode"] == "RGB"


@pytest.mark.parametrize("name, data, match", [
    ("empty.wlt", b"", "truncated"),
    ("text.wlt", b"just some text\n", "not a wavelatent file"),
    ("png.wlt", _png16(), "not a wavelatent file"),
    ("cut.wlt", b"WLAT\x01\x00\x10\x00", "truncated"),
])
def test_cli_refuses_bad_containers(tmp_path, capsys, name, data, match):
    path = tmp_path / name
    path.write_bytes(data)
    _clean_error(main(["decompress", str(path), "-o", str(tmp_path / "o.png"), "-w", str(WEIGHTS)]),
                 capsys.readouterr().err, match)
    _clean_error(main(["info", str(path)]), capsys.readouterr().err, match)
    assert not (tmp_path / "o.png").exists()


@pytest.fixture
def png(tmp_path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(smooth_image(16, 24)).save(path)
    return path


def test_cli_refuses_bad_paths(tmp_path, png, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    w = ["-w", str(WEIGHTS)]
    cases = [
        (["compress", str(tmp_path / "missing.png"), "-o", str(tmp_path / "a.wlt"), *w], "no such file"),
        (["compress", str(png), "-o", str(folder), *w], "is a directory"),
        (["compress", str(png), "-o", str(folder), "--force", *w], "is a directory"),
        (["compress", str(png), "-o", str(a_file / "out.wlt"), *w], "cannot write"),
        (["decompress", str(folder / "x.wlt"), "-o", str(tmp_path / "x.png"), *w], "no such file"),
        (["info", str(folder)], "is a directory"),
        (["compress", str(png), "-o", str(tmp_path / "a.wlt"), "-w", str(a_file)], "safetensors"),
    ]
    for args, match in cases:
        _clean_error(main(args), capsys.readouterr().err, match)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder", "in.png"]
    assert not list(folder.iterdir())


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read mode-000 files")
def test_cli_unreadable_input(png, tmp_path, capsys):
    png.chmod(0)
    try:
        _clean_error(main(["compress", str(png), "-o", str(tmp_path / "a.wlt"), "-w", str(WEIGHTS)]),
                     capsys.readouterr().err, "ermission denied")
    finally:
        png.chmod(0o644)


def test_cli_disk_full(tmp_path, png, monkeypatch, capsys):
    wlt, out = tmp_path / "in.wlt", tmp_path / "out.png"
    assert main(["compress", str(png), "-o", str(wlt), "-w", str(WEIGHTS)]) == 0
    out.write_bytes(b"previous output")
    old_wlt = wlt.read_bytes()
    capsys.readouterr()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    for args, target, before in [
        (["compress", str(png), "-o", str(wlt)], wlt, old_wlt),
        (["decompress", str(wlt), "-o", str(out)], out, b"previous output"),
    ]:
        _clean_error(main([*args, "-w", str(WEIGHTS), "--force"]), capsys.readouterr().err,
                     f"cannot write .*{target.name}: No space left on device")
        assert target.read_bytes() == before
        assert not _temp_files(tmp_path)
    with pytest.raises(OutputError, match="No space left"):
        from wavelatent.io import atomic_write_bytes

        atomic_write_bytes(tmp_path / "new.bin", b"x")
    assert not (tmp_path / "new.bin").exists() and not _temp_files(tmp_path)


def test_output_errors_are_typed():
    from wavelatent.errors import OutputExistsError

    assert issubclass(OutputExistsError, OutputError) and issubclass(OutputError, WavelatentError)
    assert not issubclass(UnsupportedInputError, OutputError)
