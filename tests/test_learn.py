"""The spoken-digit variant of ``wavelatent learn``: 1-D CNN on audio latents and on samples."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from wavelatent.errors import InputError
from wavelatent.learn import LearnOptions, learn
from wavelatent.learn.experiment import find_task, prepare_fsdd
from wavelatent.learn.inputs import get_input, resample_clips
from wavelatent.learn.models import SmallCNN, count_macs


def _digits(folder, lengths=(300, 700)):
    """FSDD-like recordings: digit 0 a 500 Hz tone, digit 1 a 1500 Hz tone; n 0-4 test, 5-7 train.
    One recording is longer than the stored clip (trimmed) and one is shorter (padded)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for d, f in ((0, 500), (1, 1500)):
        for n in range(8):
            m = lengths[n % 2]
            t = np.arange(m) / 8000
            x = 0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(m)
            sf.write(folder / f"{d}_tone_{n}.wav", (x * 32767).astype(np.int16), 8000, subtype="PCM_16")
    (folder / "README.md").write_text("not a recording")
    return folder


def test_find_task(tmp_path):
    assert find_task(_digits(tmp_path / "fsdd")) == "spoken-digits"
    (tmp_path / "im" / "train").mkdir(parents=True)
    (tmp_path / "im" / "val").mkdir()
    assert find_task(tmp_path / "im") == "images"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="spoken-digit"):
        find_task(tmp_path / "empty")


def test_prepare_fsdd_split_and_centring(tmp_path):
    train, test = prepare_fsdd(_digits(tmp_path / "fsdd"), 512, None, False)
    assert train.images.shape == (6, 512) and test.images.shape == (10, 512)
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1] and all(int(s[:-4].split("_")[2]) >= 5 for s in train.sources)
    short = test.images[test.sources.index("0_tone_0.wav")]  # 300 samples centred in 512
    assert not short[:100].any() and not short[-100:].any() and short[106:406].any()
    long = test.images[test.sources.index("0_tone_1.wav")]  # 700 samples: the centre 512 kept
    ref, _ = sf.read(tmp_path / "fsdd" / "0_tone_1.wav", dtype="int16")
    assert np.array_equal(long, ref[94:606])
    sf.write(tmp_path / "fsdd" / "1_tone_9.wav", np.zeros(100, np.int16), 16000)
    with pytest.raises(InputError, match="8000 Hz mono"):
        prepare_fsdd(tmp_path / "fsdd", 512, None, False)


def test_resampled_samples_keep_a_tone():
    t = np.arange(4096) / 8000
    x = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[None]
    y = resample_clips(x, 2)
    assert y.shape == (1, 1, 2048) and y.dtype == np.int16
    spec = np.abs(np.fft.rfft(y[0, 0, 256:-256].astype(np.float64)))
    assert abs(np.argmax(spec) * 4000 / 1536 - 440) < 5  # the peak stays at 440 Hz
    assert np.array_equal(resample_clips(x, 1)[:, 0], x)
    with pytest.raises(InputError):
        resample_clips(x[:, :4095], 2)
    with pytest.raises(InputError):
        get_input("samples:3000", crop=7680)  # 8000 / 3000 is not an integer


def test_cnn_1d_shapes():
    for size, channels in ((112, 2), (448, 1)):
        m = SmallCNN(channels, size, 10, width=8, body_size=14, dims=1, kernel=5)
        assert m(torch.zeros(3, channels, size)).shape == (3, 10)
        assert count_macs(m, (channels, size)) > 0
    with pytest.raises(ValueError):
        SmallCNN(1, 100, 10, body_size=14, dims=1)  # not 14 times a power of two


def test_learn_spoken_digits(tmp_path, mono_weights):
    data = _digits(tmp_path / "fsdd")
    out = tmp_path / "out"
    opts = LearnOptions(str(data), str(out), inputs=(f"latents:{mono_weights}", "samples:4000", "samples:8000"),
                        epochs=2, batch_size=4, width=8, size=512, crop=448, grid=32, progress=False)
    doc = learn(opts)
    assert doc["experiment"] == "spoken-digits" and doc["train_samples"] == 6 and doc["val_samples"] == 10
    lat, s4, s8 = doc["runs"]
    assert lat["shape"] == [2, 112] and s4["shape"] == [1, 224] and s8["shape"] == [1, 448]
    assert s4["bytes_raw"] == 2 * 224 and s8["bytes_raw"] == 2 * 448 and lat["bytes_raw"] == 1 * 2 * 112
    assert s4["coded_as"] == "FLAC" and lat["coded_as"].startswith("rANS") and lat["bytes_coded"] > 0
    # 2 epochs on 6 clips only exercise the plumbing (test_learn_beats_chance_on_tones learns):
    # top-1 is a count of the 10 test clips
    assert all(round(r["top1"] * 10, 4).is_integer() and len(r["history"]) == 2 for r in doc["runs"])
    assert json.loads((out / "results.json").read_text())["runs"][1]["input"] == "samples:4000"
    assert (out / "results.md").read_text().count("| samples:") == 2
    assert all(r["flips"] == "none" for r in doc["runs"])
    stamp = (out / "runs" / "samples_4000.seed0.json").stat().st_mtime_ns
    assert learn(dataclasses.replace(opts, inputs=("samples:4000",)))["runs"] == [s4]  # a rerun skips it
    assert (out / "runs" / "samples_4000.seed0.json").stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="power of two"):  # a window the network cannot take
        learn(dataclasses.replace(opts, inputs=("samples:1600",), crop=6400, size=6400, grid=160))
    # image inputs on audio data (and the reverse) are refused before any work
    with pytest.raises(InputError, match="takes image"):
        learn(dataclasses.replace(opts, inputs=("pixels-32",)))
    with pytest.raises(InputError, match="multiple of 32"):
        learn(dataclasses.replace(opts, crop=440))


def test_learn_beats_chance_on_tones(tmp_path):
    """Two tone classes (500 / 1500 Hz, random phase), 25 training clips each: both the latents of
    the shipped speech preset and 4 kHz samples must classify the 10 test clips far better than
    chance (50 % between the two classes present; the head has 10 digit outputs)."""
    torch.set_num_threads(1)  # tiny batches: a second thread only adds contention
    folder = tmp_path / "fsdd"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for d, f in ((0, 500), (1, 1500)):
        for n in range(30):
            t = np.arange(700) / 8000
            x = 0.3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) + 0.01 * rng.standard_normal(700)
            sf.write(folder / f"{d}_tone_{n}.wav", (x * 32767).astype(np.int16), 8000, subtype="PCM_16")
    opts = LearnOptions(str(folder), str(tmp_path / "out"), inputs=("latents:audio-mono-2x", "samples:4000"),
                        epochs=16, batch_size=8, width=8, size=512, crop=448, grid=32, progress=False)
    doc = learn(opts)
    assert doc["val_samples"] == 10
    for r in doc["runs"]:  # measured: 1.0 and 0.9
        assert r["top1"] >= 0.8, (r["input"], r["top1"])


def test_learn_cli_audio_defaults(tmp_path, mono_weights, capsys):
    from .test_cache import _cli

    data = _digits(tmp_path / "fsdd")
    args = ["learn", str(data), "-o", str(tmp_path / "o"), "--epochs", "1", "--width", "8", "--batch-size", "4",
            "--size", "512", "--crop", "448", "--no-progress"]
    assert _cli(args + ["--inputs", "samples:2000"]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["settings"]["grid"] == 32 and res["runs"][0]["shape"] == [1, 112]
    assert _cli(args + ["--inputs", "latents-16x"]) == 1  # an image input for audio data: refused
    assert "takes image" in capsys.readouterr().err


def test_flips_are_exact_for_latents(test_weights):
    """A flipped training window of a latent input is the latent of the mirrored image (not the
    reversed latent); of a pixel input, the reversed pixels."""
    from wavelatent.data.cache import encode_symbols
    from wavelatent.learn.experiment import Split, _Features
    from wavelatent.models import load_codec

    from .conftest import smooth_image

    images = np.stack([smooth_image(48, 48, seed=s) for s in range(3)])
    split = Split(images, np.zeros(3, np.int64), ["a", "b", "c"])
    opts = LearnOptions("d", "o", size=48, crop=32, grid=8)
    spec = get_input(f"latents:{test_weights}")
    f = _Features(spec, split, opts, mirror=True)
    assert f.flip_kind == "mirrored images"
    got = f.batch(np.arange(3), np.array([[1, 0]] * 3), np.array([True, False, True]))
    codec = load_codec(test_weights)
    want_m = encode_symbols(codec, images[:, :, ::-1].copy()) * spec.scale
    want = encode_symbols(codec, images) * spec.scale
    g, c = f.grid, f.crop
    assert np.allclose(got[0].numpy(), want_m[0, :, g : g + c, :c]) and np.allclose(got[1].numpy(), want[1, :, g : g + c, :c])
    assert not np.allclose(want_m[0], want[0][..., ::-1])  # the reversal would not have been the same
    p = _Features(get_input("pixels:16", crop=32), split, opts, mirror=True)
    assert p.flip_kind == "reversed" and p.exact_reversal
    got = p.batch(np.arange(1), np.array([[0, 1]]), np.array([True]))
    assert p._mirrored is None  # pixels are reversed, never encoded twice
    g, c = p.grid, p.crop
    assert torch.equal(got[0], torch.from_numpy(p.x[0, :, :c, ::-1][:, :, g : g + c].copy()).float())


def test_colorize_tiny(tmp_path, capsys):
    """Both routes train, are scored against the colour crops, and each route's ceiling (its true
    target rendered) scores better than showing the gray input."""
    from PIL import Image

    from wavelatent.learn.colorize import colorize, gray, keep_luma

    from .conftest import smooth_image
    from .test_cache import _cli

    data = tmp_path / "data"
    for split, n in (("train", 4), ("val", 2)):
        for label in ("a", "b"):
            (data / split / label).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(smooth_image(48, 48, seed=10 * i + len(label) + (split == "val"))).save(
                    data / split / label / f"{i}.png")
    im = smooth_image(8, 8, seed=1)
    assert np.array_equal(gray(im[None])[0, :, :, 0], np.asarray(Image.fromarray(im).convert("L")))
    grey = np.repeat(gray(im[None])[0], 3, axis=2)
    assert np.abs(keep_luma(im, grey).astype(int) - im).max() <= 1  # an image's own luma gives it back
    mid = keep_luma(im, np.full_like(im, 128))  # another luma: that luma (up to rounding where not clipped)
    assert np.abs(gray(mid[None]).astype(int) - 128).mean() < 3
    args = ["learn", str(data), "-o", str(tmp_path / "o"), "--task", "colorize", "--epochs", "1", "--width", "8",
            "--batch-size", "4", "--size", "48", "--crop", "32", "--no-progress"]
    assert _cli(args) == 0
    doc = json.loads((tmp_path / "o" / "colorize.json").read_text())
    assert doc["train_samples"] == 8 and doc["val_samples"] == 4
    lat, pix = doc["runs"]
    assert lat["input_shape"] == [4, 4, 4] and lat["target_shape"] == [12, 4, 4]
    assert pix["input_shape"] == [1, 8, 8] and pix["target_shape"] == [3, 8, 8]
    for r in doc["runs"]:
        assert r["psnr_target"] > r["psnr_gray_as_gray"] > 0 and len(r["history"]) == 1
        assert np.isfinite(r["psnr_rgb"]) and np.isfinite(r["psnr_rgb_raw"])
    assert "| latents |" in capsys.readouterr().out
    images = np.zeros((2, 40, 40, 3), np.uint8)
    with pytest.raises(InputError, match="multiples of 8"):
        colorize(images, images, tmp_path / "x", crop=36)
    fsdd = _digits(tmp_path / "fsdd")
    assert _cli(["learn", str(fsdd), "-o", str(tmp_path / "y"), "--task", "colorize", "--no-progress"]) == 1
