"""The explicit table of named presets."""
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
            description="RGB images, J=3 packets (192 channels) -> 12 latent channels: 16x fewer values.",
        ),
        CodecConfig(
            name="image-rgb-4x",
            channels=3,
            levels=3,
            latent_channels=48,
            decoder_width=96,
            decoder_blocks=3,
            description="RGB images, J=3 packets (192 channels) -> 48 latent channels: 4x fewer values.",
        ),
        CodecConfig(
            name="image-gray-16x",
            channels=1,
            levels=3,
            latent_channels=4,
            decoder_width=48,
            decoder_blocks=3,
            description="Grayscale images, J=3 packets (64 channels) -> 4 latent channels: 16x fewer values.",
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
