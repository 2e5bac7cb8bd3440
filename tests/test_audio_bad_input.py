"""Bad and extreme audio input (issue 18's list) where tests/test_audio.py and tests/test_reliability.py
leave gaps: non-finite samples in files, 1-sample files, real coding at 1 Hz .. 384 kHz, 64
channels through files, a file cut into one-position chunks, and a writer that cannot be made to
write more than the header's length."""
from __future__ import annotations

import io

import numpy as np
import pytest

from wavelatent import container
from wavelatent.audio import compress_audio, compress_audio_file, decompress_audio, decompress_audio_file, geometry
from wavelatent.bitstream import LatentCoder
from wavelatent.cli import main
from wavelatent.errors import InputError, UnreadableAudioError
from wavelatent.io.audio import AudioWriter, resampled_length
from wavelatent.models import create_codec

sf = pytest.importorskip("soundfile")


@pytest.fixture(scope="module")
def codec():
    return create_codec("test-audio", seed=0)


def signal(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal((frames, channels))).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(codec, bad):
    x = signal(300, 2)
    x[17, 1] = bad
    with pytest.raises(InputError):
        compress_audio(x, 8000, codec)
    buf = io.BytesIO()
    sf.write(buf, x, 8000, format="WAV", subtype="FLOAT")
    with pytest.raises(UnreadableAudioError, match="NaN or infinite"):
        compress_audio_file(buf.getvalue(), codec)


def test_one_sample_file(tmp_path, codec):
    from wavelatent.weights import save_weights

    weights = tmp_path / "w.safetensors"
    save_weights(codec, weights)
    src, wlt, out = tmp_path / "one.wav", tmp_path / "one.wlt", tmp_path / "one_hat.wav"
    sf.write(src, np.array([[0.25, -0.5]], np.float32), 8000, subtype="PCM_16")
    assert main(["compress", str(src), "-o", str(wlt), "-w", str(weights), "--quiet"]) == 0
    assert main(["decompress", str(wlt), "-o", str(out), "-w", str(weights), "--quiet"]) == 0
    info = sf.info(out)
    assert (info.frames, info.channels, info.samplerate) == (1, 2, 8000)


@pytest.mark.parametrize("rate", [1, 3, 11_025, 44_100, 96_000, 192_000, 384_000])
def test_sample_rates_round_trip(codec, rate):
    frames = max(1, min(rate // 10, 3000))
    x = signal(frames, 2, seed=rate % 7)
    for fill in (False, True):
        y, r = decompress_audio(compress_audio(x, rate, codec), codec, noise_fill=fill)
        assert r == rate and y.shape == x.shape and np.isfinite(y).all()


def test_64_channels_through_files(tmp_path, codec):
    x = signal(500, 64)
    src = tmp_path / "many.wav"
    sf.write(src, x, 8000, subtype="PCM_16")
    data = compress_audio_file(src, codec)
    assert len(container.read_header(data)) and len(data) < 200_000
    out = tmp_path / "many_hat.wav"
    decompress_audio_file(data, out, codec)
    info = sf.info(out)
    assert (info.frames, info.channels) == (500, 64)
    y, _ = decompress_audio(data, codec)
    assert y.shape == (500, 64)


def test_one_position_chunks_decode_in_few_steps(codec):
    """A file whose chunk table cuts the latents into one-position chunks (every chunk a valid stream)
    decodes correctly, the decoder still runs in steps of the default chunk, not per position, and
    the chunks are entropy-decoded in batches."""
    geo = geometry(codec)
    data = compress_audio(np.zeros((64, 2), np.float32), 8000, codec)
    h = {k: v for k, v in container.read_header(data).items() if k not in ("streams", "format_version")}
    frames = 300 * geo.block
    P = -(-resampled_length(frames, 8000, codec.config.sample_rate) // geo.block) + 2 * geo.margin
    blob = LatentCoder(codec, h["quality"], entropy=h.get("entropy")).compress(
        np.zeros((codec.config.latent_channels, 1), np.int32))
    crafted = container.pack({**h, "frames": frames, "chunk": 1},
                             {"latent": blob * P, "chunks": np.full(P, len(blob), "<u4").tobytes()})
    calls, entropy_calls = [], []
    handle = codec.decoder.register_forward_hook(lambda *a: calls.append(1))
    many, one = LatentCoder.decompress_many, LatentCoder.decompress

    def count(f):
        def wrapped(self, *a, **k):
            entropy_calls.append(f.__name__)
            return f(self, *a, **k)
        return wrapped

    LatentCoder.decompress_many, LatentCoder.decompress = count(many), count(one)
    try:
        y, _ = decompress_audio(crafted, codec, noise_fill=False)
    finally:
        handle.remove()
        LatentCoder.decompress_many, LatentCoder.decompress = many, one
    assert y.shape == (frames, 2) and np.isfinite(y).all()
    assert len(calls) == 1
    # the chunks are entropy-decoded together, not one decoding per position
    assert entropy_calls.count("decompress_many") <= 2 and len(entropy_calls) <= 4 < P, entropy_calls[:8]


def test_writer_refuses_more_than_announced(tmp_path):
    out = tmp_path / "x.wav"
    with pytest.raises(InputError, match="announced"):
        with AudioWriter(out, 8000, 2, 10) as w:
            w.write(np.zeros((8, 2), np.float32))
            w.write(np.zeros((3, 2), np.float32))
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing left behind
