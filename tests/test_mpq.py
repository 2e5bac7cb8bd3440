"""Machine perceptual quality (``evaluate --task classify``): a tiny classifier trained on synthetic
data, tiny codecs, end to end in seconds; bad classifier files and splits."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from wavelatent.errors import InputError, WavelatentError
from wavelatent.evaluate.classifier import (ClassifierError, ClassifierConfig, build_model, load_classifier,
                                            save_classifier, train_classifier)
from wavelatent.evaluate.mpq import ResampleAudioCodec, evaluate_classify, load_image_split

COLOURS = {"blue": (40, 60, 200), "red": (200, 50, 40)}


def _image_data(root, per_class=(6, 4)):
    """DATA/{train,val}/{blue,red}/*.png: noisy images of two colours, sizes that need a resize."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_class):
        for cls, rgb in COLOURS.items():
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                h, w = 72 + 8 * (i % 3), 96
                img = np.clip(np.array(rgb) + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    return root


class Identity:
    """Returns its input unchanged (raw array bytes + shape)."""

    name, description, kind = "identity", "raw pixels", "baseline"

    def points(self):
        return [0]

    def compress(self, img, param):
        return struct.pack("<3I", *img.shape) + img.tobytes()

    def decompress(self, data):
        shape = struct.unpack("<3I", data[:12])
        return np.frombuffer(data[12:], np.uint8).reshape(shape)


class FailsOnOne(Identity):
    """Identity, but raises on images 72 px tall (one of every three)."""

    name = "fails-on-one"

    def compress(self, img, param):
        if img.shape[0] == 72:
            raise RuntimeError("cannot code this one")
        return super().compress(img, param)


@pytest.fixture(scope="module")
def image_setup(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    root = _image_data(tmp_path_factory.mktemp("imgdata"))
    clf = train_classifier(root, root / "clf.safetensors", epochs=2, width=16, batch_size=4, progress=False)
    return root, clf


def test_image_end_to_end(image_setup, tmp_path):
    from wavelatent.evaluate.codecs import ResizeCodec, WavelatentCodec

    root, clf = image_setup
    loaded = load_classifier(root / "clf.safetensors")
    assert loaded.config.val_top1 == clf.config.val_top1 and loaded.sha256 == clf.sha256
    codecs = [Identity(), WavelatentCodec("test-image", qualities=[1]), FailsOnOne(), ResizeCodec(factors=(4,))]
    r = evaluate_classify(root / "val", tmp_path / "out", loaded, codecs, progress=False, log=None)
    # the clean accuracy is the classifier's own validation accuracy
    assert r.clean_top1 == pytest.approx(loaded.config.val_top1, abs=1e-9)
    ident = r.curves["identity"]["results"]
    assert ident["top1"] == [r.clean_top1] and ident["top1_drop"] == [0.0]
    assert ident["feature_distance"] == [0.0] and ident["psnr-rgb"] == [100.0] and ident["failures"] == [0]
    tiny = r.curves["wavelatent-test-image"]["results"]
    assert tiny["bpp"][0] > 0 and 0 <= tiny["top1"][0] <= 1 and tiny["feature_distance"][0] > 0
    bad = r.curves["fails-on-one"]
    assert bad["results"]["failures"] == [4] and len(bad["meta"]["failed_items"]) == 4
    assert "cannot code this one" in bad["meta"]["failed_items"][0]["error"]
    assert any("fails-on-one" in n for n in r.notes)
    for name in ("identity", "wavelatent-test-image", "fails-on-one", "resize"):
        doc = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert {"bpp", "top1"} <= set(doc["results"]) and doc["clean_top1"] == r.clean_top1
    for f in ("results.csv", "correlation.json", "summary.md", "report.html", "accuracy.png", "accuracy.svg"):
        assert (tmp_path / "out" / f).is_file()
    assert "Machine perceptual quality" in (tmp_path / "out" / "report.html").read_text()
    # resume: finished codecs are skipped, same numbers
    said = []
    r2 = evaluate_classify(root / "val", tmp_path / "out", loaded, codecs, progress=False, log=said.append)
    assert sum("done before" in m for m in said) == 4 and r2.curves == r.curves


def test_image_jobs_match(image_setup, tmp_path):
    root, clf = image_setup
    one = evaluate_classify(root / "val", tmp_path / "a", clf, [FailsOnOne()], chunk=3, progress=False, log=None)
    two = evaluate_classify(root / "val", tmp_path / "b", clf, [FailsOnOne()], chunk=3, jobs=2, progress=False,
                            log=None)
    assert one.curves["fails-on-one"]["results"] == two.curves["fails-on-one"]["results"]


def test_bad_classifier_files(image_setup, tmp_path):
    root, clf = image_setup
    # class count that does not fit the split
    cfg = ClassifierConfig(**{**clf.config.__dict__, "classes": ["a", "b", "c"]})
    save_classifier(tmp_path / "three.safetensors", build_model(cfg), cfg)
    with pytest.raises(ClassifierError, match="classes"):
        evaluate_classify(root / "val", tmp_path / "o", load_classifier(tmp_path / "three.safetensors"), [Identity()],
                          progress=False, log=None)
    # wrong input convention: a 1-channel image classifier, another convention string
    for change, match in (({"in_channels": 1, "mean": [0.0], "std": [1.0]}, "RGB"),
                          ({"convention": "other/9"}, "convention")):
        bad = {**clf.config.__dict__, **change}
        from safetensors.torch import save

        good = {k: v.contiguous() for k, v in clf.model.state_dict().items()}
        (tmp_path / "bad.safetensors").write_bytes(save(good, metadata={"wavelatent_classifier": json.dumps(bad)}))
        with pytest.raises(ClassifierError, match=match):
            load_classifier(tmp_path / "bad.safetensors")
    # no config, not safetensors, missing file, weights that do not match the config
    from safetensors.torch import save

    (tmp_path / "plain.safetensors").write_bytes(save({k: v.contiguous() for k, v in clf.model.state_dict().items()}))
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    wide = ClassifierConfig(**{**clf.config.__dict__, "width": 24})
    (tmp_path / "wide.safetensors").write_bytes(
        save({k: v.contiguous() for k, v in clf.model.state_dict().items()},
             metadata={"wavelatent_classifier": wide.to_json()}))
    for name in ("plain", "junk", "missing", "wide"):
        with pytest.raises(ClassifierError):
            load_classifier(tmp_path / f"{name}.safetensors")
    assert issubclass(ClassifierError, WavelatentError)


def test_missing_split(image_setup, tmp_path):
    root, clf = image_setup
    with pytest.raises(InputError, match="no such split"):
        load_image_split(root / "test", clf.classes)
    (tmp_path / "empty" / "blue").mkdir(parents=True)
    with pytest.raises(WavelatentError):
        evaluate_classify(tmp_path / "empty", tmp_path / "o", clf, [Identity()], progress=False, log=None)


def test_cli_classify(image_setup, tmp_path, capsys):
    from wavelatent.cli.main import main

    root, _ = image_setup
    rc = main(["--threads", "1", "evaluate", str(root / "val"), "-o", str(tmp_path / "cli"), "--task", "classify",
               "--classifier", str(root / "clf.safetensors"), "--presets", "none", "--baselines", "jpeg,resize",
               "--no-progress"])
    assert rc == 0
    assert "Clean top-1" in capsys.readouterr().out
    doc = json.loads((tmp_path / "cli" / "jpeg.json").read_text())
    assert len(doc["results"]["bpp"]) == len(doc["results"]["top1"]) == 10
    assert main(["evaluate", str(root / "val"), "-o", str(tmp_path / "x"), "--task", "classify"]) != 0


# --------------------------------------------------------------------------- audio
def _fsdd(root):
    """{digit}_{speaker}_{n}.wav at 8 kHz: a tone per digit; n 0-1 test, 5-8 train."""
    import soundfile as sf

    rng = np.random.default_rng(1)
    for d in range(10):
        for n in (0, 1, 5, 6, 7, 8):
            t = np.arange(int(8000 * (0.3 + 0.05 * n))) / 8000
            x = 0.3 * np.sin(2 * np.pi * (200 + 150 * d) * t) + 0.02 * rng.normal(size=len(t))
            sf.write(root / f"{d}_spk_{n}.wav", x.astype(np.float32), 8000, subtype="PCM_16")
    return root


class AudioIdentity:
    name, description, kind = "pcm", "16-bit WAV", "baseline"

    def points(self):
        return [None]

    def coding_rate(self, rate):
        return rate

    def compress(self, x, rate, param):
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    def decompress(self, data):
        import soundfile as sf

        y, r = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return y, r


def test_audio_end_to_end(tmp_path):
    import torch

    from wavelatent.evaluate.audio import WavelatentAudioCodec

    torch.set_num_threads(1)
    root = _fsdd(tmp_path)
    clf = train_classifier(root, tmp_path / "a.safetensors", epochs=1, width=8, batch_size=8, progress=False)
    assert clf.config.modality == "audio" and clf.config.rate == 8000
    codecs = [AudioIdentity(), ResampleAudioCodec((2000,)), WavelatentAudioCodec("test-audio")]
    r = evaluate_classify(root, tmp_path / "out", load_classifier(tmp_path / "a.safetensors"), codecs,
                          progress=False, log=None)
    assert r.clean_top1 == pytest.approx(clf.config.val_top1, abs=1e-9)
    pcm = r.curves["pcm"]["results"]
    assert pcm["top1_drop"] == [0.0] and pcm["feature_distance"] == [0.0] and pcm["kbps"][0] > 100
    res = r.curves["resample"]["results"]
    assert 0 < res["kbps"][0] < pcm["kbps"][0] and res["snr"][0] < 100 and res["failures"] == [0]  # align: short clips
    tiny = r.curves["wavelatent-test-audio"]["results"]
    assert tiny["failures"] == [0, 0, 0] and all(k > 0 for k in tiny["kbps"]) and len(tiny["top1"]) == 3
    assert set(r.correlation) == {"snr", "lsd", "feature_distance", "kbps"}


def test_default_audio_baselines_code_a_clip():
    """The lossy baselines of the audio task sweep compression levels in [0, 1] and each point codes a
    0.5 s clip (they were handed the music evaluation's target kbps as levels and failed every item)."""
    from wavelatent.evaluate.mpq import Item, _code_audio, default_audio_codecs

    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal((4000, 1))).astype(np.float32)
    for codec in default_audio_codecs(presets=[], baselines=["opus", "vorbis", "mp3"]):
        points = codec.points()
        assert points and all(0 <= p <= 1 for p in points), (codec.name, points)
        y, n, m = _code_audio(codec, Item("clip", 0, clip, 8000), points[0])
        assert y.shape == clip.shape and n > 0 and m["kbps"] > 0, codec.name


def test_align_short_clips():
    """evaluate.audio.align on clips shorter than its search window (was an IndexError)."""
    from wavelatent.evaluate.audio import align

    x = np.random.default_rng(0).normal(size=(1500, 1)).astype(np.float32)
    y = np.concatenate([np.zeros((3, 1), np.float32), x])  # 3 frames late, 3 longer
    np.testing.assert_array_equal(align(x, y), x)


def test_options_of_the_other_task_are_refused(tmp_path, capsys):
    """--classifier without --task classify, and --limit / --max-size with it, would be ignored: refused."""
    from wavelatent.cli import main as _cli

    folder = tmp_path / "imgs"
    folder.mkdir()
    assert _cli(["evaluate", str(folder), "-o", str(tmp_path / "o"), "--classifier", "c.safetensors"]) == 1
    assert "--task classify only" in capsys.readouterr().err
    assert _cli(["evaluate", str(folder), "-o", str(tmp_path / "o"), "--task", "classify", "--classifier",
                 "c.safetensors", "--max-size", "64"]) == 1
    assert "does not apply to --task classify" in capsys.readouterr().err
    assert _cli(["evaluate-audio", str(folder), "-o", str(tmp_path / "o"), "--limit-per-class", "3"]) == 1
    assert "--task classify only" in capsys.readouterr().err


def test_gray_weights_files_are_wrapped(tmp_path):
    """A 1-channel weights file given to the classify task codes the luma of the RGB items (as the gray
    presets do) instead of failing on every item; the RD evaluation still refuses it."""
    from wavelatent.evaluate.codecs import GrayToRGB, load_wavelatent_codecs
    from wavelatent.evaluate.mpq import default_image_codecs
    from wavelatent.models import create_codec
    from wavelatent.weights import save_weights

    path = tmp_path / "gray.safetensors"
    save_weights(create_codec("test-gray", seed=0), path)
    (codec,) = default_image_codecs([], [], [path], log=None)
    assert isinstance(codec, GrayToRGB)
    img = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    rec = codec.decompress(codec.compress(img, codec.points()[0]))
    assert rec.shape == img.shape and (rec[:, :, 0] == rec[:, :, 1]).all()
    with pytest.raises(InputError, match="evaluation compares RGB"):
        load_wavelatent_codecs([], [path])
