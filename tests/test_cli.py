"""The command line, in-process: exit codes, outputs, --force, trees, errors without tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wavelatent.cli import main
from wavelatent.registry import list_presets

from .conftest import smooth_image


@pytest.fixture
def png(tmp_path) -> Path:
    p = tmp_path / "img.png"
    Image.fromarray(smooth_image(40, 56)).save(p)
    return p


def test_round_trip_and_info(png, tmp_path, test_weights, capsys):
    wlt, out = tmp_path / "img.wlt", tmp_path / "out.png"
    assert main(["compress", str(png), "-o", str(wlt), "--weights", str(test_weights)]) == 0
    err = capsys.readouterr().err
    size = wlt.stat().st_size
    assert f"{size:,} bytes" in err
    assert f"{8 * size / (40 * 56):.4f} bpp" in err
    assert main(["decompress", str(wlt), "-o", str(out), "-w", str(test_weights), "--reference", str(png)]) == 0
    assert "PSNR" in capsys.readouterr().err
    assert np.asarray(Image.open(out)).shape == (40, 56, 3)
    assert main(["info", str(wlt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file_bytes"] == size and info["width"] == 56 and info["preset"] == "test-image"
    assert main(["info", "test-image"]) == 0
    assert "latent_channels" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "image-rgb-16x" in capsys.readouterr().out


def test_force(png, tmp_path, test_weights, capsys):
    wlt = tmp_path / "img.wlt"
    args = ["compress", str(png), "-o", str(wlt), "-w", str(test_weights)]
    assert main(args) == 0
    before = wlt.read_bytes()
    wlt.write_bytes(b"keep me")
    assert main(args) == 1
    assert "--force" in capsys.readouterr().err
    assert wlt.read_bytes() == b"keep me"
    assert main(args + ["--force"]) == 0
    assert wlt.read_bytes() == before


def test_errors_exit_1_without_traceback(tmp_path, test_weights, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    cases = [
        ["compress", str(tmp_path / "missing.png"), "-o", str(tmp_path / "a.wlt")],
        ["compress", str(bad), "-o", str(tmp_path / "b.wlt"), "-w", str(test_weights)],
        ["decompress", str(bad), "-o", str(tmp_path / "c.png")],
        ["info", str(bad)],
        ["compress", str(bad), "--preset", "no-such-preset"],
    ]
    for args in cases:
        assert main(args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("wavelatent: error:") and "Traceback" not in err
    assert not list(tmp_path.glob("*.wlt")) and not list(tmp_path.glob("c.png"))
    assert main(["compress"]) == 2  # usage error from argparse


def test_directory_tree(tmp_path, test_weights, capsys):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image(20, 24)).save(src / "a.png")
    Image.fromarray(smooth_image(16, 16, 1)[:, :, 0]).save(src / "sub" / "b.jpg")
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG garbage")
    (src / "notes.txt").write_text("not an image")
    coded, decoded = tmp_path / "coded", tmp_path / "decoded"
    assert main(["compress", str(src), "-o", str(coded), "-w", str(test_weights)]) == 1  # one bad file
    err = capsys.readouterr().err
    assert "broken.png" in err and "2 done" in err and "1 failed" in err
    assert (coded / "a.wlt").exists() and (coded / "sub" / "b.wlt").exists()
    assert not (coded / "sub" / "broken.wlt").exists()
    (src / "sub" / "broken.png").unlink()
    assert main(["compress", str(src), "-o", str(coded), "-w", str(test_weights)]) == 0  # rerun skips
    assert "2 skipped" in capsys.readouterr().err
    assert main(["decompress", str(coded), "-o", str(decoded), "-w", str(test_weights)]) == 0
    assert np.asarray(Image.open(decoded / "sub" / "b.png")).shape == (16, 16)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


def test_stdin_stdout(png, tmp_path, test_weights):
    cmd = [sys.executable, "-m", "wavelatent", "compress", "-", "-o", "-", "-w", str(test_weights), "--quiet"]
    coded = subprocess.run(cmd, input=png.read_bytes(), capture_output=True, check=True).stdout
    assert coded[:4] == b"WLAT"
    cmd = [sys.executable, "-m", "wavelatent", "decompress", "-", "-o", "-", "-w", str(test_weights), "--quiet"]
    decoded = subprocess.run(cmd, input=coded, capture_output=True, check=True).stdout
    assert decoded[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(cmd, input=b"garbage", capture_output=True)
    assert bad.returncode == 1 and b"Traceback" not in bad.stderr


@pytest.mark.parametrize("preset", list_presets())
def test_info_of_every_preset(preset, capsys):
    """`info PRESET` works for every preset, whatever its weights' metadata records (a release's
    trained_steps may be an account of several runs, not a number)."""
    assert main(["info", preset, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == preset and info["version"] >= 1
