"""Evaluation (codecs, metrics, BD, reports, CLI) and the benchmark, on tiny synthetic images."""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import smooth_image
from wavelatent.evaluate import bd, metrics
from wavelatent.evaluate.codecs import PillowCodec, WavelatentCodec, make_baseline, make_baselines

SIZES = [(48, 64), (56, 40), (64, 64)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("images")
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(smooth_image(h, w, seed=i)).save(d / f"img{i}.png")
    return d


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("refs")
    doc = {"name": "Published", "description": "a synthetic reference",
           "results": {"bpp": [0.5, 1.0, 2.0], "psnr-rgb": [28.0, 31.0, 34.0], "ms-ssim-rgb": [0.9, 0.95, 0.98]}}
    (d / "published.json").write_text(json.dumps(doc))
    (d / "broken.json").write_text("{not json")
    return d


def _codecs(weights: Path) -> list:
    return [WavelatentCodec(weights), make_baseline("jpeg", (30, 80)), make_baseline("webp", (30, 80))]


@pytest.fixture(scope="module")
def result(folder, references, test_weights, tmp_path_factory):
    from wavelatent.evaluate import evaluate

    out = tmp_path_factory.mktemp("eval")
    with metrics.torch_threads(1):  # tiny images: threads only cost time on a busy machine
        return evaluate(folder, out, _codecs(test_weights), reference=references, progress=False, log=None)


# --------------------------------------------------------------------------- outputs
def test_outputs_exist(result):
    out = result.out_dir
    names = [c for c in result.curves]
    assert names == ["wavelatent-test-image", "jpeg", "webp"]
    for name in names:
        doc = json.loads((out / f"{name}.json").read_text())
        assert set(doc) >= {"name", "description", "results"}
        assert set(doc["results"]) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "psnr-y", "encoding_time", "decoding_time"}
        assert all(len(v) == len(doc["meta"]["points"]) for v in doc["results"].values())
    for f in ("results.csv", "bd.json", "report.html", "rd_psnr.png", "rd_psnr.svg", "rd_msssim.png",
              "rd_msssim.svg", "crop_original.png"):
        assert (out / f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == len(SIZES) * (3 + 2 + 2)
    html = (out / "report.html").read_text()
    assert "rd_psnr.svg" in html and "crop_original.png" in html and "BD-rate" in html
    assert "published.json" in html  # the reference is named with its source
    assert any("broken.json" in n for n in result.notes)
    assert any("MS-SSIM" in n for n in result.notes)  # tiny images: fewer scales, and it says so
    crops = sorted(p.name for p in out.glob("crop_*.png"))
    assert len(crops) == 4 and any(c.startswith("crop_jpeg_q") for c in crops)


def test_bpp_is_from_the_real_bytes(result, folder, test_weights):
    codecs = {c.name: c for c in _codecs(test_weights)}
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
    for name, doc in result.curves.items():
        for i, p in enumerate(doc["meta"]["points"]):
            want = np.mean([8 * len(codecs[name].compress(im, p)) / (im.shape[0] * im.shape[1]) for im in imgs])
            assert doc["results"]["bpp"][i] == pytest.approx(want, rel=1e-12)


def test_psnr_matches_an_independent_computation(result, folder):
    row = next(r for r in result.rows if r["codec"] == "jpeg" and r["param"] == 30 and r["image"] == "img1.png")
    img = np.asarray(Image.open(folder / "img1.png").convert("RGB"))
    rec = np.asarray(Image.open(__import__("io").BytesIO(make_baseline("jpeg", (30,)).compress(img, 30))))
    a, b = img.astype(np.float64), rec.astype(np.float64)
    assert row["psnr_rgb"] == pytest.approx(10 * np.log10(255**2 / np.mean((a - b) ** 2)), abs=1e-9)
    ya, yb = a @ [0.299, 0.587, 0.114], b @ [0.299, 0.587, 0.114]
    assert row["psnr_y"] == pytest.approx(10 * np.log10(255**2 / np.mean((ya - yb) ** 2)), abs=1e-9)
    means = result.curves["jpeg"]["results"]["psnr-rgb"][0]
    assert means == pytest.approx(np.mean([r["psnr_rgb"] for r in result.rows
                                           if r["codec"] == "jpeg" and r["param"] == 30]))


def test_bd_of_a_codec_against_itself_is_zero(result):
    anchor = next(r for r in result.bd if r["codec"] == "jpeg")
    for key in ("bd_rate_psnr_rgb", "bd_psnr_rgb", "bd_rate_psnr_y", "bd_rate_ms_ssim"):
        assert abs(anchor[key]) < 1e-9
    saved = json.loads((result.out_dir / "bd.json").read_text())
    assert [r["codec"] for r in saved] == [r["codec"] for r in result.bd]


# --------------------------------------------------------------------------- BD
@pytest.mark.parametrize("method", bd.METHODS)
def test_bd_known_synthetic_case(method):
    rate = np.array([0.25, 0.5, 1.0, 2.0])
    psnr = 30 + 6 * np.log2(rate) + 0.3 * np.log2(rate) ** 2
    # 20 % fewer bits at every quality; 1 dB more at every rate.
    assert bd.bd_rate(rate, psnr, 0.8 * rate, psnr, method=method) == pytest.approx(-20.0, abs=1e-9)
    assert bd.bd_psnr(rate, psnr, rate, psnr + 1, method=method) == pytest.approx(1.0, abs=1e-9)
    assert bd.bd_rate(rate, psnr, rate, psnr, method=method) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(bd.bd_rate(rate, psnr, rate, psnr + 100, method=method))  # no overlap


def test_bd_cubic_and_pchip_differ_between_points():
    rate = np.array([0.1, 0.3, 0.9, 2.7])
    pa = np.array([28.0, 31.0, 34.5, 36.0])
    pt = np.array([28.5, 31.2, 35.5, 36.2])
    c, p = (bd.bd_rate(rate, pa, rate, pt, method=m) for m in bd.METHODS)
    assert c < 0 and p < 0 and c != pytest.approx(p, abs=1e-6)


# --------------------------------------------------------------------------- metrics and codecs
def test_ms_ssim_scales_and_fallback():
    assert metrics.ms_ssim_scales(161, 500) == 5
    assert metrics.ms_ssim_scales(160, 500) == 4
    assert metrics.ms_ssim_scales(48, 64) == 3
    assert metrics.ms_ssim_scales(10, 10) == 0
    img = smooth_image(8, 8)
    value, scales = metrics.ms_ssim(img, img)
    assert scales == 0 and math.isnan(value)
    # The fallback loop with 5 scales is pytorch_msssim's ms_ssim.
    import torch
    from pytorch_msssim import ms_ssim

    a, b = smooth_image(168, 168, seed=1), smooth_image(168, 168, seed=2)
    x, y = (torch.from_numpy(v.astype(np.float32)).permute(2, 0, 1)[None] for v in (a, b))
    with metrics.torch_threads(1):
        want = float(ms_ssim(x, y, data_range=255))
        assert metrics._ms_ssim_fewer(x, y, 5) == pytest.approx(want, abs=1e-6)
    assert metrics.ms_ssim(a, b) == (pytest.approx(want, abs=1e-6), 5)


def test_baselines_and_codecs(test_weights):
    img = smooth_image(32, 48)
    for c in make_baselines("jpeg,webp"):
        assert isinstance(c, PillowCodec) and c.decompress(c.compress(img, 50)).shape == img.shape
    with pytest.raises(Exception, match="unknown baseline"):
        make_baselines("gif")
    wl = WavelatentCodec(test_weights)
    assert wl.points() == [1, 2, 3] and wl.default_point == 2
    import pickle

    clone = pickle.loads(pickle.dumps(wl))
    assert clone._codec is None and clone.compress(img, 1) == wl.compress(img, 1)


def test_presets_without_weights_are_skipped():
    from wavelatent.evaluate.codecs import load_wavelatent_codecs
    from wavelatent.weights import has_shipped_weights

    messages: list[str] = []
    got = load_wavelatent_codecs(["image-rgb-4x", "image-gray-16x"], log=messages.append)
    assert len(got) == int(has_shipped_weights("image-rgb-4x"))
    assert any("image-gray-16x" in m for m in messages)


# --------------------------------------------------------------------------- CLI (via add_parsers)
def _cli(argv: list[str]) -> int:
    from wavelatent.cli.evaluate import add_parsers

    p = argparse.ArgumentParser()
    handlers = add_parsers(p.add_subparsers(dest="command"))
    a = p.parse_args(argv)
    return handlers[a.command](a)


def test_cli_evaluate_with_a_process_pool(folder, test_weights, tmp_path, result, capsys):
    out = tmp_path / "cli"
    argv = ["evaluate", str(folder), "-o", str(out), "--presets", "none", "--weights", str(test_weights),
            "--baselines", "jpeg", "--jobs", "2", "--limit", "2", "--no-progress"]
    assert _cli(argv) == 0
    assert "BD vs jpeg" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "results.csv")))
    serial = {(r["image"], r["codec"], str(r["param"])): r["bytes"] for r in result.rows}
    from wavelatent.evaluate.codecs import DEFAULT_QUALITIES

    assert len(rows) == 2 * (3 + len(DEFAULT_QUALITIES))
    for r in rows:  # the pool codes exactly what a serial run codes
        key = (r["image"], r["codec"], r["param"])
        if key in serial:
            assert int(r["bytes"]) == serial[key]
    from wavelatent.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        _cli(argv)


def test_cli_errors(tmp_path):
    from wavelatent.errors import InputError, PresetError

    with pytest.raises(InputError):
        _cli(["evaluate", str(tmp_path / "missing"), "-o", str(tmp_path / "o")])
    with pytest.raises(PresetError):
        _cli(["evaluate", str(tmp_path), "-o", str(tmp_path / "o"), "--presets", "nope"])


# --------------------------------------------------------------------------- bench
def test_bench_smoke(test_weights):
    from wavelatent.bench import bench

    r = bench([smooth_image(64, 64)], presets=[], weights=[test_weights], threads=1, repeats=1, warmup=1)
    names = [row.codec for row in r.rows]
    assert names[:2] == ["jpeg-q75", "webp-q75"] and len(names) == 3
    wl = r.rows[2]
    assert wl.encode_mps > 0 and wl.decode_mps > 0 and wl.latent_mps > 0
    assert all(row.peak_rss_mb and row.peak_rss_mb > 0 for row in r.rows)
    table = r.table()
    assert "enc/JPEG" in table and "test-image" in table


def test_macs_match_torch_flop_counter(test_codec):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from wavelatent.bench import count_macs, count_parameters

    macs = count_macs(test_codec, size=(32, 48))
    cfg = test_codec.config
    assert macs["analysis"] >= cfg.channels * cfg.levels * 2 * 7  # at least the filters' non-zero taps
    x = torch.rand(1, 3, 32, 48)
    with torch.inference_mode(), metrics.torch_threads(1):
        with FlopCounterMode(display=False) as enc:
            y = test_codec.encode(x)
        with FlopCounterMode(display=False) as dec:
            test_codec.decode(y)
    assert enc.get_total_flops() / 2 / (32 * 48) == pytest.approx(macs["encoder"])
    assert dec.get_total_flops() / 2 / (32 * 48) == pytest.approx(macs["decoder"])
    params = count_parameters(test_codec)
    assert params["encoder"] == cfg.latent_channels * (cfg.packet_channels + 1)
