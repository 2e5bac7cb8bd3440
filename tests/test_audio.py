"""Audio: round trips over every audio preset, odd lengths, channel groups, chunk seams, resampling,
audio files in and out, bad files -> typed errors, training on excerpts.

The 1D wavelet packet oracle (PyWavelets) is in tests/test_transforms.py.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import wavelatent as wl
from wavelatent import container
from wavelatent.audio import (
    _Extended,
    channel_groups,
    compress_audio,
    compress_audio_file,
    decompress_audio,
    decompress_audio_file,
    geometry,
)
from wavelatent.cli import main
from wavelatent.errors import (
    HeaderError,
    InputError,
    UnreadableAudioError,
    UnsupportedAudioError,
    WavelatentError,
)
from wavelatent.io.audio import AudioReader, read_audio, resample, sniff_audio, write_audio
from wavelatent.models import create_codec
from wavelatent.registry import get_config, list_presets

sf = pytest.importorskip("soundfile")

AUDIO_PRESETS = [p for p in list_presets() if get_config(p).modality == "audio"]


def tone(frames: int, channels: int, rate: int, seed: int = 0) -> np.ndarray:
    """A deterministic test signal: a few partials per channel plus a little noise, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / rate
    f = rng.uniform(80, min(2000, rate / 4), (3, channels))
    x = sum(0.2 * np.sin(2 * np.pi * f[k] * t + k) for k in range(3))
    return (x + 0.01 * rng.standard_normal((frames, channels))).astype(np.float32)


def snr(ref: np.ndarray, x: np.ndarray) -> float:
    ref, x = ref.astype(np.float64), x.astype(np.float64)
    err = np.sum((ref - x) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(np.sum(ref**2) / err)


@pytest.fixture(autouse=True)
def _threads():
    """One torch thread (overrides conftest's two): 1D chunks are many small ops, and spinning
    OpenMP threads make them many times slower on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def codec():
    return create_codec("test-audio", seed=0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, codec):
    from wavelatent.weights import save_weights

    path = tmp_path_factory.mktemp("audio_weights") / "test-audio.safetensors"
    save_weights(codec, path)
    return path


# --------------------------------------------------------------------------- codec round trips
@pytest.mark.parametrize("preset", AUDIO_PRESETS)
def test_every_audio_preset_round_trips(preset):
    cfg = get_config(preset)
    model = create_codec(preset, seed=0)
    assert cfg.spatial_dims == 1 and cfg.sample_rate > 0 and model.signal_offset == 0.0
    for frames, channels, rate in [(1, 1, cfg.sample_rate), (cfg.block + 1, 2, cfg.sample_rate), (999, 6, 48000)]:
        x = tone(frames, channels, rate)
        data = compress_audio(x, rate, model)
        y, r = decompress_audio(data, model)
        assert y.shape == x.shape and y.dtype == np.float32 and r == rate
        info = wl.read_info(data)
        assert info["preset"] == preset and info["frames"] == frames and info["channels"] == channels
        assert info["kbps"] == pytest.approx(8 * len(data) / (frames / rate) / 1000)
    # the latent interface: [B, C, L] -> [B, K, ceil(L / 2**J)]
    y = model.encode(torch.zeros(1, cfg.channels, 3 * cfg.block + 1))
    assert tuple(y.shape) == (1, cfg.latent_channels, 4)


@pytest.mark.parametrize("frames", [1, 2, 3, 15, 16, 17, 63, 64, 65, 1023, 1025])
def test_odd_lengths(codec, frames):
    x = tone(frames, 2, 8000)
    y, rate = decompress_audio(compress_audio(x, 8000, codec), codec)
    assert y.shape == (frames, 2) and rate == 8000
    assert np.isfinite(y).all()


@pytest.mark.parametrize("channels", [1, 2, 5, 6])
def test_channel_groups(codec, channels):
    x = tone(700, channels, 8000, seed=channels)
    data = compress_audio(x, 8000, codec)
    info = wl.read_info(data)
    assert "groups" not in container.read_header(data)  # it follows from the channels and the preset
    assert info["groups"] == channel_groups(channels, 2)
    assert info["coding"].startswith(f"{len(info['groups'])} group(s) of 2 channel(s)")
    y, _ = decompress_audio(data, codec)
    assert y.shape == x.shape
    with pytest.raises(InputError, match="decompress_audio"):  # it would drop the sample rate
        wl.decompress(data, codec)


def test_groups_layout():
    assert channel_groups(6, 2) == [[0, 1], [2, 3], [4, 5]]
    assert channel_groups(5, 2) == [[0, 1], [2, 3], [4, 4]]
    assert channel_groups(1, 2) == [[0, 0]]
    assert channel_groups(2, 1) == [[0], [1]]


def test_integer_and_float_inputs(codec):
    x = tone(500, 2, 8000)
    as_int16 = np.round(x * 32767).astype(np.int16)
    y16, _ = decompress_audio(compress_audio(as_int16, 8000, codec), codec)
    y32, _ = decompress_audio(compress_audio(x, 8000, codec), codec)
    assert snr(y32, y16) > 30  # the same signal, one as int16
    loud = 3.0 * x
    data = compress_audio(loud, 8000, codec)
    assert container.read_header(data)["gain"] == pytest.approx(1 / np.abs(loud).max())
    with pytest.raises(InputError):
        compress_audio(np.full((10, 1), np.nan, np.float32), 8000, codec)
    with pytest.raises(UnsupportedAudioError):
        compress_audio(np.zeros((10, 1), np.complex64), 8000, codec)
    with pytest.raises(InputError):
        compress_audio(np.zeros((0, 2), np.float32), 8000, codec)
    with pytest.raises(InputError):
        compress_audio(x, 0, codec)
    with pytest.raises(InputError):
        compress_audio(x, 8000, create_codec("test-image", seed=0))


# --------------------------------------------------------------------------- chunks
def test_chunk_seams_are_inaudible(codec):
    """Chunked coding (small chunks, other decode chunks) matches whole-file coding: >= 50 dB."""
    x = tone(20_000, 2, 8000, seed=3)
    whole = compress_audio(x, 8000, codec, chunk_frames=1 << 20)
    assert len(np.frombuffer(container.unpack(whole).streams["chunks"], "<u4")) == 1
    y_whole, _ = decompress_audio(whole, codec)
    chunked = compress_audio(x, 8000, codec, chunk_frames=1000)
    assert len(np.frombuffer(container.unpack(chunked).streams["chunks"], "<u4")) > 10
    for decode_chunk in (None, 64, 777, 1 << 20):
        y, _ = decompress_audio(chunked, codec, chunk_frames=decode_chunk)
        assert snr(y_whole, y) >= 50
    # and with resampling in the pipeline (44.1 kHz source, 8 kHz codec)
    x = tone(30_000, 2, 44100, seed=4)
    a, _ = decompress_audio(compress_audio(x, 44100, codec, chunk_frames=1 << 20), codec)
    b, _ = decompress_audio(compress_audio(x, 44100, codec, chunk_frames=600), codec, chunk_frames=900)
    assert snr(a, b) >= 50


def test_extended_source_is_bounded_and_symmetric():
    n, block = 50_000, 1000
    x = np.arange(n, dtype=np.float32)[:, None]
    src = _Extended((x[i : i + block] for i in range(0, n, block)), n, keep=64)
    assert np.array_equal(src.get(-3, 2)[:, 0], [2, 1, 0, 0, 1])
    biggest = 0
    for a in range(0, n, 700):
        got = src.get(a - 40, a + 740)[:, 0]
        idx = np.abs(np.arange(a - 40, a + 740) + 0.5) - 0.5
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
        assert np.array_equal(got, idx)
        biggest = max(biggest, len(src._buf))
    assert biggest < 5 * 65536  # a few blocks, never the whole stream


def test_geometry_covers_the_decoder(codec):
    geo = geometry(codec)
    assert geo.block == 4 and geo.margin >= geo.synthesis >= 1 and geo.decoder == 2 * 3  # stem + 2 convs, k=5


# --------------------------------------------------------------------------- resampling
def test_streamed_resampling_equals_resample_poly():
    from scipy.signal import resample_poly

    x = tone(70_001, 2, 48000)
    for rate_in, rate_out, up, down in [(48000, 44100, 147, 160), (8000, 44100, 441, 80), (44100, 8000, 80, 441)]:
        got = resample(x, rate_in, rate_out)
        ref = resample_poly(x, up, down, axis=0)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-5


def test_resampled_round_trip_keeps_rate_and_length(codec):
    for rate in (44100, 48000, 11025, 8000):
        x = tone(rate // 10 + 7, 2, rate)
        data = compress_audio(x, rate, codec)
        header = container.read_header(data)
        assert header["sample_rate"] == rate and codec.config.sample_rate == 8000  # coded at the codec's rate
        y, r = decompress_audio(data, codec)
        assert r == rate and y.shape == x.shape


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_wav_subtypes_round_trip(tmp_path, codec, subtype):
    x = tone(3000, 2, 22050) * 0.9
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, 22050, subtype=subtype)
    data = compress_audio_file(src, codec)
    assert container.read_header(data)["subtype"] == subtype
    decompress_audio_file(data, out, codec)
    info = sf.info(out)
    assert (info.frames, info.channels, info.samplerate, info.subtype) == (3000, 2, 22050, subtype)


def test_pcm_written_back_exactly(tmp_path):
    """int16 and int24 samples survive read -> float -> write unchanged (rounding, no wrap-around)."""
    rng = np.random.default_rng(0)
    for subtype, top in (("PCM_16", 2**15), ("PCM_24", 2**23)):
        ints = rng.integers(-top, top, (500, 3))
        ints[0], ints[1] = -top, top - 1
        path, back = tmp_path / f"{subtype}.wav", tmp_path / f"{subtype}-2.wav"
        sf.write(path, (ints * (2**31 // top)).astype(np.int32), 8000, subtype=subtype)
        x, info = read_audio(path)
        assert info.subtype == subtype
        write_audio(back, x, 8000, subtype=subtype)
        y = sf.read(back, dtype="int32")[0] // (2**31 // top)
        assert np.array_equal(y, ints)
    write_audio(tmp_path / "clip.wav", np.array([[1.5], [-1.5]]), 8000, subtype="PCM_16")
    assert sf.read(tmp_path / "clip.wav", dtype="int16")[0].ravel().tolist() == [32767, -32768]


@pytest.mark.parametrize("fmt,subtype,suffix", [("FLAC", "PCM_16", ".flac"), ("OGG", "VORBIS", ".ogg"),
                                                ("OGG", "OPUS", ".opus"), ("MP3", "MPEG_LAYER_III", ".mp3")])
def test_compressed_sources(tmp_path, codec, fmt, subtype, suffix):
    path = tmp_path / f"in{suffix}"
    sf.write(path, tone(4800, 2, 48000) * 0.5, 48000, format=fmt, subtype=subtype)
    with AudioReader(path) as r:
        frames = r.info.frames
        assert len(r.read()) == frames
    data = compress_audio_file(path, codec)
    out = tmp_path / "out.flac"
    decompress_audio_file(data, out, codec)
    info = sf.info(out)
    assert (info.frames, info.channels, info.samplerate) == (frames, 2, 48000)
    assert sniff_audio(path.read_bytes()[:16])


def test_cli_round_trip(tmp_path, weights, capsys):
    song, wlt, wav = tmp_path / "song.flac", tmp_path / "s.wlt", tmp_path / "s.wav"
    sf.write(song, tone(44_101, 2, 44100), 44100, subtype="PCM_24")
    assert main(["compress", str(song), "-o", str(wlt), "-w", str(weights)]) == 0
    err = capsys.readouterr().err
    kbps = 8 * wlt.stat().st_size / (44_101 / 44100) / 1000
    assert f"{kbps:.2f} kbps" in err and "44101 frames x 2 ch at 44100 Hz" in err
    assert main(["decompress", str(wlt), "-o", str(wav), "-w", str(weights), "--reference", str(song)]) == 0
    assert "SNR" in capsys.readouterr().err
    info = sf.info(wav)
    assert (info.frames, info.channels, info.samplerate, info.subtype) == (44_101, 2, 44100, "PCM_24")
    assert main(["decompress", str(wlt), "-w", str(weights)]) == 1  # default output s.wav exists
    assert main(["decompress", str(wlt), "-w", str(weights), "--force"]) == 0
    assert main(["info", str(wlt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modality"] == "audio" and info["frames"] == 44_101 and info["kbps"] > 0
    assert main(["info", "test-audio"]) == 0 and "sample_rate" in capsys.readouterr().out


def test_cli_tree_and_stdin_stdout(tmp_path, weights, monkeypatch):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "a.wav", tone(900, 1, 8000), 8000)
    sf.write(src / "sub" / "b.flac", tone(901, 6, 16000), 16000)
    assert main(["compress", str(src), "-o", str(tmp_path / "coded"), "-w", str(weights), "--quiet"]) == 0
    assert main(["decompress", str(tmp_path / "coded"), "-o", str(tmp_path / "dec"), "-w", str(weights),
                 "--quiet"]) == 0
    assert sf.info(tmp_path / "dec" / "sub" / "b.wav").channels == 6
    # stdin -> stdout, in process: WAV in, .wlt out, .wlt in, WAV (header written first) out
    wav = io.BytesIO()
    sf.write(wav, tone(1234, 2, 8000), 8000, format="WAV", subtype="PCM_16")

    def run(args, data: bytes) -> bytes:
        out = io.BytesIO()
        monkeypatch.setattr(sys, "stdin", type("In", (), {"buffer": io.BytesIO(data)})())
        monkeypatch.setattr(sys, "stdout", type("Out", (), {"buffer": out})())
        assert main(args) == 0
        return out.getvalue()

    coded = run(["compress", "-", "-o", "-", "-w", str(weights), "--quiet"], wav.getvalue())
    assert coded[:4] == b"WLAT"
    decoded = run(["decompress", "-", "-o", "-", "-w", str(weights), "--quiet"], coded)
    y, rate = sf.read(io.BytesIO(decoded))
    assert y.shape == (1234, 2) and rate == 8000


def test_bad_audio_files(tmp_path, codec, weights, capsys):
    good = tmp_path / "good.wav"
    sf.write(good, tone(4000, 2, 8000), 8000)
    raw = good.read_bytes()
    cases = {
        "garbage.wav": b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk",
        "text.mp3": b"this is not an mp3 file at all" * 10,
        "empty.flac": b"",
        "truncated.flac": b"fLaC\x00\x00\x00\x22" + b"\x00" * 10,
        "noise.ogg": b"OggS" + bytes(range(200)),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnreadableAudioError):
            compress_audio_file(tmp_path / name, codec)
        assert main(["compress", str(tmp_path / name), "-o", str(tmp_path / "x.wlt"), "-w", str(weights)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("wavelatent: error:") and "Traceback" not in err
    empty = tmp_path / "silent.wav"
    sf.write(empty, np.zeros((0, 2)), 8000)
    with pytest.raises(UnreadableAudioError):
        compress_audio_file(empty, codec)
    with pytest.raises(InputError):
        compress_audio_file(tmp_path / "missing.wav", codec)
    with pytest.raises(InputError):
        compress_audio_file(tmp_path, codec)
    assert not (tmp_path / "x.wlt").exists()
    # a truncated data chunk decodes the frames it has (libsndfile trims the declared length)
    (tmp_path / "cut.wav").write_bytes(raw[: len(raw) // 2])
    with AudioReader(tmp_path / "cut.wav") as r:
        assert 0 < r.info.frames < 4000
    # outputs: audio decodes to .wav or .flac only; corrupt containers raise typed errors
    data = compress_audio(tone(100, 2, 8000), 8000, codec)
    with pytest.raises(InputError):
        decompress_audio_file(data, tmp_path / "out.mp3", codec)
    (tmp_path / "a.wlt").write_bytes(data)
    assert main(["decompress", str(tmp_path / "a.wlt"), "-o", str(tmp_path / "out.mp3"), "-w", str(weights)]) == 1
    c = container.unpack(data)
    for key, value in [("frames", 0), ("groups", [[0, 1], [0, 1]]), ("chunk", 0), ("sample_rate", -1),
                       ("gain", 2.0), ("coded_frames", 1)]:
        header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version")}
        header[key] = value
        with pytest.raises(HeaderError):
            decompress_audio(container.pack(header, c.streams), codec)
    header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version")}
    with pytest.raises(HeaderError):
        decompress_audio(container.pack(header, {"latent": c.streams["latent"], "chunks": b"\0\0\0\0" * 2}), codec)
    with pytest.raises(WavelatentError):
        decompress_audio(data[:-5], codec)
    with pytest.raises(HeaderError):  # an image decoder does not take audio and vice versa
        decompress_audio(wl.compress(np.zeros((8, 8, 3), np.uint8), create_codec("test-image", seed=0)), codec)


# --------------------------------------------------------------------------- training
def test_train_on_audio_resumes_exactly(tmp_path):
    from wavelatent.train import TrainOptions, load_checkpoint, train

    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(4):
        sf.write(folder / f"{i}.wav", tone(3000 + 500 * i, 1 + i % 2, 8000 if i else 16000, seed=i), 8000 if i else 16000)

    def opts(out, **kw):
        base = dict(data=str(folder), out=str(tmp_path / out), preset="test-audio", steps=6, batch_size=2,
                    excerpt=256, val_count=1, val_every=3, warmup=2, ema=0.9, progress=False, checkpoint_minutes=60)
        return TrainOptions(**{**base, **kw})

    full = load_checkpoint(train(opts("full")))
    train(opts("part", stop_at=2))
    resumed = load_checkpoint(train(opts("part", resume=True)))
    assert resumed.step == 6
    for k, v in full.codec.state_dict().items():
        assert torch.equal(v, resumed.codec.state_dict()[k]), k
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert any("val_snr" in r and "val_kbps" in r for r in log)


# --------------------------------------------------------------------------- shipped weights
SHIPPED_AUDIO = [p for p in AUDIO_PRESETS if __import__("wavelatent.weights", fromlist=["x"]).has_shipped_weights(p)]
PINNED_AUDIO = Path(__file__).resolve().parents[1] / "results" / "audio" / "pinned.json"


@pytest.mark.parametrize("preset", SHIPPED_AUDIO)
def test_shipped_audio_quality(preset):
    """Held-out material (never trained on, middle 5 s): bytes (within 1 %) and SNR (within 0.05 dB) at
    every quality as pinned by ``scripts/pin_rd.py`` in ``results/audio/pinned.json``."""
    from .conftest import DATA

    table = json.loads(PINNED_AUDIO.read_text())
    if preset not in table["presets"]:
        if preset.startswith("test-"):
            pytest.skip("test presets are pinned by tests/test_golden.py")
        pytest.fail(f"{preset} ships weights but is not pinned: run `{table['command']}`")
    pinned = table["presets"][preset]
    path = DATA / "audio" / pinned["file"]
    if not path.exists():
        pytest.skip("held-out audio not available")
    model = wl.load_codec(preset)
    if model.weights_sha256 != pinned["weights_sha256"]:
        pytest.fail(f"the weights of {preset} changed since {PINNED_AUDIO.name} was pinned: regenerate with "
                    f"`{table['command']}`")
    sys.path.insert(0, str(PINNED_AUDIO.parents[2] / "scripts"))
    from pin_rd import measure_audio

    rows = measure_audio(preset, path)
    sizes, scores = [r["bytes"] for r in rows], [r["snr"] for r in rows]
    assert sizes == sorted(sizes), f"rates not increasing: {sizes}"
    for got, want in zip(rows, pinned["rows"], strict=True):
        assert got["snr"] == pytest.approx(want["snr"], abs=0.05), (preset, got)
        assert got["bytes"] == pytest.approx(want["bytes"], rel=0.01), (preset, got)
    assert max(scores) - scores[0] > 0.5


def test_extended_reader_matches_the_reflection_formula():
    """Chunks read as a slice inside the signal plus reflected indices beyond its ends: the same frames
    as indexing every position by the symmetric extension, for short signals and ranges past both ends."""
    from wavelatent.audio import _Extended

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 50))
        x = rng.standard_normal((n, 2)).astype(np.float32)
        a = int(rng.integers(-120, 120))
        b = a + int(rng.integers(1, 150))
        idx = np.mod(np.arange(a, b), 2 * n)
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
        blocks = [x[i : i + 7] for i in range(0, n, 7)]  # arriving block by block
        assert np.array_equal(_Extended(blocks, n, keep=1 << 20).get(a, b), x[idx]), (n, a, b)
