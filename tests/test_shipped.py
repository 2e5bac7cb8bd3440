"""Shipped presets: trained weights load, code a real photo as well as they measured, quality is
monotonic, and per-image rate and PSNR on Kodak match the pinned table (``results/image/kodak/pinned.json``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wavelatent as wl
from wavelatent.registry import get_config, list_presets
from wavelatent.weights import has_shipped_weights

from .conftest import KODAK

SHIPPED = [p for p in list_presets() if has_shipped_weights(p) and get_config(p).modality == "image"]
# per-image rate and PSNR at every quality are pinned by scripts/pin_rd.py (test_rd_pinned)
PINNED = Path(__file__).resolve().parents[1] / "results" / "image" / "kodak" / "pinned.json"


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
@pytest.mark.parametrize("preset", [p for p in SHIPPED if get_config(p).modality == "image"])
def test_context_model_is_named_in_the_header_and_checked(photo, preset):
    """Files name their entropy model; one the codec does not hold is a HeaderError, and a stream
    read with another model than the one that wrote it fails with a typed error."""
    from wavelatent import container
    from wavelatent.errors import HeaderError, WavelatentError

    img = photo if get_config(preset).channels == 3 else photo[:, :, 0]
    data = wl.compress(img, preset)
    c = container.unpack(data)
    context = get_config(preset).context
    assert c.header["entropy"] == context and context in ("grid", "grid2")
    header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version")}
    if context == "grid2":  # read with version 1's tables (which the codec holds): a typed error
        header["entropy"] = "grid"
        with pytest.raises(WavelatentError):
            wl.decompress(container.pack(header, c.streams))
    for name in ("grid0", "checkerboard" if get_config(preset).legacy_context != "checkerboard" else "grid9"):
        header["entropy"] = name
        with pytest.raises(HeaderError, match="entropy model"):
            wl.decompress(container.pack(header, c.streams))
    del header["entropy"]  # read as the factorized model: the grid stream does not decode with it
    with pytest.raises(WavelatentError):
        wl.decompress(container.pack(header, c.streams))


def _pinned() -> dict:
    return json.loads(PINNED.read_text())


@pytest.mark.parametrize("preset", sorted(_pinned()["presets"]))
def test_rd_pinned(preset):
    """Per-image bytes (within 1 %) and PSNR-RGB (within 0.05 dB) at every quality, as pinned by
    ``scripts/pin_rd.py`` (its command and provenance are in the file)."""
    table = _pinned()
    pinned = table["presets"][preset]
    if not all((KODAK / name).exists() for name in table["images"]):
        pytest.skip("Kodak images not available")
    codec = wl.load_codec(preset)
    if codec.weights_sha256 != pinned["weights_sha256"]:
        pytest.fail(f"the weights of {preset} changed since {PINNED.name} was pinned: regenerate with `{table['command']}`")
    sys.path.insert(0, str(PINNED.parents[3] / "scripts"))
    from pin_rd import measure

    for name in table["images"]:
        for got, want in zip(measure(preset, KODAK / name), pinned["images"][name], strict=True):
            where = f"{preset} {name} q{want['quality']}"
            assert got["psnr"] == pytest.approx(want["psnr"], abs=0.05), where
            assert got["bytes"] == pytest.approx(want["bytes"], rel=0.01), where


def test_pinned_kodak_table_is_consistent_with_the_results():
    """The pinned images sit in the same range as the committed 24-image means (same presets, same scale)."""
    table = _pinned()
    root = PINNED.parent
    for preset, pinned in table["presets"].items():
        path = root / f"wavelatent-{preset}.json"
        if not path.exists():
            continue
        means = json.loads(path.read_text())["results"]
        for name, rows in pinned["images"].items():
            assert len(rows) == len(means["psnr-rgb"])
            for row, mean_psnr, mean_bpp in zip(rows, means["psnr-rgb"], means["bpp"]):
                assert abs(row["psnr"] - mean_psnr) < 6 and 0.3 < row["bpp"] / mean_bpp < 3, (preset, name, row)
