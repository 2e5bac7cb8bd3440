"""``wavelatent demo``: the main job on the samples shipped inside the package (offline, seconds).

Compresses the sample image (a 512x512 crop of Kodak's kodim23) with the default image preset and
the sample clip (3 s of CC BY 3.0 music, see ``samples/README.md``) with an audio preset,
decompresses both, writes the four files atomically into one folder and returns what it measured.
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import OutputExistsError

IMAGE_SAMPLE = "kodim23-512.png"
AUDIO_SAMPLE = "hyde-acoustic-3s.flac"
IMAGE_PRESET = "image-rgb-16x"
AUDIO_PRESET = "audio-stereo-5x"
DEFAULT_OUTPUT = "wavelatent-demo"


@dataclass(frozen=True)
class DemoResult:
    """One coded sample: what went in, what came out, and the measured rate and quality."""

    kind: str  # "image" or "audio"
    preset: str
    quality: int
    source: str
    coded: Path
    decoded: Path
    source_bytes: int
    coded_bytes: int
    rate: float  # bits per pixel (image) or kbit/s (audio), from the file's bytes
    rate_unit: str
    score_db: float  # PSNR (image, RGB, peak 255) or SNR (audio, waveform)
    score_name: str
    seconds: float  # compress + decompress

    def line(self) -> str:
        return (f"{self.kind:5s} {self.source} -> {self.coded.name}: {self.coded_bytes:,} bytes "
                f"({self.source_bytes / self.coded_bytes:.1f}x smaller than the {self.source_bytes:,}-byte source), "
                f"{self.rate:.3f} {self.rate_unit}, {self.score_name} {self.score_db:.2f} dB "
                f"({self.preset} q{self.quality}, {self.seconds:.2f} s) -> {self.decoded.name}")


def sample_path(name: str) -> Path:
    """Path of a sample shipped in ``wavelatent/samples``."""
    return Path(str(resources.files("wavelatent") / "samples" / name))


def outputs(out_dir: str | os.PathLike) -> dict[str, Path]:
    out = Path(out_dir)
    return {"image_coded": out / "kodim23.wlt", "image_decoded": out / "kodim23.png",
            "audio_coded": out / "music.wlt", "audio_decoded": out / "music.wav"}


def run_demo(out_dir: str | os.PathLike = DEFAULT_OUTPUT, *, force: bool = False) -> list[DemoResult]:
    """Code both samples into ``out_dir``; refuses (OutputExistsError) before any work if an output
    exists and not ``force``."""
    paths = outputs(out_dir)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise OutputExistsError(f"{', '.join(existing)} exist; use --force to overwrite")
    return [_image(paths, force), _audio(paths, force)]


def _image(paths: dict[str, Path], force: bool) -> DemoResult:
    import wavelatent as wl

    from .evaluate.metrics import psnr
    from .io.files import atomic_write_bytes
    from .io.images import encode_png, read_image

    src = sample_path(IMAGE_SAMPLE)
    image, _ = read_image(src)
    codec = wl.load_codec(IMAGE_PRESET)
    quality = codec.config.default_quality
    t0 = time.perf_counter()
    data = wl.compress(image, codec, quality)
    image_hat = wl.decompress(data, codec)
    seconds = time.perf_counter() - t0
    atomic_write_bytes(paths["image_coded"], data, force=force)
    atomic_write_bytes(paths["image_decoded"], encode_png(image_hat), force=force)
    h, w = image.shape[:2]
    return DemoResult("image", IMAGE_PRESET, quality, src.name, paths["image_coded"], paths["image_decoded"],
                      src.stat().st_size, len(data), 8 * len(data) / (h * w), "bpp", psnr(image, image_hat), "PSNR",
                      seconds)


def _audio(paths: dict[str, Path], force: bool) -> DemoResult:
    import soundfile as sf

    import wavelatent as wl

    from .audio import compress_audio, decompress_audio, snr_db
    from .io.files import atomic_write_bytes

    src = sample_path(AUDIO_SAMPLE)
    x, rate = sf.read(src, dtype="float32", always_2d=True)
    codec = wl.load_codec(AUDIO_PRESET)
    quality = codec.config.default_quality
    t0 = time.perf_counter()
    data = compress_audio(x, rate, codec, quality)
    x_hat, rate_hat = decompress_audio(data, codec)
    seconds = time.perf_counter() - t0
    wav = io.BytesIO()
    sf.write(wav, x_hat, rate_hat, format="WAV", subtype="PCM_16")
    atomic_write_bytes(paths["audio_coded"], data, force=force)
    atomic_write_bytes(paths["audio_decoded"], wav.getvalue(), force=force)
    ref = x.astype(np.float64)
    snr = snr_db(float(np.sum(ref**2)), float(np.sum((ref - x_hat) ** 2)))
    return DemoResult("audio", AUDIO_PRESET, quality, src.name, paths["audio_coded"], paths["audio_decoded"],
                      src.stat().st_size, len(data), 8 * len(data) / (len(x) / rate) / 1000, "kbps", snr, "SNR",
                      seconds)
