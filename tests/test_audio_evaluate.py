"""evaluate-audio: the log-spectral distance's definition, baselines at target bitrates, both
decoder outputs (MSE and noise-filled) and the files a run writes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wavelatent.evaluate.audio import (
    WavelatentAudioCodec,
    evaluate_audio,
    log_spectral_distance,
    make_baselines,
)
from wavelatent.errors import InputError
from wavelatent.models import create_codec

sf = pytest.importorskip("soundfile")


def music(seconds: float, rate: int = 44100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate))[:, None] / rate
    x = 0.3 * np.sin(2 * np.pi * 330 * t + np.array([0, 1])) + 0.05 * rng.standard_normal((len(t), 2))
    return x.astype(np.float32)


def test_lsd_definition():
    rate = 44100
    x = music(1.0)
    assert log_spectral_distance(x, x, rate) == 0
    silence = np.zeros_like(x)
    assert log_spectral_distance(silence, silence, rate) == 0  # both at the floor
    # a hole: everything above 5 kHz removed. The floor bounds the difference at -100 dBFS per bin
    spec = np.fft.rfft(x, axis=0)
    spec[np.fft.rfftfreq(len(x), 1 / rate) > 5000] = 0
    holes = np.fft.irfft(spec, len(x), axis=0).astype(np.float32)
    lsd = log_spectral_distance(x, holes, rate)
    assert 10 < lsd < 100
    # per frame: sqrt(mean over bins of dB^2); a uniform gain of g dB gives exactly |g|
    assert log_spectral_distance(x, x * np.float32(10 ** (-6 / 20)), rate) == pytest.approx(6.0, abs=1e-3)
    # short signals: one zero-padded frame
    assert log_spectral_distance(x[:100], 0.5 * x[:100], rate) == pytest.approx(20 * np.log10(2), abs=0.02)


def test_opus_meets_a_target_bitrate():
    opus = make_baselines(["opus"])[0]
    assert opus.points()[0] == 16.0 and 128.0 in opus.points()
    x = music(3.0, 48000)
    level = opus.level_for(x, 48000, 64.0)
    kbps = 8 * len(opus.compress(x, 48000, level)) / 3.0 / 1000
    assert abs(kbps / 64 - 1) < 0.25
    vorbis = make_baselines(["vorbis"])[0]
    with pytest.raises(InputError, match="cannot reach"):  # Vorbis's floor is far above 8 kbps
        vorbis.level_for(x, 48000, 8.0)


def test_evaluate_audio_writes_both_outputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", music(1.5), 44100, subtype="PCM_16")
    codec = create_codec("test-audio", seed=0)
    opus = make_baselines(["opus"])[0]
    opus.targets = (32.0,)
    codecs = [WavelatentAudioCodec(codec), WavelatentAudioCodec(codec, noise_fill=True), opus]
    result = evaluate_audio(str(src), str(tmp_path / "out"), codecs, progress=False, log=lambda m: None)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    names = set(doc["curves"])
    assert {"wavelatent-test-audio", "wavelatent-test-audio+nf", "opus"} <= names
    plain, filled = (doc["curves"][n]["results"] for n in ("wavelatent-test-audio", "wavelatent-test-audio+nf"))
    assert plain["kbps"] == filled["kbps"]  # the same files, two decoder outputs
    assert plain["snr"] != filled["snr"]
    assert abs(doc["curves"]["opus"]["results"]["kbps"][0] / 32 - 1) < 0.25
    assert all("lsd_opus" in m for m in doc["matched"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Log-spectral distance at the same kbps" in report
    assert (tmp_path / "out" / "spectrogram.png").stat().st_size > 1000
    assert result.rows[0]["level"] is not None
