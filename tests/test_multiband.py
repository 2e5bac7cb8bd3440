"""N-channel / 16-bit / float arrays: spectral KLT + a 1-channel preset."""
from __future__ import annotations

import numpy as np
import pytest

import wavelatent as wl
from wavelatent.cli import main
from wavelatent.errors import InputError, UnsupportedInputError
from wavelatent.models import create_codec
from wavelatent.multiband import klt

from .conftest import smooth_image


@pytest.fixture(scope="module")
def gray():
    return create_codec("test-gray", seed=0)


def spectral_stack(h: int, w: int, bands: int, dtype=np.uint16, seed: int = 0) -> np.ndarray:
    """Smooth spectra: each band a different mixture of three base images (like a real scene)."""
    base = smooth_image(h, w, 3, seed=seed).astype(np.float64) / 255
    lam = np.linspace(0, 1, bands)
    mix = np.stack([np.exp(-((lam - c) ** 2) / 0.08) for c in (0.2, 0.5, 0.8)], 1)  # [N, 3]
    x = base @ mix.T / mix.sum(1)
    if dtype == np.uint16:
        return np.round(x * 60000 + 1000).astype(np.uint16)
    return x.astype(dtype)


def test_klt_is_orthonormal_and_invertible():
    x = np.random.default_rng(0).normal(size=(500, 7)) @ np.random.default_rng(1).normal(size=(7, 7))
    mean, basis = klt(x)
    np.testing.assert_allclose(basis.T @ basis, np.eye(7), atol=1e-10)
    np.testing.assert_allclose(((x - mean) @ basis) @ basis.T + mean, x, atol=1e-10)
    var = ((x - mean) @ basis).var(0)
    assert (np.diff(var) <= 1e-9).all()  # decreasing variance


@pytest.mark.parametrize("bands, dtype", [(31, np.uint16), (5, np.float32), (1, np.uint16), (6, np.uint8)])
def test_round_trip(gray, bands, dtype):
    x = spectral_stack(33, 47, bands, dtype)
    data = wl.compress(x, gray)
    out = wl.decompress(data, gray)
    assert out.shape == (33, 47, bands) and out.dtype == x.dtype
    info = wl.read_info(data)
    assert info["modality"] == "multiband" and info["bands"] == bands
    # the tensor path gives the same components: decoding is deterministic
    np.testing.assert_array_equal(out, wl.decompress(data, gray))


def test_errors(gray):
    with pytest.raises(InputError, match="1-channel"):
        wl.compress(spectral_stack(16, 16, 8), create_codec("test-image", seed=0))
    with pytest.raises(UnsupportedInputError):
        wl.compress(np.zeros((8, 8, 8), np.int32), gray)
    with pytest.raises(InputError, match="NaN"):
        wl.compress(np.full((8, 8, 8), np.nan, np.float32), gray)


def test_cli_npy_and_tiff(gray, tmp_path, capsys):
    from wavelatent.weights import save_weights

    w = tmp_path / "gray.safetensors"
    save_weights(gray, w)
    x = spectral_stack(24, 20, 31)
    np.save(tmp_path / "cube.npy", x)
    import tifffile

    tifffile.imwrite(tmp_path / "cube.tif", x, photometric="minisblack")
    for name in ("cube.npy", "cube.tif"):
        src, wlt, out = tmp_path / name, tmp_path / (name + ".wlt"), tmp_path / ("out_" + name)
        assert main(["compress", str(src), "-o", str(wlt), "-w", str(w)]) == 0
        assert main(["decompress", str(wlt), "-o", str(out), "-w", str(w), "--reference", str(src)]) == 0
        assert "PSNR" in capsys.readouterr().err
    assert np.load(tmp_path / "out_cube.npy").shape == x.shape
    assert tifffile.imread(tmp_path / "out_cube.tif").shape == x.shape
    assert main(["decompress", str(tmp_path / "cube.npy.wlt"), "-o", str(tmp_path / "bad.png"), "-w", str(w)]) == 1
