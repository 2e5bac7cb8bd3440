"""``wavelatent demo``: the README's first command, on the samples shipped inside the package."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from wavelatent.cli import main
from wavelatent.demo import AUDIO_SAMPLE, IMAGE_SAMPLE, outputs, run_demo, sample_path

# measured with the shipped weights (image-rgb-16x v2 q2, audio-stereo-5x q4); the pixels and samples
# depend on the decoders only, the bytes on the entropy model too (hence the looser bounds)
IMAGE_PSNR = 28.75
AUDIO_SNR = 15.32  # of the listening output (noise filled, decompress_audio's default)


def test_samples_ship_with_the_package():
    assert sample_path(IMAGE_SAMPLE).stat().st_size <= 400_000
    assert sample_path(AUDIO_SAMPLE).stat().st_size <= 400_000
    assert (sample_path(IMAGE_SAMPLE).parent / "README.md").read_text().count("CC BY 3.0") >= 1


def test_demo_writes_decodable_files_and_sane_numbers(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "PSNR" in lines[0] and "SNR" in lines[1]
    paths = outputs(out)
    assert all(p.is_file() for p in paths.values())
    assert not list(out.glob(".*.part"))  # atomic: no temporary files left
    image = np.asarray(Image.open(sample_path(IMAGE_SAMPLE)).convert("RGB"))
    image_hat = np.asarray(Image.open(paths["image_decoded"]))
    assert image_hat.shape == image.shape == (512, 512, 3)
    mse = np.mean((image.astype(np.float64) - image_hat) ** 2)
    assert 10 * np.log10(255**2 / mse) == pytest.approx(IMAGE_PSNR, abs=0.05)
    clip, rate = sf.read(sample_path(AUDIO_SAMPLE), dtype="float32", always_2d=True)
    clip_hat, rate_hat = sf.read(paths["audio_decoded"], dtype="float32", always_2d=True)
    assert rate_hat == rate == 44100 and clip_hat.shape == clip.shape
    snr = 10 * np.log10(np.sum(clip.astype(np.float64) ** 2) / np.sum((clip.astype(np.float64) - clip_hat) ** 2))
    assert snr == pytest.approx(AUDIO_SNR, abs=0.1)  # the WAV is 16-bit: a little below the float SNR at most
    results = run_demo(tmp_path / "again")
    assert results[0].score_db == pytest.approx(IMAGE_PSNR, abs=0.05)
    assert results[1].score_db == pytest.approx(AUDIO_SNR, abs=0.05)
    assert 0.11 < results[0].rate < 0.16 and 13 < results[1].rate < 20
    assert results[0].coded_bytes == paths["image_coded"].stat().st_size


def test_demo_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "kodim23.wlt").write_bytes(b"keep")
    assert main(["demo", "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (out / "kodim23.wlt").read_bytes() == b"keep" and not (out / "music.wav").exists()
    assert main(["demo", "-o", str(out), "--force"]) == 0
    assert (out / "kodim23.wlt").read_bytes()[:4] == b"WLAT"
