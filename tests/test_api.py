"""The library's edges: fresh codecs per load, honest weights hashes, one codec keyword,
CLI output names, multi-band info, audio through its own entry point, and the README example."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import wavelatent as wl
from wavelatent import container
from wavelatent.audio import compress_audio, decompress_audio
from wavelatent.cli import main
from wavelatent.errors import InputError, WavelatentError, WeightsMismatchError

from .conftest import smooth_image

README = Path(__file__).resolve().parents[1] / "README.md"


def test_load_codec_returns_a_fresh_module():
    a = wl.load_codec("image-rgb-16x")
    assert a is not wl.load_codec("image-rgb-16x")
    a.double()  # converting one's own codec must not reach the library's
    img = smooth_image(32, 48)
    np.testing.assert_array_equal(wl.decompress(wl.compress(img)), wl.decompress(wl.compress(img, "image-rgb-16x")))


def test_weights_hash_follows_in_place_edits():
    img = smooth_image(32, 48)
    shipped = wl.compress(img, "image-rgb-16x")
    codec = wl.load_codec("image-rgb-16x")
    assert wl.compress(img, codec) == shipped
    with torch.no_grad():
        next(codec.decoder.parameters()).mul_(1.5)
    edited = wl.compress(img, codec)
    assert container.read_header(edited)["weights_sha256"] != container.read_header(shipped)["weights_sha256"]
    with pytest.raises(WeightsMismatchError):
        wl.decompress(edited)  # the shipped preset is not what wrote it
    with pytest.raises(WeightsMismatchError):
        wl.decompress(edited, "image-rgb-16x")
    assert wl.decompress(edited, codec).shape == img.shape
    with pytest.raises(WeightsMismatchError):
        wl.decompress(shipped, codec)


def test_one_codec_keyword(test_codec, mono_weights):
    img = smooth_image(24, 32)
    data = wl.compress(img, codec=test_codec, quality=1)
    assert data == wl.compress(img, preset=test_codec, quality=1) == wl.compress(img, test_codec, 1)
    assert wl.decompress(data, codec=test_codec).shape == img.shape
    with pytest.raises(InputError, match="not both"):
        wl.compress(img, codec=test_codec, preset=test_codec)
    x = np.sin(np.arange(4000) / 7.0).astype(np.float32)[:, None] * 0.5
    audio = compress_audio(x, 8000, codec=str(mono_weights))
    assert audio == compress_audio(x, 8000, preset=str(mono_weights))
    y, rate = decompress_audio(audio, codec=str(mono_weights))
    assert rate == 8000 and y.shape == x.shape


def test_decompress_refuses_audio(mono_weights):
    x = np.zeros((800, 1), np.float32)
    data = compress_audio(x, 8000, str(mono_weights))
    with pytest.raises(InputError, match="decompress_audio"):
        wl.decompress(data, str(mono_weights))
    assert issubclass(InputError, WavelatentError)


def test_read_info_of_a_multiband_file(tmp_path, capsys):
    cube = (np.random.default_rng(0).random((20, 30, 5)) * 1000).astype(np.uint16)
    data = wl.compress(cube)
    info = wl.read_info(data)
    assert info["bands"] == 5 and info["height"] == 20 and info["width"] == 30
    assert info["bpp"] == pytest.approx(8 * len(data) / (20 * 30))
    assert info["compression_ratio"] == pytest.approx(20 * 30 * 5 * 2 / len(data))
    src = tmp_path / "cube.npy"
    np.save(src, cube)
    assert main(["compress", str(src), "-o", str(tmp_path / "cube.wlt")]) == 0
    err = capsys.readouterr().err
    assert "None" not in err and "0.0000 bpp" not in err and "5 bands uint16" in err


@pytest.fixture
def png(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(smooth_image(24, 32)).save(path)
    return path


@pytest.mark.parametrize("name", ["photo.jpg", "photo.png", "photo"])
def test_cli_compress_refuses_a_non_wlt_output(png, tmp_path, test_weights, capsys, name):
    out = tmp_path / name if name != "photo.png" else tmp_path / "out.png"
    assert main(["compress", str(png), "-o", str(out), "--weights", str(test_weights)]) == 1
    err = capsys.readouterr().err
    assert ".wlt" in err and "Traceback" not in err
    assert not out.exists()


def test_cli_decompress_refuses_an_unwritable_suffix(png, tmp_path, test_weights, mono_weights, capsys, monkeypatch):
    import wavelatent.api
    import wavelatent.audio

    wlt = tmp_path / "photo.wlt"
    assert main(["compress", str(png), "-o", str(wlt), "--weights", str(test_weights)]) == 0

    def no_work(*args, **kwargs):
        raise AssertionError("decoded before the output name was checked")

    decompress, decompress_audio_file = wavelatent.api.decompress, wavelatent.audio.decompress_audio_file
    monkeypatch.setattr(wavelatent.api, "decompress", no_work)
    monkeypatch.setattr(wavelatent.audio, "decompress_audio_file", no_work)
    for name in ("photo.jpg", "photo.wav"):
        assert main(["decompress", str(wlt), "-o", str(tmp_path / name), "-w", str(test_weights)]) == 1
        assert not (tmp_path / name).exists()
    song = tmp_path / "song.wlt"
    song.write_bytes(compress_audio(np.zeros((800, 1), np.float32), 8000, str(mono_weights)))
    assert main(["decompress", str(song), "-o", str(tmp_path / "song.png"), "-w", str(mono_weights)]) == 1
    assert not (tmp_path / "song.png").exists()
    err = capsys.readouterr().err
    assert ".wav" in err and "Traceback" not in err and "decoded before" not in err
    monkeypatch.setattr(wavelatent.api, "decompress", decompress)
    monkeypatch.setattr(wavelatent.audio, "decompress_audio_file", decompress_audio_file)
    assert main(["decompress", str(wlt), "-o", str(tmp_path / "ok.bmp"), "-w", str(test_weights)]) == 0


def test_readme_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    photo = tmp_path / "photo.png"
    Image.fromarray(smooth_image(64, 96)).save(photo)
    monkeypatch.chdir(tmp_path)  # the example opens "photo.png"
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
