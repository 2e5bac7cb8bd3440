"""Wavelet packet transforms: PyWavelets as oracle, perfect reconstruction, gradients, errors."""
from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wavelatent.errors import InputError
from wavelatent.transforms import analysis_1d, analysis_2d, analysis_2d_approximation, synthesis_1d, synthesis_2d, wavelets
from wavelatent.transforms.wavelets import analysis_halo, synthesis_halo


def _packets_1d(x: torch.Tensor, levels: int) -> torch.Tensor:
    """PyWavelets oracle: ``[B, C, L]`` -> ``[B, C * 2**levels, L / 2**levels]``."""
    pywt = pytest.importorskip("pywt")
    paths = ["".join(p) for p in itertools.product("ad", repeat=levels)]
    out = []
    for signal in x.reshape(-1, x.shape[-1]).numpy():
        packet = pywt.WaveletPacket(signal, "bior4.4", mode="periodization", maxlevel=levels)
        out.extend(torch.from_numpy(packet[path].data) for path in paths)
    return torch.stack(out).reshape(x.shape[0], -1, x.shape[-1] >> levels)


def _packets_2d(x: torch.Tensor, levels: int) -> torch.Tensor:
    """PyWavelets oracle: ``[B, C, H, W]`` -> ``[B, C * 4**J, H / 2**J, W / 2**J]``, J = levels."""
    pywt = pytest.importorskip("pywt")
    paths = ["".join(p) for p in itertools.product("ahvd", repeat=levels)]
    out = []
    for image in x.reshape(-1, *x.shape[-2:]).numpy():
        packet = pywt.WaveletPacket2D(image, "bior4.4", mode="periodization", maxlevel=levels)
        out.extend(torch.from_numpy(packet[path].data) for path in paths)
    return torch.stack(out).reshape(x.shape[0], -1, x.shape[-2] >> levels, x.shape[-1] >> levels)


def _randn(*shape: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- oracle
@pytest.mark.parametrize(
    ("shape", "levels"),
    [
        ((1, 1, 8), 1),
        ((2, 3, 16), 2),
        ((1, 5, 24), 3),
        ((3, 1, 64), 3),
        ((2, 3, 8), 3),  # deepest bands have length 1: wrap exceeds the signal
        ((1, 2, 64), 4),
    ],
)
def test_analysis_1d_matches_pywavelets(shape: tuple[int, ...], levels: int) -> None:
    x = _randn(*shape)
    coeffs = analysis_1d(x, levels)
    expected = _packets_1d(x, levels)
    assert coeffs.shape == (shape[0], shape[1] * 2**levels, shape[2] // 2**levels)
    torch.testing.assert_close(coeffs, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("shape", "levels"),
    [
        ((1, 1, 8, 8), 1),
        ((2, 3, 16, 24), 1),
        ((1, 3, 32, 16), 2),
        ((2, 5, 8, 24), 2),
        ((1, 1, 24, 40), 3),
        ((2, 3, 16, 8), 3),  # deepest bands 2 x 1: wrap exceeds the signal
        ((1, 1, 32, 48), 4),
    ],
)
def test_analysis_2d_matches_pywavelets(shape: tuple[int, ...], levels: int) -> None:
    x = _randn(*shape)
    coeffs = analysis_2d(x, levels)
    expected = _packets_2d(x, levels)
    factor = 2**levels
    assert coeffs.shape == (shape[0], shape[1] * 4**levels, shape[2] // factor, shape[3] // factor)
    torch.testing.assert_close(coeffs, expected, rtol=0, atol=1e-10)


def test_synthesis_2d_matches_pywavelets_reconstruction() -> None:
    pywt = pytest.importorskip("pywt")
    x = _randn(1, 1, 16, 24)
    packet = pywt.WaveletPacket2D(x[0, 0].numpy(), "bior4.4", mode="periodization", maxlevel=2)
    packet.get_level(2)  # decompose the full tree
    expected = torch.from_numpy(packet.reconstruct(update=False))
    x_hat = synthesis_2d(analysis_2d(x, 2), 2)
    torch.testing.assert_close(x_hat[0, 0], expected, rtol=0, atol=1e-10)


def test_single_band_is_one_channel_of_the_expected_order() -> None:
    """Band 1 of a 2D level-1 analysis is PyWavelets' ``h`` (cH) of the first channel."""
    pywt = pytest.importorskip("pywt")
    x = _randn(1, 2, 16, 16)
    _, (c_h, c_v, _) = pywt.dwt2(x[0, 1].numpy(), "bior4.4", mode="periodization")
    coeffs = analysis_2d(x, 1)
    torch.testing.assert_close(coeffs[0, 4 + 1], torch.from_numpy(c_h), rtol=0, atol=1e-10)
    torch.testing.assert_close(coeffs[0, 4 + 2], torch.from_numpy(c_v), rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- reconstruction
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("levels", [0, 1, 2, 3, 4])
def test_perfect_reconstruction_1d(dtype: torch.dtype, levels: int) -> None:
    x = _randn(2, 3, 48 * 16, dtype=dtype)
    x_hat = synthesis_1d(analysis_1d(x, levels), levels)
    assert x_hat.shape == x.shape and x_hat.dtype == dtype
    assert (x_hat - x).abs().max().item() < (1e-10 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("levels", [0, 1, 2, 3, 4])
def test_perfect_reconstruction_2d(dtype: torch.dtype, levels: int) -> None:
    x = _randn(2, 3, 64, 48, dtype=dtype)
    x_hat = synthesis_2d(analysis_2d(x, levels), levels)
    assert x_hat.shape == x.shape and x_hat.dtype == dtype
    assert (x_hat - x).abs().max().item() < (1e-10 if dtype == torch.float64 else 1e-5)


def test_synthesis_inverts_analysis_from_the_coefficient_side() -> None:
    coeffs = _randn(2, 3 * 16, 4, 6)
    torch.testing.assert_close(analysis_2d(synthesis_2d(coeffs, 2), 2), coeffs, rtol=0, atol=1e-10)


def test_levels_zero_is_identity() -> None:
    x = _randn(2, 3, 5, 7)
    assert torch.equal(analysis_2d(x, 0), x) and torch.equal(synthesis_2d(x, 0), x)
    assert torch.equal(analysis_1d(x[:, :, 0], 0), x[:, :, 0])
    assert torch.equal(synthesis_1d(x[:, :, 0], 0), x[:, :, 0])


@settings(max_examples=15, deadline=None)
@given(
    batch=st.integers(1, 2),
    channels=st.integers(1, 4),
    levels=st.integers(0, 3),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    double=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_perfect_reconstruction_2d_random_shapes(
    batch: int, channels: int, levels: int, height: int, width: int, double: bool, seed: int
) -> None:
    dtype = torch.float64 if double else torch.float32
    x = _randn(batch, channels, height * 2**levels, width * 2**levels, dtype=dtype, seed=seed)
    coeffs = analysis_2d(x, levels)
    assert coeffs.shape == (batch, channels * 4**levels, height, width)
    x_hat = synthesis_2d(coeffs, levels)
    assert (x_hat - x).abs().max().item() < (1e-10 if double else 1e-5)


@settings(max_examples=15, deadline=None)
@given(
    batch=st.integers(1, 2),
    channels=st.integers(1, 4),
    levels=st.integers(0, 4),
    length=st.integers(1, 9),
    double=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_perfect_reconstruction_1d_random_shapes(
    batch: int, channels: int, levels: int, length: int, double: bool, seed: int
) -> None:
    dtype = torch.float64 if double else torch.float32
    x = _randn(batch, channels, length * 2**levels, dtype=dtype, seed=seed)
    coeffs = analysis_1d(x, levels)
    assert coeffs.shape == (batch, channels * 2**levels, length)
    x_hat = synthesis_1d(coeffs, levels)
    assert (x_hat - x).abs().max().item() < (1e-10 if double else 1e-5)


def test_linearity_and_near_energy_preservation() -> None:
    x, y = _randn(1, 2, 32, 32, seed=1), _randn(1, 2, 32, 32, seed=2)
    torch.testing.assert_close(
        analysis_2d(2 * x - y, 2), 2 * analysis_2d(x, 2) - analysis_2d(y, 2), rtol=0, atol=1e-10
    )
    ratio = analysis_2d(x, 2).square().sum() / x.square().sum()
    assert 0.8 < ratio.item() < 1.25  # biorthogonal, close to orthogonal


# --------------------------------------------------------------------------- fast path
@pytest.mark.parametrize(
    ("shape", "levels"),
    [
        ((2, 3, 64, 48), 1),
        ((2, 3, 64, 48), 2),
        ((1, 3, 64, 96), 3),
        ((2, 2, 8, 40), 3),  # one block row: shorter than the equivalent filters (57 taps)
        ((1, 1, 24, 8), 3),  # 3 x 1 blocks: group sizes that divide or not
        ((1, 2, 16, 48), 4),
        ((1, 1, 64, 32), 5),
    ],
)
def test_fast_path_equals_level_by_level_reference(shape: tuple[int, ...], levels: int) -> None:
    x = _randn(*shape)
    coeffs = _randn(shape[0], shape[1] * 4**levels, shape[2] >> levels, shape[3] >> levels, seed=1)
    torch.testing.assert_close(analysis_2d(x, levels), wavelets._analysis_2d_levels(x, levels), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        synthesis_2d(coeffs, levels), wavelets._synthesis_2d_levels(coeffs, levels), rtol=0, atol=1e-12
    )
    signal = x.flatten(2)
    bands = _randn(shape[0], shape[1] * 2**levels, signal.shape[-1] >> levels, seed=2)
    torch.testing.assert_close(
        analysis_1d(signal, levels), wavelets._analysis_1d_levels(signal, levels), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        synthesis_1d(bands, levels), wavelets._synthesis_1d_levels(bands, levels), rtol=0, atol=1e-12
    )


def test_equivalent_filters() -> None:
    """``levels`` levels = one bank of ``2**levels`` filters of ``8 * (2**levels - 1) + 1`` taps."""
    for levels in range(1, 7):
        bank = wavelets._bank(levels)
        assert bank.analysis.shape == (2**levels, 8 * (2**levels - 1) + 1)
        assert bank.synthesis.shape[:2] == (2**levels, 2**levels)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_halos_bound_the_dependencies(levels: int) -> None:
    """Changing the samples of block row ``m`` changes coefficient rows ``m - after .. m + before``
    only (analysis), and coefficient row ``m`` changes output block rows ``m - after .. m + before``."""
    s, blocks, m = 2**levels, 16, 8
    x = _randn(1, 1, blocks * s, 2 * s)
    bumped = x.clone()
    bumped[:, :, m * s : (m + 1) * s] += 1
    changed = (analysis_2d(bumped, levels) - analysis_2d(x, levels)).abs().amax(dim=(0, 1, 3)).gt(1e-12)
    before, after = analysis_halo(levels)
    assert changed.nonzero().flatten().tolist() == list(range(m - after, m + before + 1))
    coeffs = _randn(1, 4**levels, blocks, 2)
    bumped = coeffs.clone()
    bumped[:, :, m] += 1
    diff = (synthesis_2d(bumped, levels) - synthesis_2d(coeffs, levels)).abs().amax(dim=(0, 1, 3))
    changed = diff.view(blocks, s).amax(1).gt(1e-12)
    before, after = synthesis_halo(levels)
    assert changed.nonzero().flatten().tolist() == list(range(m - after, m + before + 1))


def test_filters_cached_in_inference_mode_work_with_autograd() -> None:
    wavelets._analysis_matrix.cache_clear()
    wavelets._synthesis_matrix.cache_clear()
    x = _randn(1, 1, 16, 16).requires_grad_()
    with torch.inference_mode():  # first use builds and caches the matrices
        synthesis_2d(analysis_2d(x.detach(), 2), 2)
    synthesis_2d(analysis_2d(x, 2), 2).sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, torch.ones_like(x), atol=1e-10)


# --------------------------------------------------------------------------- autograd
@pytest.mark.parametrize("levels", [1, 2])
def test_gradcheck_1d(levels: int) -> None:
    x = _randn(2, 1, 8).requires_grad_()
    coeffs = _randn(2, 2**levels, 8 >> levels, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: analysis_1d(t, levels), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda t: synthesis_1d(t, levels), (coeffs,), fast_mode=True)


@pytest.mark.parametrize("levels", [1, 2])
def test_gradcheck_2d(levels: int) -> None:
    x = _randn(1, 1, 4, 8).requires_grad_()
    coeffs = _randn(1, 4**levels, 4 >> levels, 8 >> levels, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: analysis_2d(t, levels), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda t: synthesis_2d(t, levels), (coeffs,), fast_mode=True)


def test_float32_in_float32_out_and_gradient_flows() -> None:
    x = _randn(1, 3, 16, 16, dtype=torch.float32).requires_grad_()
    coeffs = analysis_2d(x, 2)
    assert coeffs.dtype == torch.float32
    synthesis_2d(coeffs, 2).square().sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, 2 * x.detach(), atol=1e-4)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("function", "x", "levels", "match"),
    [
        (analysis_1d, torch.zeros(2, 16), 1, "shape"),
        (analysis_1d, torch.zeros(1, 1, 2, 16), 1, "shape"),
        (analysis_1d, torch.zeros(1, 1, 12), 3, "divisible"),
        (analysis_1d, torch.zeros(1, 1, 16), -1, ">= 0"),
        (analysis_1d, torch.zeros(1, 1, 16, dtype=torch.int64), 1, "floating"),
        (synthesis_1d, torch.zeros(1, 16), 1, "shape"),
        (synthesis_1d, torch.zeros(1, 3, 4), 1, "divisible"),
        (synthesis_1d, torch.zeros(1, 4, 4), -2, ">= 0"),
        (analysis_2d, torch.zeros(1, 16, 16), 1, "shape"),
        (analysis_2d, torch.zeros(1, 1, 1, 16, 16), 1, "shape"),
        (analysis_2d, torch.zeros(1, 1, 16, 12), 3, "divisible"),
        (analysis_2d, torch.zeros(1, 1, 12, 16), 3, "divisible"),
        (analysis_2d, torch.zeros(1, 1, 16, 16), -1, ">= 0"),
        (analysis_2d, torch.zeros(1, 1, 16, 16), 1.0, "int"),
        (synthesis_2d, torch.zeros(1, 4, 4), 1, "shape"),
        (synthesis_2d, torch.zeros(1, 8, 4, 4), 2, "divisible"),
        (synthesis_2d, torch.zeros(1, 4, 4, 4), -1, ">= 0"),
    ],
)
def test_input_errors(
    function: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor, levels: int, match: str
) -> None:
    with pytest.raises(InputError, match=match):
        function(x, levels)


@pytest.mark.parametrize(("shape", "levels"), [((2, 3, 64, 96), 3), ((1, 1, 8, 16), 3), ((1, 2, 8, 8), 2),
                                               ((1, 1, 4, 6), 1), ((1, 3, 16, 8), 3), ((1, 1, 32, 32), 4)])
def test_approximation_subtree_is_the_first_quarter_of_each_channel(shape: tuple[int, ...], levels: int) -> None:
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    full = analysis_2d(x, levels)
    n = 4**levels
    keep = [c * n + k for c in range(shape[1]) for k in range(n // 4)]
    part = analysis_2d_approximation(x, levels)
    assert part.shape == (shape[0], len(keep), shape[2] >> levels, shape[3] >> levels)
    torch.testing.assert_close(part, full[:, keep], atol=1e-12, rtol=0)
    channels_last = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # pixels' memory order
    torch.testing.assert_close(analysis_2d_approximation(channels_last, levels), full[:, keep], atol=1e-12, rtol=0)
    pixels = (x.abs() * 40).to(torch.uint8)  # integer input: float32 coefficients of the same values
    ref = analysis_2d(pixels.double(), levels)[:, keep].float()
    for p in (pixels, pixels.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)):
        torch.testing.assert_close(analysis_2d_approximation(p, levels), ref, atol=2e-3, rtol=1e-5)
    with pytest.raises(InputError):
        analysis_2d_approximation(x, 0)
    with pytest.raises(InputError):
        analysis_2d_approximation(x[..., :-1], levels)
