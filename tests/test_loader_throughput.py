"""benchmarks/loader_throughput.py on a tiny synthetic image folder: structure, JSON and the ratio line."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from .conftest import smooth_image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "loader_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("loader_throughput", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    for i in range(10):
        (root / f"c{i % 2}").mkdir(exist_ok=True)
        h, w = (150, 180) if i % 3 else (190, 150)
        Image.fromarray(smooth_image(h, w, seed=i)).save(root / f"c{i % 2}" / f"p{i}.jpg", quality=90)
    return root


def test_every_pipeline_gives_float_batches_and_the_ratio_line(bench, photos, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["--src", str(photos), "--scratch", str(tmp_path / "s"), "--workers", "0", "--batch-size", "4",
            "--epochs", "2", "--json", str(out)]
    assert bench.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"ratio_vs_jpeg=\d+\.\d\d ratio_vs_thumbnail=\d+\.\d\d", lines[-1])
    doc = json.loads(out.read_text())
    assert doc["samples"] == 10 and doc["provenance"]["command"].startswith("python benchmarks/loader_throughput.py")
    shapes = {r["pipeline"]: r["sample_shape"] for r in doc["rows"]}
    assert shapes == {"latents-raw": [12, 16, 16], "latents-coded": [12, 16, 16],
                      "latents-coded-per-worker": [12, 16, 16], "jpeg": [3, 128, 128],
                      "thumbnail": [3, 32, 32], "memmap": [3, 128, 128]}
    for r in doc["rows"]:
        assert r["workers"] == 0 and r["cores"] == 1 and len(r["epoch_s"]) == 2
        assert r["per_core_run"] > 0 and r["samples_per_cpu_s"] > 0 and r["bytes_per_sample"] > 0
    by = {r["pipeline"]: r for r in doc["rows"]}
    head = doc["headline"]
    assert head["workers"] == 0
    assert head["ratio_vs_jpeg"] == pytest.approx(by["latents-coded"]["per_core_run"] / by["jpeg"]["per_core_run"])
    assert lines[-1] == f"ratio_vs_jpeg={head['ratio_vs_jpeg']:.2f} ratio_vs_thumbnail={head['ratio_vs_thumbnail']:.2f}"
    # a rerun reuses the scratch folder (nothing rebuilt) and the pixel pipelines see the same images
    prep = bench.prepare(photos, tmp_path / "s", None, log=lambda m: pytest.fail(f"rebuilt: {m}"))
    pixels = np.load(prep["memmap"], mmap_mode="r")
    assert pixels.shape == (10, 144, 144, 3)
    x, label = bench.make_dataset("memmap", prep)[3]
    assert x.shape == (3, 128, 128) and 0 <= float(x.min()) and float(x.max()) <= 1 and label == prep["labels"][3]
