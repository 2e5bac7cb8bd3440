"""The explicit table of named presets.

Audio presets (1D wavelet packets of ``2**levels`` bands per channel, periodized CDF 9/7):

* ``audio-mono-2x`` -- speech-rate mono (8 kHz, FSDD's rate). J=5: 32 bands of 125 Hz, one latent
  vector per 4 ms, fine enough to separate pitch harmonics. Speech at 8 kHz is broadband: on FSDD
  the best linear 4x projection (PCA) already caps the SNR at 9 dB and 2x at 13 dB, so the mono
  preset only halves the dimension (32 -> 16 latents); the quantizer sets the rate.
* ``audio-stereo-5x`` / ``audio-stereo-20x`` -- 44.1 kHz stereo (48 kHz and other rates are
  resampled, and restored on output). J=6: 64 bands of 345 Hz per channel, 128 packet channels
  per 1.45 ms block, 689 latent vectors per second. 26 latents (4.9x) or 6 latents (21.3x).
  At a fixed reduction J=4..7 give the same PCA ceiling on held-out music (25 dB at 5x, 15 dB
  at 20x), so J=6 is chosen for a low latent frame rate at moderate filter length (505 taps).
* Decoders use kernel 7 (``decoder_kernel``): one latent step is a whole block of samples, and
  a 3-tap kernel would see only 3 blocks (4 ms at 44.1 kHz); 7 taps x 3 residual blocks reach
  +-21 blocks (30 ms), the scale of transients and pre-echo, at the cost of 2.3x the decoder MACs.
* Audio latents use 9-10 bits (soft bound 255/511) because waveform coefficients have a
  larger peak-to-RMS ratio than pixels; 7 quality steps a factor sqrt(2) apart give a 8x range of
  step sizes (about 3 bits per coded latent between quality 1 and 7).
* More channels than a preset codes (e.g. 5.1 = 6 channels with a stereo preset) are coded as
  groups of the preset's channel count, (L,R), (C,LFE), (Ls,Rs); a last incomplete group repeats
  its last channel. The file header and ``wavelatent info`` state the grouping.
"""
from __future__ import annotations

from .config import CodecConfig
from .errors import PresetError

_PRESETS: dict[str, CodecConfig] = {
    c.name: c
    for c in (
        CodecConfig(
            name="image-rgb-16x",
            channels=3,
            levels=3,
            latent_channels=12,
            decoder_width=64,
            decoder_blocks=3,
            default_quality=2,  # ~0.28 bpp on Kodak, where the 16x codec leads JPEG most
            description="RGB images, J=3 packets (192 channels) -> 12 latent channels: 16x fewer values.",
            # v2: encoder weights on the level-1 detail bands are zero (encode computes a quarter of the
            # transform; 2.4x faster, ~0.2 dB lower PSNR at equal rate than v1)
            # v3: same weights, the grid context model (entropy/grid.py); v2 files still decode
            # v4: same weights, the grid model's version 2 tables ("grid2": residuals sign-folded by the
            # prediction's fraction, near-integer tables); v2 and v3 files still decode
            context="grid2",
            version=4,
        ),
        CodecConfig(
            name="image-rgb-4x",
            channels=3,
            levels=3,
            latent_channels=48,
            decoder_width=96,
            decoder_blocks=3,
            quality_steps=(1.4142, 1.0, 0.8409, 0.7071, 0.5946),
            default_quality=4,  # ~1.76 bpp, ~36.5 dB on Kodak
            description="RGB images, J=3 packets (192 channels) -> 48 latent channels: 4x fewer values.",
            # v2: 26k steps (v1 + two fine-tunes, the last on steps 0.35..0.84) and the checkerboard context model
            # v3: same weights, the grid context model; keeps the checkerboard tables so v2 files decode
            # v4: same encoder and entropy tables (every file keeps its bytes), the decoder trained 2500 more
            # steps on the real symbols of every quality (train --decoder-only); v2 and v3 files decode
            context="grid",
            legacy_context="checkerboard",
            version=4,
        ),
        CodecConfig(
            name="image-gray-16x",
            channels=1,
            levels=3,
            latent_channels=4,
            decoder_width=48,
            decoder_blocks=3,
            description="Grayscale images, J=3 packets (64 channels) -> 4 latent channels: 16x fewer values.",
            # v2: the grid context model; v1 files still decode. v3: its version 2 tables ("grid2"); v1, v2 files decode
            context="grid2",
            version=3,
        ),
        CodecConfig(
            name="test-image",
            channels=3,
            levels=2,
            latent_channels=6,
            latent_bits=6,
            decoder_width=8,
            decoder_blocks=1,
            prior_components=2,
            quality_steps=(2.0, 1.0, 0.5),
            default_quality=2,
            description="Tiny RGB codec for tests (J=2, 48 -> 6 channels, 8x).",
            # v2: the grid context model; v1 files still decode. v3: its version 2 tables ("grid2"); v1, v2 files decode
            context="grid2",
            version=3,
        ),
        CodecConfig(
            name="test-gray",
            channels=1,
            levels=1,
            latent_channels=2,
            latent_bits=5,
            decoder_width=4,
            decoder_blocks=0,
            prior_components=1,
            quality_steps=(1.0,),
            default_quality=1,
            description="Tiny grayscale codec for tests (J=1, 4 -> 2 channels, 2x).",
        ),
        CodecConfig(
            name="audio-mono-2x",
            modality="audio",
            channels=1,
            levels=5,
            latent_channels=16,
            latent_bits=10,
            decoder_width=48,
            decoder_blocks=3,
            decoder_kernel=7,
            quality_steps=(4.0, 2.8284, 2.0, 1.4142, 1.0, 0.7071, 0.5),
            default_quality=4,
            sample_rate=8000,
            description="Speech-rate mono at 8 kHz, J=5 packets (32 bands of 125 Hz) -> 16 latent channels: 2x fewer values.",
            context="grid",  # v2: the grid context model; v1 files still decode
            version=2,
        ),
        CodecConfig(
            name="audio-stereo-5x",
            modality="audio",
            channels=2,
            levels=6,
            latent_channels=26,
            latent_bits=9,
            decoder_width=64,
            decoder_blocks=3,
            decoder_kernel=7,
            quality_steps=(4.0, 2.8284, 2.0, 1.4142, 1.0, 0.7071, 0.5),
            default_quality=4,
            sample_rate=44100,
            description="Stereo at 44.1 kHz, J=6 packets (128 channels) -> 26 latent channels: 4.9x fewer values.",
            context="grid",  # v2: the grid context model; v1 files still decode
            version=2,
        ),
        CodecConfig(
            name="audio-stereo-20x",
            modality="audio",
            channels=2,
            levels=6,
            latent_channels=6,
            latent_bits=9,
            decoder_width=48,
            decoder_blocks=3,
            decoder_kernel=7,
            quality_steps=(4.0, 2.8284, 2.0, 1.4142, 1.0, 0.7071, 0.5),
            default_quality=4,
            sample_rate=44100,
            description="Stereo at 44.1 kHz, J=6 packets (128 channels) -> 6 latent channels: 21x fewer values.",
            context="grid",  # v2: the grid context model; v1 files still decode
            version=2,
        ),
        CodecConfig(
            name="test-audio",
            modality="audio",
            channels=2,
            levels=2,
            latent_channels=2,
            latent_bits=6,
            decoder_width=8,
            decoder_blocks=1,
            decoder_kernel=5,
            prior_components=2,
            quality_steps=(2.0, 1.0, 0.5),
            default_quality=2,
            sample_rate=8000,
            description="Tiny stereo 8 kHz codec for tests (J=2, 8 -> 2 channels, 4x).",
            context="grid",  # v2: the grid context model; v1 files still decode
            version=2,
        ),
    )
}


def list_presets() -> list[str]:
    """Names of all registered presets, in registry order."""
    return list(_PRESETS)


def get_config(name: str) -> CodecConfig:
    """The config of a registered preset."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r}; known presets: {', '.join(_PRESETS)}") from None
