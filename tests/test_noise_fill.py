"""Noise filling: the implied spread from integer tables, the counter-based generator (integers,
exact), chunk invariance, the MSE output kept behind ``noise_fill=False`` / ``--no-noise-fill``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavelatent import container
from wavelatent.audio import compress_audio, decompress_audio, noise_seed
from wavelatent.cli import main
from wavelatent.models import create_codec
from wavelatent.noise_fill import GAIN, uniform, zero_bin_std

sf = pytest.importorskip("soundfile")
M64 = (1 << 64) - 1


def _splitmix_reference(seed: int, row: int, pos: int) -> float:
    """Pure-Python big-integer oracle of :func:`uniform` for one value."""
    z = ((((seed & 0xFFFFFFFF) << 32) | row) * 0x9E3779B97F4A7C15 + pos * 0xD1B54A32D192ED03) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return (z >> 11) * 2.0**-53 - 0.5


@pytest.fixture(scope="module")
def codec():
    return create_codec("test-audio", seed=0)


def tone(frames: int, channels: int, rate: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(frames)[:, None] / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal((frames, channels))).astype(np.float32)


def test_uniform_is_a_pure_function_of_integers():
    u = uniform(0xDEADBEEF, 3, 5, 7, row0=2)
    for i in range(3):
        for j in range(7):
            assert u[i, j] == _splitmix_reference(0xDEADBEEF, 2 + i, 5 + j)  # exact, not approximate
    # any window of positions draws the same values: chunking cannot change the noise
    whole = uniform(7, 4, 0, 1000)
    np.testing.assert_array_equal(whole[:, 300:420], uniform(7, 4, 300, 120))
    assert uniform(8, 4, 0, 1000).tolist() != whole.tolist()
    assert -0.5 <= whole.min() and whole.max() < 0.5 and abs(whole.mean()) < 0.02
    assert whole.std() == pytest.approx(1 / math.sqrt(12), rel=0.03)


def test_zero_bin_std_from_tables():
    step = 2.0
    flat = np.full((1, 5), 100, np.uint32)  # P(1) = P(0): the uniform bin
    assert zero_bin_std(flat, step)[0] == pytest.approx(GAIN * step / math.sqrt(12))
    point = np.array([[1, 0, 1000, 0, 1]])  # P(1) = 0: nothing to fill
    assert zero_bin_std(point, step)[0] == 0
    peaked = np.array([[1, 10, 1000, 10, 1], [1, 200, 1000, 200, 1], [1, 800, 1000, 800, 1]])
    s = zero_bin_std(peaked, step, gain=1.0)
    assert 0 < s[0] < s[1] < s[2] < step / math.sqrt(12)
    # Laplace of scale b restricted to [-1, 1] (numerical integral) where P(1)/P(0) says t = e^{-1/b}
    t = (math.sqrt(1 + 8 * 200 / 1000) - 1) / 2
    b = -1 / math.log(t)
    y = np.linspace(-1, 1, 200_001)
    w = np.exp(-np.abs(y) / b)
    assert s[1] == pytest.approx(math.sqrt(np.sum(y * y * w) / np.sum(w)), rel=1e-4)


def test_filled_latents_stay_in_the_zero_bin(codec):
    q = torch.tensor([[[0, 1, 0, -2, 0, 0]] * codec.config.latent_channels], dtype=torch.int32)
    quality = codec.config.default_quality
    y = codec.dequantize_filled(q, quality, seed=3, start=10)
    assert torch.equal(codec.quantize(y, quality), q)  # requantizes to the same symbols
    assert torch.equal(y[q != 0], codec.dequantize(q, quality)[q != 0])
    assert torch.count_nonzero(y[q == 0]) == int((q == 0).sum())
    # the same positions give the same noise from any start
    y2 = codec.dequantize_filled(q[..., 2:], quality, seed=3, start=12)
    assert torch.equal(y2, y[..., 2:])


def test_decompress_fills_and_keeps_the_mse_output(codec):
    x = tone(20_000, 2, 8000)
    data = compress_audio(x, 8000, codec, chunk_frames=1000)
    plain, _ = decompress_audio(data, codec, noise_fill=False)
    filled, _ = decompress_audio(data, codec)  # the default: filled
    assert filled.shape == plain.shape and not np.allclose(filled, plain)
    again, _ = decompress_audio(data, codec)
    np.testing.assert_array_equal(filled, again)  # deterministic
    for chunk in (64, 777):  # other decode chunks: the same noise at the same positions
        y, _ = decompress_audio(data, codec, chunk_frames=chunk)
        np.testing.assert_allclose(y, filled, atol=1e-5)
    # the seed follows from header fields every audio file holds, not from the chunking
    h = container.read_header(data)
    assert noise_seed(h) == noise_seed(container.read_header(compress_audio(x, 8000, codec, chunk_frames=1 << 20)))


def test_cli_no_noise_fill(tmp_path, codec):
    from wavelatent.weights import save_weights

    weights = tmp_path / "w.safetensors"
    save_weights(codec, weights)
    song, wlt = tmp_path / "song.wav", tmp_path / "s.wlt"
    sf.write(song, tone(9_000, 2, 8000), 8000, subtype="FLOAT")
    assert main(["compress", str(song), "-o", str(wlt), "-w", str(weights), "--quiet"]) == 0
    data = wlt.read_bytes()
    for flag, fill in (([], True), (["--no-noise-fill"], False)):
        out = tmp_path / f"out{len(flag)}.wav"
        assert main(["decompress", str(wlt), "-o", str(out), "-w", str(weights), "--quiet", *flag]) == 0
        got, _ = sf.read(out, dtype="float32", always_2d=True)
        want, _ = decompress_audio(data, str(weights), noise_fill=fill)
        np.testing.assert_allclose(got, want, atol=1e-6)
