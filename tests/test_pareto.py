"""Accuracy per byte (``wavelatent learn --seeds``): stored-file inputs, seeds, the frontier, collect."""
from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from wavelatent.errors import InputError
from wavelatent.learn import LearnOptions, collect, learn
from wavelatent.learn.experiment import resolve_device, seconds_to, summarize
from wavelatent.learn.inputs import box_downsample, get_input
from wavelatent.learn.models import SmallCNN, count_macs

from .conftest import smooth_image


def _images(n: int = 3, size: int = 48) -> np.ndarray:
    return np.stack([smooth_image(size, size, seed=s) for s in range(n)])


def test_jpeg_input_is_the_decoded_file_and_its_size():
    images = _images()
    spec = get_input("jpeg:16@50", crop=32)
    x = spec.features(images)  # 48 px stored images -> 24 px decoded JPEGs (16 px per 32 px window)
    assert x.shape == (3, 3, 24, 24) and x.dtype == np.uint8 and spec.reversible
    small = box_downsample(images, 2)
    buf = io.BytesIO()
    Image.fromarray(small[0].transpose(1, 2, 0)).save(buf, format="JPEG", quality=50, optimize=True)
    want = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(x[0], want)
    assert not np.array_equal(x, small)  # lossy: the model sees what the file holds, not the pixels
    windows = images[:, 8:40, 8:40]
    disk = spec.disk_bytes(windows)
    sizes = []
    for v in box_downsample(windows, 2):
        b = io.BytesIO()
        Image.fromarray(v.transpose(1, 2, 0)).save(b, format="JPEG", quality=50, optimize=True)
        sizes.append(len(b.getvalue()))
    assert disk["coded"] == pytest.approx(np.mean(sizes)) and disk["raw"] == 3 * 16 * 16
    assert "JPEG q50" in disk["coded_as"]


def test_png_and_webp_inputs():
    images = _images()
    png = get_input("png:16", crop=32)
    assert np.array_equal(png.features(images), box_downsample(images, 2))  # lossless
    webp = get_input("webp:8@30", crop=32)
    lo, hi = webp.disk_bytes(images[:, :32, :32])["coded"], get_input("webp:8@95", crop=32).disk_bytes(
        images[:, :32, :32])["coded"]
    assert 0 < lo < hi


@pytest.mark.parametrize("name, match", [
    ("jpeg:32", "quality in 1..100"), ("webp:16@0", "quality in 1..100"), ("png:16@5", "no quality"),
    ("jpeg:24@50", "multiple of 24"), ("jpeg:x@50", "integers"), ("opus:3000@1", "integer that divides"),
    ("opus:8000@1.5", r"\[0, 1\]"), ("opus:8000@x", "rate and a level"),
])
def test_bad_input_names(name, match):
    with pytest.raises(InputError, match=match):
        get_input(name, crop=32 if not name.startswith("opus") else 7680)


def test_opus_input_shape_and_bytes():
    rng = np.random.default_rng(0)
    t = np.arange(4096) / 8000
    clips = np.stack([(8000 * np.sin(2 * np.pi * f * t) + 100 * rng.standard_normal(4096)).astype(np.int16)
                      for f in (300, 900)])
    spec = get_input("opus:4000@1.0", crop=3840)
    x = spec.features(clips)
    assert x.shape == (2, 1, 2048) and x.dtype == np.int16
    assert np.corrcoef(x[0, 0, 200:1800].astype(float), x[1, 0, 200:1800].astype(float))[0, 1] < 0.9
    disk = spec.disk_bytes(clips[:, :3840])
    assert 100 < disk["coded"] < disk["raw"] and "Opus" in disk["coded_as"]


def test_summarize_seeds_frontier_and_time_to_level():
    def run(name, seed, top1, size, curve):
        return {"input": name, "description": "", "shape": [1], "dtype": "uint8", "bytes_coded": size,
                "bytes_raw": 99, "coded_as": "x", "macs": 1, "parameters": 1, "seed": seed, "top1": top1,
                "best_top1": top1, "epoch_seconds": 2.0,
                "history": [{"train_seconds": 2.0, "val_top1": v} for v in curve]}

    rows = summarize([run("a", 0, 0.60, 100, [0.5, 0.66]), run("a", 1, 0.62, 100, [0.61, 0.7]),
                      run("b", 0, 0.55, 200, [0.55]), run("c", 0, 0.70, 300, [0.7])])
    a, b, c = rows
    assert a["top1"] == [0.60, 0.62] and a["top1_mean"] == pytest.approx(0.61)
    assert a["top1_std"] == pytest.approx(np.std([0.60, 0.62], ddof=1)) and b["top1_std"] == 0.0
    assert (a["pareto"], b["pareto"], c["pareto"]) == (True, False, True)  # b: larger and worse than a
    assert a["seconds_to_top1"]["0.65"] == [4.0, 4.0] and a["seconds_to_top1"]["0.6"] == [4.0, 2.0]
    assert b["seconds_to_top1"]["0.6"] == [None]
    assert seconds_to([{"train_seconds": 1.5, "val_top1": 0.2}, {"train_seconds": 1.0, "val_top1": 0.9}], 0.5) == 2.5


def test_stems_spend_more_on_larger_inputs():
    macs = {s: count_macs(SmallCNN(3, 128, 10, stem=s), (3, 128, 128)) for s in ("thin", "wide", "resnet")}
    assert macs["thin"] < macs["wide"] < macs["resnet"]
    lat = {s: count_macs(SmallCNN(12, 16, 10, stem=s), (12, 16, 16)) for s in ("thin", "wide", "resnet")}
    assert len(set(lat.values())) == 1  # an input at the body's size gets the same network
    with pytest.raises(ValueError, match="stem"):
        SmallCNN(3, 32, 10, stem="tall")


def test_cuda_refused_where_absent():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(InputError, match="no CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_seeds_pareto_and_collect(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "data"
    for split, n in (("train", 4), ("val", 2)):
        for label in ("a", "b"):
            (data / split / label).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(smooth_image(48, 48, seed=10 * (label == "b") + i + 5 * (split == "val"))).save(
                    data / split / label / f"{i}.png")
    out = tmp_path / "out"
    opts = LearnOptions(str(data), str(out), inputs=("png:8", "jpeg:16@40"), epochs=1, batch_size=4, width=8,
                        size=48, crop=32, grid=4, seeds=2, seed=3, progress=False)
    doc = learn(opts)
    assert [(r["input"], r["seed"]) for r in doc["runs"]] == [("png:8", 3), ("png:8", 4), ("jpeg:16@40", 3),
                                                              ("jpeg:16@40", 4)]
    assert doc["seeds"] == [3, 4] and "seed" not in doc["settings"]
    assert [len(r["top1"]) for r in doc["rows"]] == [2, 2]
    prov = doc["provenance"]
    assert prov["command"] and prov["machine"]["cpu_count"] and prov["devices"] == ["cpu"]
    pareto = json.loads((out / "pareto.json").read_text())
    assert sorted(r["input"] for r in pareto["rows"]) == ["jpeg:16@40", "png:8"]
    assert [r["bytes_per_sample"] for r in pareto["rows"]] == sorted(r["bytes_per_sample"] for r in pareto["rows"])
    assert (out / "pareto.png").stat().st_size > 0 and (out / "runs" / "png_8.seed4.json").is_file()
    # collect gathers the same rows from the run files, in the order asked for
    again = collect(out, ["jpeg:16@40", "png:8"], progress=False)
    assert [r["input"] for r in again["rows"]] == ["jpeg:16@40", "png:8"]
    assert {r["input"]: r["top1"] for r in again["rows"]} == {r["input"]: r["top1"] for r in doc["rows"]}
    with pytest.raises(InputError, match="no finished runs of webp"):
        collect(out, ["webp:8@50"], progress=False)
    with pytest.raises(InputError, match="no experiment.json"):
        collect(tmp_path / "nothing", progress=False)
    with pytest.raises(InputError, match="--seeds"):
        learn(dataclasses.replace(opts, seeds=0))
