"""Shipped presets: trained weights load, code a real photo well, and quality is monotonic."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import wavelatent as wl
from wavelatent.registry import get_config, list_presets
from wavelatent.weights import has_shipped_weights

from .conftest import KODAK

SHIPPED = [p for p in list_presets() if has_shipped_weights(p) and get_config(p).modality == "image"]
# PSNR floors (dB) at the default quality on the kodim23 centre crop; measured values sit well above
FLOORS = {"image-rgb-16x": 26.0, "image-rgb-4x": 30.0, "image-gray-16x": 24.0}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    path = KODAK / "kodim23.png"
    if not path.exists():
        pytest.skip("Kodak images not available")
    im = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(im[128:384, 256:512])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_default_presets_ship():
    assert "image-rgb-16x" in SHIPPED, "the README's main job needs image-rgb-16x weights in the package"


@pytest.mark.parametrize("preset", SHIPPED)
def test_quality_and_rate(preset, photo):
    codec = wl.load_codec(preset)
    cfg = codec.config
    img = photo if cfg.channels == 3 else np.asarray(Image.fromarray(photo).convert("L"))
    sizes, scores = [], []
    for quality in range(1, cfg.qualities + 1):
        data = wl.compress(img, preset, quality)
        out = wl.decompress(data)
        assert out.shape == img.shape
        sizes.append(len(data))
        scores.append(psnr(out, img))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), f"rates not increasing: {sizes}"
    assert scores == sorted(scores), f"PSNR not increasing with quality: {scores}"
    assert scores[cfg.default_quality - 1] >= FLOORS.get(preset, 20.0)
    assert 8 * sizes[-1] / img.shape[0] / img.shape[1] < 8.0  # always smaller than raw 8-bit grayscale


def test_context_model_is_named_in_the_header_and_checked(photo):
    from wavelatent import container
    from wavelatent.errors import HeaderError

    if "image-rgb-4x" not in SHIPPED or get_config("image-rgb-4x").context != "checkerboard":
        pytest.skip("no shipped context-model preset")
    data = wl.compress(photo, "image-rgb-4x")
    c = container.unpack(data)
    assert c.header["entropy"] == "checkerboard"
    header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version", "entropy")}
    with pytest.raises(HeaderError, match="entropy model"):
        wl.decompress(container.pack(header, c.streams))
    # the factorized tables cannot decode the context-coded stream either way
    header["entropy"] = "none"
    with pytest.raises(HeaderError):
        wl.decompress(container.pack(header, c.streams))
