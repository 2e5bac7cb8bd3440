"""TAEF2 baseline: strict loading, shapes, 8-bit mosaic, honest bpp, refusal of pickled payloads.

Skipped where the TAEF2 weights folder (../shared/data/reference/taef2) is missing. 64x64 images."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from .conftest import KODAK, smooth_image
from wavelatent.errors import BadMagicError, ChecksumError, InputError, TruncatedError, WeightsError
from wavelatent.evaluate import taef2
from wavelatent.evaluate.metrics import bpp, psnr

pytestmark = pytest.mark.skipif(not taef2.available()[0], reason="TAEF2 weights folder not found")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: tiny images, and a shared busy machine."""
    from wavelatent.evaluate.metrics import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def models():
    return taef2.load_taef2()


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    """A 64x64 crop of a Kodak image (a synthetic one where Kodak is absent)."""
    path = KODAK / "kodim23.png"
    if path.is_file():
        return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[200:264, 300:364])
    return smooth_image(64, 64)


def test_strict_state_dict_load(models, tmp_path):
    enc, dec = models
    d = taef2.default_dir()
    for module, file in ((enc, taef2.ENCODER_FILE), (dec, taef2.DECODER_FILE)):
        sd = taef2.load_state_dict(d / file)
        assert set(sd) == set(module.state_dict())  # every key, none extra
        assert sum(v.numel() for v in sd.values()) == sum(p.numel() for p in module.parameters())
    # one key too many (or too few) is refused, not silently ignored
    sd = taef2.load_state_dict(d / taef2.ENCODER_FILE)
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / taef2.ENCODER_FILE)
    torch.save(taef2.load_state_dict(d / taef2.DECODER_FILE), tmp_path / taef2.DECODER_FILE)
    with pytest.raises(WeightsError, match="does not match"):
        taef2.load_taef2(tmp_path)


def test_encode_decode_shapes(models, img):
    y = taef2.taef2_encode(np.stack([img, img[::-1]]))
    assert y.shape == (2, 32, 8, 8) and y.dtype == np.float32
    odd = taef2.taef2_encode(img[None, :60, :52])  # padded to 64x56
    assert odd.shape == (1, 32, 8, 7)
    _, dec = models
    with torch.inference_mode():
        assert dec(torch.from_numpy(y)).shape == (2, 3, 64, 64)
    with pytest.raises(InputError):
        taef2.taef2_encode(img.astype(np.float32)[None])


def test_mosaic_round_trip_is_lossless(models, img):
    rng = np.random.default_rng(0)
    for q in (rng.integers(0, 256, (32, 5, 7), dtype=np.uint8),
              taef2.quantize_latents(torch.from_numpy(taef2.taef2_encode(img[None])[0]))):
        h, w = q.shape[1:]
        assert np.array_equal(taef2.unmosaic(taef2.mosaic(q), h, w), q)
        for fmt in ("png8", "webp8"):
            assert np.array_equal(taef2.mosaic_from_bytes(taef2.mosaic_bytes(q, fmt), h, w, fmt), q)
    assert taef2.mosaic(np.arange(32, dtype=np.uint8).reshape(32, 1, 1)).shape == (4, 8)


def test_baseline_bpp_and_quality(img):
    from wavelatent.evaluate.codecs import make_baselines

    codecs = make_baselines("taef2,taef2-webp8")
    assert [c.name for c in codecs] == ["taef2-png8", "taef2-float32", "taef2-webp8"]
    got = {}
    for c in codecs:
        assert c.reduction == 6.0 and c.points() == [c.variant]
        data = c.compress(img, c.variant)
        rec = c.decompress(data)
        assert rec.shape == img.shape and rec.dtype == np.uint8
        assert bpp(data, 64, 64) == 8 * len(data) / (64 * 64)
        got[c.variant] = (len(data), psnr(img, rec))
    assert got["float32"][0] == 16 + 4 * 32 * 8 * 8 + 4  # header + raw float32 latents (16 bpp) + CRC
    assert got["float32"][1] > 22 and got["png8"][1] > got["float32"][1] - 1.5
    assert got["png8"][0] < got["float32"][0] / 3
    clone = pickle.loads(pickle.dumps(codecs[0]))
    assert clone._models is None and clone.decompress(codecs[0].compress(img)).shape == img.shape
    gray = img[:, :, 1]
    assert codecs[0].decompress(codecs[0].compress(gray)).shape == gray.shape


def test_corrupt_files_raise_typed_errors(img):
    c = taef2.TAEF2Codec("png8")
    data = c.compress(img)
    with pytest.raises(BadMagicError):
        c.decompress(b"XXXX" + data[4:])
    with pytest.raises(TruncatedError):
        c.decompress(data[:10])
    with pytest.raises(ChecksumError):
        c.decompress(data[:-20])
    with pytest.raises(ChecksumError):
        c.decompress(data[:40] + bytes([data[40] ^ 1]) + data[41:])


class _Payload:
    """Unpickling this would create a folder: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_loader_refuses_pickled_payloads(tmp_path):
    marker = tmp_path / "payload-ran"
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"0.weight": _Payload(str(marker))}, protocol=2))
    zipped = tmp_path / "zipped.pth"
    torch.save({"0.weight": _Payload(str(marker))}, zipped)
    for path in (plain, zipped):
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True, map_location="cpu")
        with pytest.raises(WeightsError, match="refused"):
            taef2.load_state_dict(path)
    assert not marker.exists()
    (tmp_path / taef2.ENCODER_FILE).write_bytes(plain.read_bytes())
    (tmp_path / taef2.DECODER_FILE).write_bytes(plain.read_bytes())
    with pytest.raises(WeightsError):
        taef2.load_taef2(tmp_path)
    with pytest.raises(WeightsError, match="no such"):
        taef2.load_state_dict(tmp_path / "missing.pth")
    assert not marker.exists()


def test_evaluate_and_bench_with_taef2(img, tmp_path, test_weights):
    from wavelatent.bench import bench
    from wavelatent.evaluate import evaluate
    from wavelatent.evaluate.codecs import WavelatentCodec, make_baseline, make_baselines
    from wavelatent.evaluate.metrics import torch_threads

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(img).save(folder / "a.png")
    codecs = [WavelatentCodec(test_weights), make_baseline("jpeg", (30, 80)), *make_baselines("taef2")]
    with torch_threads(1):
        r = evaluate(folder, tmp_path / "eval", codecs, progress=False, log=None)
    assert r.curves["taef2-png8"]["reduction"] == 6.0 and r.curves["jpeg"]["reduction"] is None
    assert r.curves["wavelatent-test-image"]["reduction"] == 8.0
    doc = json.loads((tmp_path / "eval" / "taef2-png8.json").read_text())
    assert doc["reduction"] == 6.0 and doc["results"]["bpp"][0] == r.rows[-2]["bpp"]
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert "| taef2-png8 | png8 | 6x |" in summary and "| jpeg | 30 | n/a |" in summary
    assert "<td>6x</td>" in (tmp_path / "eval" / "report.html").read_text()
    assert (tmp_path / "eval" / "crop_taef2-png8_qpng8.png").is_file()

    b = bench([img], presets=[], baselines=["jpeg", "taef2-png8"], threads=1, repeats=1, warmup=0, memory=False)
    row = b.rows[1]
    assert row.codec == "taef2-png8" and row.encode_mps > 0 and row.latent_mps > 0
    assert row.params == {"encoder": 1338528, "decoder": 1338499}
    assert row.macs_per_pixel["encoder"] > 0 and "taef2-png8" in b.table()


def test_learn_input_type(img):
    inputs = pytest.importorskip("wavelatent.learn.inputs")
    spec = inputs.get_input("taef2")
    x = np.stack([img, img])
    assert spec.features(x).shape == (2, 32, 8, 8)
    disk = spec.disk_bytes(x)
    assert disk["raw"] == 32 * 8 * 8 * 4 and 0 < disk["coded"] < disk["raw"]
