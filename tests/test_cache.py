"""Latent caches, the datasets that read them, the Ray engine and the learn experiment, on tiny data."""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import wavelatent as wl
from wavelatent import container
from wavelatent.data import EncodedImageFolder, LatentDataset, build_cache, read_index
from wavelatent.data.cache import CacheError, CacheMismatchError, prepare_image
from wavelatent.data.flip import LatentFlip
from wavelatent.errors import InputError, WavelatentError
from wavelatent.io.images import to_tensor
from wavelatent.models import load_codec

from .conftest import DATA, smooth_image

SIZE = 32  # test-image: J=2, so 8x8 latents of 6 channels


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two classes of five images each, of assorted sizes (some smaller than SIZE, one grayscale)."""
    root = tmp_path_factory.mktemp("src")
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir()
        for i in range(5):
            im = smooth_image(24 + 7 * i, 41 + 3 * c, seed=10 * c + i)
            if i == 4:
                im = im[:, :, :1].repeat(3, axis=2)
                Image.fromarray(im[:, :, 0]).save(root / name / f"{i}.png")
            else:
                Image.fromarray(im).save(root / name / f"{i}.png")
    (root / ".hidden").mkdir()
    Image.fromarray(smooth_image(32, 32)).save(root / ".hidden" / "x.png")
    return root


@pytest.fixture(scope="module")
def codec(test_weights):
    return load_codec(test_weights)


def _build(folder, out, weights, **kw):
    kw.setdefault("size", SIZE)
    kw.setdefault("shard_size", 4)
    kw.setdefault("progress", False)
    return build_cache(folder, out, weights, **kw)


def _direct(codec, folder: Path, index: dict) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for s in index["sources"]:
            x = to_tensor(prepare_image(folder / s["name"], index["size"]))
            out.append(codec.quantize(codec.encode(x), index["quality"])[0].numpy())
    return np.stack(out)


def test_raw_and_coded_round_trip(folder, tmp_path, test_weights, codec):
    raw = _build(folder, tmp_path / "raw", test_weights)
    coded = _build(folder, tmp_path / "coded", test_weights, storage="coded")
    idx = read_index(tmp_path / "raw")
    assert idx == raw.index and idx["complete"] and idx["samples"] == 10
    assert idx["classes"] == ["cat", "dog"] and [s["label"] for s in idx["sources"]] == [0] * 5 + [1] * 5
    assert idx["latent_shape"] == [6, 8, 8] and idx["dtype"] == "int8" and idx["weights_sha256"] == codec.weights_sha256
    assert [s["count"] for s in idx["shards"]] == [4, 4, 2]
    assert all(s["bytes"] == (folder / s["name"]).stat().st_size for s in idx["sources"])
    want = _direct(codec, folder, idx)
    d_raw = LatentDataset(tmp_path / "raw", output="symbols")
    d_coded = LatentDataset(tmp_path / "coded", output="symbols", weights=test_weights)
    assert np.array_equal(d_raw.all_symbols(), want) and np.array_equal(d_coded.all_symbols(), want)
    # latents are q * step, labels ride along
    y, label = LatentDataset(tmp_path / "raw")[7]
    assert y.dtype == torch.float32 and label == 1
    assert torch.equal(y, torch.from_numpy(want[7]).float() * idx["step"])
    # each coded sample is exactly the latent stream of compressing the resized image
    from wavelatent.api import compress
    from wavelatent.data.cache import read_coded_shard

    shard = (tmp_path / "coded" / "shard-000001.wlt").read_bytes()
    c = container.unpack(shard)
    lengths = np.frombuffer(c.streams["lengths"], "<u4")
    first = bytes(c.streams["latents"][: lengths[0]])
    img = prepare_image(folder / idx["sources"][4]["name"], SIZE)
    assert container.unpack(compress(img, codec)).streams["latent"] == first
    header, _ = read_coded_shard(shard, codec)
    assert header["labels"] == [0, 1, 1, 1] and header["first"] == 4
    # a header whose shape or count does not fit the codec is refused before anything is allocated
    for bad in ({"latent_shape": [6, 4]}, {"latent_shape": [6, 1 << 20, 1 << 20]}, {"count": 1 << 40},
                {"latent_shape": [5, 4, 4]}, {"count": -1}):
        head = {k: v for k, v in c.header.items() if k not in ("format_version", "streams")}
        forged = container.pack({**head, **bad}, {k: bytes(v) for k, v in c.streams.items()})
        with pytest.raises(CacheError):
            read_coded_shard(forged, codec)
    with pytest.raises(CacheError, match="the index says"):
        read_coded_shard(shard, codec, (4, [6, 4, 5]))
    lat = bytearray(c.streams["latents"])
    lat[:8] = b"\xff" * 8  # a corrupt rANS stream is a CacheError too
    head = {k: v for k, v in c.header.items() if k not in ("format_version", "streams")}
    with pytest.raises(CacheError, match="does not decode"):
        read_coded_shard(container.pack(head, {"lengths": bytes(c.streams["lengths"]), "latents": bytes(lat)}), codec)
    # coded shards are smaller than raw ones
    assert coded.cache_bytes < raw.cache_bytes
    # on the fly, in the same layout
    fly = EncodedImageFolder(folder, codec, size=SIZE, output="symbols")
    assert len(fly) == 10 and fly.classes == ["cat", "dog"]
    assert all(torch.equal(fly[i][0], d_raw[i][0]) and fly[i][1] == d_raw[i][1] for i in (0, 9))


def test_resume_skips_finished_shards(folder, tmp_path, test_weights, monkeypatch):
    from wavelatent.data import cache

    out = tmp_path / "c"
    real = cache.run_shard
    calls = []

    def dying(task, codec):
        calls.append(task["name"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(task, codec)

    monkeypatch.setattr(cache, "run_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        _build(folder, out, test_weights)
    monkeypatch.setattr(cache, "run_shard", real)
    assert not read_index(out)["complete"] and sorted(p.name for p in out.glob("shard-*")) == ["shard-000000.tar"]
    with pytest.raises(CacheError, match="incomplete"):
        LatentDataset(out)
    before = (out / "shard-000000.tar").stat().st_mtime_ns
    r = _build(folder, out, test_weights)
    assert (r.written, r.skipped) == (2, 1) and (out / "shard-000000.tar").stat().st_mtime_ns == before
    again = _build(folder, out, test_weights)
    assert (again.written, again.skipped) == (0, 3) and again.index == r.index
    fresh = _build(folder, tmp_path / "fresh", test_weights)
    assert fresh.index == r.index  # a resumed cache is the same as one made in one go


def test_mismatch_refused(folder, tmp_path, test_weights):
    from wavelatent.models import create_codec
    from wavelatent.weights import save_weights

    other = tmp_path / "other.safetensors"
    save_weights(create_codec("test-image", seed=1), other)
    out = tmp_path / "c"
    _build(folder, out, test_weights)
    with pytest.raises(CacheMismatchError, match="refusing to mix"):
        _build(folder, out, other)
    with pytest.raises(CacheMismatchError, match="quality"):
        _build(folder, out, test_weights, quality=1)
    with pytest.raises(CacheMismatchError, match="size"):
        _build(folder, out, test_weights, size=40)
    # coded caches check the weights they are decoded with
    _build(folder, tmp_path / "coded", test_weights, storage="coded")
    with pytest.raises(CacheError, match="weights"):
        LatentDataset(tmp_path / "coded", weights=other)  # refused when made, not later in a worker
    ds = LatentDataset(tmp_path / "coded", weights=test_weights)
    x0 = ds[0][0]
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker gets: no codec, no decoded shards
    assert copy._codec is None and not copy._shards and torch.equal(copy[0][0], x0)
    pre = LatentDataset(tmp_path / "coded", weights=test_weights, preload=True)
    assert len(pre._shards) == len(pre.index["shards"]) and torch.equal(pre[0][0], x0)
    assert len(pickle.loads(pickle.dumps(pre))._shards) == len(pre._shards)  # preloaded symbols travel along
    with pytest.raises(InputError, match="preload"):
        LatentDataset(tmp_path / "coded", weights=test_weights, preload=True, max_cached_shards=0)


def test_dataset_with_dataloader(folder, tmp_path, test_weights):
    out = tmp_path / "c"
    _build(folder, out, test_weights, size=48)  # 12x12 latents
    full = LatentDataset(out)
    ds = LatentDataset(out, crop=8, random_crop=True, flip=True)
    assert ds.latent_shape == (6, 8, 8)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    xs, ys = zip(*loader)
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (10, 6, 8, 8) and x.dtype == torch.float32 and y.tolist() == [0] * 5 + [1] * 5
    # every sample is a window of its latent or of its fitted mirror image
    flip = LatentFlip(read_index(out)["flip"])
    for i in range(10):
        y_full = full[i][0]
        y_flip = flip(y_full[None])[0]
        windows = [y[:, t : t + 8, l : l + 8] for y in (y_full, y_flip) for t in range(5) for l in range(5)]
        assert any(torch.allclose(x[i], w, atol=1e-5) for w in windows)
    centre = LatentDataset(out, crop=8, output="symbols")
    assert centre[0][0].dtype == torch.int8 and torch.equal(centre[0][0].float(), full[0][0][:, 2:10, 2:10])
    # flip="mirror" is the plain reversal of the symbols; fitted flips of symbols stay on the grid
    torch.manual_seed(0)
    mirrored = [LatentDataset(out, output="symbols", flip="mirror")[3][0] for _ in range(8)]
    q = torch.from_numpy(full.symbols(3))
    assert all(torch.equal(m, q) or torch.equal(m, q.flip(-1)) for m in mirrored)
    assert any(torch.equal(m, q.flip(-1)) for m in mirrored)
    fitted = [LatentDataset(out, output="symbols", flip=True)[3][0] for _ in range(8)]
    assert all(f.dtype == torch.int8 and int(f.abs().max()) <= read_index(out)["max_symbol"] for f in fitted)


def test_fitted_flip_beats_reversal(folder, codec):
    from wavelatent.data.flip import LatentFlip, fit_flip, flip_error

    images = [prepare_image(p, 32) for p in sorted(folder.rglob("*.png"))]
    fit = fit_flip(codec, images)
    assert np.asarray(fit["weight"]).shape == (6, 6, 3) and fit["images"] == len(images)
    assert fit["error_fitted"] < 0.8 * fit["error_plain"]
    assert flip_error(codec, images) == pytest.approx(fit["error_plain"], rel=1e-4)
    assert flip_error(codec, images, LatentFlip(fit)) == pytest.approx(fit["error_fitted"], rel=1e-3)


def test_cache_readable_by_webdataset(folder, tmp_path, test_weights):
    wds = pytest.importorskip("webdataset")
    from numpy.lib.format import read_array

    out = tmp_path / "c"
    _build(folder, out, test_weights)
    urls = [str(out / s["name"]) for s in read_index(out)["shards"]]
    npy = lambda b: read_array(io.BytesIO(b), allow_pickle=False)  # noqa: E731
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).to_tuple("npy", "cls").map_tuple(npy, int)
    got = list(ds)
    ref = LatentDataset(out, output="symbols")
    assert len(got) == 10
    assert all(np.array_equal(q, ref.symbols(i)) and c == ref.labels[i] for i, (q, c) in enumerate(got))


def test_process_pool_equals_serial(folder, tmp_path, test_weights):
    serial = _build(folder, tmp_path / "serial", test_weights, storage="coded")
    pool = _build(folder, tmp_path / "pool", test_weights, storage="coded", jobs=2)
    assert pool.index == serial.index and pool.written == 3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ray_equals_local(folder, tmp_path, test_weights, audio_folder, mono_weights):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for storage in ("raw", "coded"):
            local = _build(folder, tmp_path / f"local-{storage}", test_weights, storage=storage)
            r = _build(folder, tmp_path / f"ray-{storage}", test_weights, storage=storage, engine="ray", jobs=2)
            assert r.index == local.index and r.written == 3  # same shards, byte for byte (sha256 in the index)
        # audio caches take the same path
        kw = dict(size=512, storage="coded", shard_size=4, progress=False)
        local = build_cache(audio_folder, tmp_path / "a-local", mono_weights, **kw)
        r = build_cache(audio_folder, tmp_path / "a-ray", mono_weights, engine="ray", jobs=2, **kw)
        assert r.index == local.index and r.written == 2
    finally:
        ray.shutdown()


def _cli(argv) -> int:
    """The cache/learn subcommands as cli/main.py runs them (errors -> exit 1)."""
    from wavelatent.cli.learning import add_parsers

    p = argparse.ArgumentParser()
    handlers = add_parsers(p.add_subparsers(dest="command"))
    a = p.parse_args(argv)
    try:
        return handlers[a.command](a)
    except WavelatentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def test_cli_cache(folder, tmp_path, test_weights, capsys):
    out = tmp_path / "c"
    args = ["cache", str(folder), "-o", str(out), "-w", str(test_weights), "--size", "32", "--no-progress"]
    assert _cli(args + ["--format", "coded"]) == 0
    assert "10 samples" in capsys.readouterr().err
    assert _cli(args + ["--format", "raw"]) == 1  # same folder, other storage: refused
    assert _cli(["cache", str(folder), "-o", str(out), "--no-progress"]) == 1  # no preset or weights


def _class_image(label: int, seed: int) -> np.ndarray:
    im = smooth_image(48, 56, seed=seed).astype(np.int16)
    im[:, :, label * 2] += 60  # class 0 redder, class 1 bluer
    return np.clip(im, 0, 255).astype(np.uint8)


def test_learn_beats_chance_on_images(tmp_path):
    """Redder vs bluer images, 16 training images each: the trained test-image latents and 8 px
    pixels must classify the 16 validation images far better than chance (50 %)."""
    from wavelatent.learn import LearnOptions, learn

    torch.set_num_threads(1)  # tiny batches: a second thread only adds contention
    data = tmp_path / "data"
    for split, n in (("train", 16), ("val", 8)):
        for label, name in enumerate(("a", "b")):
            (data / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_class_image(label, 100 * label + i + 50 * (split == "val"))).save(
                    data / split / name / f"{i}.png")
    opts = LearnOptions(str(data), str(tmp_path / "out"), inputs=("latents:test-image", "pixels:8"), epochs=10,
                        batch_size=8, width=8, size=48, crop=32, grid=4, progress=False)
    doc = learn(opts)
    assert doc["val_samples"] == 16
    for r in doc["runs"]:  # measured: 1.0 and 0.94
        assert r["top1"] >= 0.8, (r["input"], r["top1"])


def test_learn_tiny(tmp_path, test_weights):
    from wavelatent.learn import INPUT_TYPES, LearnOptions, learn, register_input

    data = tmp_path / "data"
    for split, n in (("train", 6), ("val", 3)):
        for label, name in enumerate(("a", "b")):
            (data / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_class_image(label, 100 * label + i + 50 * (split == "val"))).save(
                    data / split / name / f"{i}.png")
    out = tmp_path / "out"

    def gray(images):  # a registered input type, as a TAEF2 plugin would add one: float [N, 1, H/4, W/4]
        return images.reshape(len(images), 12, 4, 12, 4, 3).mean(axis=(2, 4, 5))[:, None].astype(np.float32)

    register_input("test-gray", gray, description="gray 4x", replace=True)
    opts = LearnOptions(str(data), str(out), inputs=(f"latents:{test_weights}", "pixels:8", "test-gray"), epochs=1,
                        batch_size=4, width=8, size=48, crop=32, grid=4, progress=False)
    try:
        doc = learn(opts)
    finally:
        INPUT_TYPES.pop("test-gray")
    assert doc["runs"][2]["shape"] == [1, 8, 8] and doc["runs"][2]["bytes_raw"] == 4 * 8 * 8
    saved = json.loads((out / "results.json").read_text())
    assert saved["runs"][0]["input"] == f"latents:{test_weights}" and len(saved["runs"]) == 3
    assert saved["train_samples"] == 12 and saved["val_samples"] == 6 and saved["classes"] == ["a", "b"]
    lat, pix, _ = doc["runs"]
    assert lat["shape"] == [6, 8, 8] and pix["shape"] == [3, 8, 8]
    assert lat["bytes_raw"] == 6 * 8 * 8 and pix["bytes_raw"] == 3 * 8 * 8 and lat["bytes_coded"] > 0
    assert lat["flips"] == "mirrored images" and pix["flips"] == "reversed"
    # one epoch exercises the plumbing (test_learn_beats_chance_on_images learns): top-1 counts the 6 images
    assert round(lat["top1"] * 6, 4).is_integer() and len(lat["history"]) == 1 and lat["epoch_seconds"] > 0
    assert (out / "results.md").is_file()
    # a rerun skips finished inputs
    stamp = (out / "runs" / "pixels_8.seed0.json").stat().st_mtime_ns
    again = learn(dataclasses.replace(opts, inputs=opts.inputs[:2]))
    assert again["runs"] == doc["runs"][:2]
    assert (out / "runs" / "pixels_8.seed0.json").stat().st_mtime_ns == stamp


# --- audio caches -------------------------------------------------------------
def _tone(f: float, n: int, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * f * t)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


@pytest.fixture
def audio_folder(tmp_path):
    """Two classes of short recordings: 8 kHz mono, one 16 kHz and one stereo file among them."""
    import soundfile as sf

    root = tmp_path / "sounds"
    for label, f in (("hi", 1500.0), ("lo", 300.0)):
        (root / label).mkdir(parents=True)
        for i in range(3):
            rate, ch = (16000, 1) if i == 1 else (8000, 2 if i == 2 else 1)
            sf.write(root / label / f"{label}_{i}.wav", _tone(f * (1 + 0.1 * i), 300 + 200 * i, rate, ch), rate,
                     subtype="PCM_16")
    (root / "hi" / "notes.txt").write_text("not audio")
    return root


def test_audio_cache_raw_and_coded(audio_folder, tmp_path, mono_weights):
    from wavelatent.data.cache import encode_symbols, prepare_audio

    codec = load_codec(mono_weights)
    raw = build_cache(audio_folder, tmp_path / "raw", codec, size=512, progress=False)
    coded = build_cache(audio_folder, tmp_path / "coded", codec, size=512, storage="coded", shard_size=4,
                        progress=False)
    assert [s["count"] for s in coded.index["shards"]] == [4, 2] and coded.cache_bytes < raw.cache_bytes
    idx = raw.index
    assert idx["latent_shape"] == [2, 128] and idx["samples"] == 6 and idx["classes"] == ["hi", "lo"]
    assert idx["flip"] is None and "512 samples" in idx["resize"]
    a = LatentDataset(tmp_path / "raw", output="symbols")
    b = LatentDataset(tmp_path / "coded", output="symbols", weights=mono_weights)
    assert np.array_equal(a.all_symbols(), b.all_symbols())
    # sample i is the encoding of the prepared clip (16 kHz resampled, stereo mixed to mono, centred)
    assert not prepare_audio(audio_folder / "lo" / "lo_0.wav", 512, 8000, 1)[0, :106].any()  # 300 samples, centred
    clip = prepare_audio(audio_folder / "lo" / "lo_2.wav", 512, 8000, 1)  # stereo, 700 samples: the centre 512
    assert clip.shape == (1, 512) and abs(clip).max() > 0.2 and clip[0, :5].all()
    i = a.sources.index("lo/lo_2.wav")
    assert np.array_equal(a.symbols(i), encode_symbols(codec, [clip])[0].astype(a.dtype))
    assert a.labels[i] == 1
    # 1-D crops; flips are for images
    x, y = LatentDataset(tmp_path / "raw", crop=100, random_crop=True)[0]
    assert x.shape == (2, 100) and x.dtype == torch.float32
    with pytest.raises(WavelatentError, match="flip is for image"):
        LatentDataset(tmp_path / "raw", flip=True)
    with pytest.raises(WavelatentError):
        LatentDataset(tmp_path / "raw", crop=(10, 10))
    with pytest.raises(WavelatentError, match="no audio files"):
        build_cache(tmp_path / "raw", tmp_path / "x", codec, size=512, progress=False)


def test_audio_cache_labels_from_prefix(audio_folder, tmp_path, mono_weights):
    r = build_cache(audio_folder, tmp_path / "c", mono_weights, size=256, labels="from-prefix", progress=False)
    assert r.index["classes"] == ["hi", "lo"] and [s["label"] for s in r.index["sources"]] == [0, 0, 0, 1, 1, 1]
    (audio_folder / "lo" / "noprefix.wav").write_bytes((audio_folder / "lo" / "lo_0.wav").read_bytes())
    with pytest.raises(WavelatentError, match="from-prefix"):
        build_cache(audio_folder, tmp_path / "d", mono_weights, size=256, labels="from-prefix", progress=False)


def test_cli_cache_audio(audio_folder, tmp_path, mono_weights, capsys):
    out = tmp_path / "c"
    assert _cli(["cache", str(audio_folder), "-o", str(out), "-w", str(mono_weights), "--no-progress"]) == 0
    assert "6 samples of 2x2000" in capsys.readouterr().err  # default: one second at 8 kHz
    assert _cli(["cache", str(audio_folder), "-o", str(tmp_path / "d"), "-w", str(mono_weights), "--size",
                 str(1 << 25), "--no-progress"]) == 1
    with pytest.raises(WavelatentError, match="--size must be an integer in 1..16777216"):
        build_cache(audio_folder, tmp_path / "d", mono_weights, size=1 << 25, progress=False)
    # a shard is held in memory while it is written: long clips need smaller shards (said before any work)
    with pytest.raises(WavelatentError, match="use --shard-size 16 or less"):
        build_cache(audio_folder, tmp_path / "d", mono_weights, size=1 << 24, progress=False)
    assert not (tmp_path / "d").exists()


IMAGENETTE_VAL = DATA / "imagenette" / "val"


@pytest.mark.parametrize("preset", ["image-rgb-16x", "image-rgb-4x"])
def test_coded_cache_streams_are_compress_streams(tmp_path, preset):
    """A coded cache sample is, byte for byte, the ``latent`` stream ``wavelatent.compress`` writes
    for the same resized image (same uint8 path, same entropy model: image-rgb-4x's context model)."""
    import shutil

    from wavelatent.data.cache import read_coded_shard

    if not IMAGENETTE_VAL.is_dir():
        pytest.skip("Imagenette is not in shared/data")
    sources = [sorted(d.glob("*.JPEG"))[0] for d in sorted(IMAGENETTE_VAL.iterdir())[:3]]
    src = tmp_path / "src"
    for p in sources:
        (src / p.parent.name).mkdir(parents=True)
        shutil.copy(p, src / p.parent.name / p.name)
    result = build_cache(src, tmp_path / "cache", preset, storage="coded", progress=False, flip_images=0)
    quality = result.index["quality"]
    shard = (tmp_path / "cache" / result.index["shards"][0]["name"]).read_bytes()
    c = container.unpack(shard)
    lengths = np.frombuffer(c.streams["lengths"], dtype="<u4")
    streams = np.split(np.frombuffer(c.streams["latents"], np.uint8), np.cumsum(lengths)[:-1])
    codec = wl.load_codec(preset)
    _, symbols = read_coded_shard(shard, codec)
    assert len(streams) == len(sources)
    for i, entry in enumerate(result.index["sources"]):
        img = prepare_image(src / entry["name"], result.index["size"], 3)
        data = wl.compress(img, preset, quality)
        assert streams[i].tobytes() == container.unpack(data).streams["latent"], entry["name"]
        header = container.read_header(data)
        assert symbols[i].shape == (codec.config.latent_channels, *codec.latent_size((header["height"], header["width"])))


def test_coded_shards_name_their_entropy_model_and_old_shards_still_read():
    """A context-model codec writes shards with ``entropy`` in the header; shards written before
    (no field: factorized streams) still decode to the same symbols."""
    import dataclasses

    from wavelatent.bitstream import LatentCoder
    from wavelatent.data.cache import coded_shard_bytes, encode_symbols, read_coded_shard
    from wavelatent.models import create_codec
    from wavelatent.registry import get_config
    from wavelatent.weights import weights_sha256

    codec = create_codec(dataclasses.replace(get_config("test-image"), context="checkerboard"), seed=0)
    q = encode_symbols(codec, [smooth_image(32, 32, seed=i) for i in range(2)], 1)
    sha = weights_sha256(codec)
    data = coded_shard_bytes(codec, 1, 0, q, None, sha)
    header = {k: v for k, v in container.read_header(data).items() if k not in ("streams", "format_version")}
    assert header["entropy"] == "checkerboard"
    assert np.array_equal(read_coded_shard(data, codec)[1], q)
    plain = LatentCoder(codec, 1, entropy="none")
    streams = [plain.compress(s) for s in q]
    del header["entropy"]
    old = container.pack(header, {"lengths": np.array([len(s) for s in streams], "<u4").tobytes(),
                                  "latents": b"".join(streams)})
    assert np.array_equal(read_coded_shard(old, codec)[1], q)
    header["entropy"] = "grid"
    with pytest.raises(CacheError):
        read_coded_shard(container.pack(header, container.unpack(old).streams), codec)
