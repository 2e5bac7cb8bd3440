"""Codec configuration: a frozen dataclass that travels with the weights."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import WeightsError

SCHEMA_VERSION = 1
MODALITIES = ("image", "audio")
ARCHITECTURES = ("wavelatent", "walloc2d", "walloc1d")
GRID_MODELS = {"grid": 1, "grid2": 2}
"""The grid context model's entropy-model names and their versions (``entropy/grid.py``)."""
CONTEXTS = ("none", "checkerboard", *GRID_MODELS)


@dataclass(frozen=True)
class CodecConfig:
    """Everything needed to rebuild a codec; stored in the weights file's metadata.

    Signal ``[B, channels, *size]`` -> packets ``[B, channels * bands, *size / 2**levels]``
    -> latent ``[B, latent_channels, *size / 2**levels]``; ``bands`` is ``4**levels`` for
    images and ``2**levels`` for audio.
    """

    name: str
    modality: str = "image"
    channels: int = 3
    levels: int = 3
    latent_channels: int = 12
    latent_bits: int = 8
    decoder_width: int = 64
    decoder_blocks: int = 3
    prior_components: int = 3
    quality_steps: tuple[float, ...] = (2.0, 1.4142, 1.0, 0.7071, 0.5)
    default_quality: int = 3
    sample_rate: int = 0
    version: int = 1
    description: str = ""
    schema_version: int = field(default=SCHEMA_VERSION)
    # Fields added after schema 1 go here, each with a default; to_dict() omits them while they
    # hold that default, so older configs (and the hashes of their weights files) are unchanged.
    decoder_kernel: int = 3  # kernel size of the decoder's convolutions (1D codecs use wider ones)
    architecture: str = "wavelatent"  # walloc2d / walloc1d: WaLLoC's modules for imported checkpoints (nn/walloc.py)
    walloc_config: str = ""  # the walloc architectures: walloc's JSON config (canonical), which shapes the modules
    context: str = "none"  # entropy model of new files: "none" (per-channel tables), "checkerboard", "grid" or "grid2" (entropy/)
    legacy_context: str = "none"  # an older entropy model whose tables the weights keep, so files written with it decode

    def __post_init__(self) -> None:
        problems = []
        if self.modality not in MODALITIES:
            problems.append(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        for name in ("channels", "latent_channels", "latent_bits", "decoder_width", "prior_components"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer")
        if not isinstance(self.levels, int) or not 0 <= self.levels <= 6:
            problems.append("levels must be an integer in 0..6")
        if not isinstance(self.decoder_blocks, int) or self.decoder_blocks < 0:
            problems.append("decoder_blocks must be a non-negative integer")
        if not isinstance(self.decoder_kernel, int) or not (1 <= self.decoder_kernel <= 31 and self.decoder_kernel % 2):
            problems.append("decoder_kernel must be an odd integer in 1..31")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        elif not isinstance(self.walloc_config, str) or (self.architecture == "wavelatent") != (self.walloc_config == ""):
            problems.append("walloc_config is required by (and only by) the walloc architectures")
        for name in ("context", "legacy_context"):
            value = getattr(self, name)
            if value not in CONTEXTS or (value == "checkerboard" and (self.modality != "image" or self.levels < 1)):
                problems.append(f"{name} must be one of {CONTEXTS} ('checkerboard' for images only), got {value!r}")
        if self.legacy_context in GRID_MODELS:
            problems.append("legacy_context cannot be a grid model (a codec of context 'grid2' also decodes 'grid')")
        if self.modality == "audio" and (not isinstance(self.sample_rate, int) or not 1 <= self.sample_rate <= 768_000):
            problems.append("audio codecs need a sample_rate in 1..768000 Hz")
        if not 2 <= self.latent_bits <= 12:
            problems.append("latent_bits must be in 2..12")
        steps = self.quality_steps
        if not steps or any(not (isinstance(s, (int, float)) and 0.05 <= s <= 64) for s in steps):
            problems.append("quality_steps must be numbers in [0.05, 64]")
        elif any(a <= b for a, b in zip(steps, steps[1:])):
            problems.append("quality_steps must be strictly decreasing (quality 1 = coarsest)")
        if not isinstance(self.default_quality, int) or not 1 <= self.default_quality <= len(steps):
            problems.append("default_quality must index quality_steps (1-based)")
        if self.schema_version != SCHEMA_VERSION:
            problems.append(f"schema_version {self.schema_version} is not {SCHEMA_VERSION}")
        if problems:
            raise WeightsError(f"invalid codec config {self.name!r}: " + "; ".join(problems))

    # --- derived quantities -------------------------------------------------
    @property
    def spatial_dims(self) -> int:
        return 2 if self.modality == "image" else 1

    @property
    def bands(self) -> int:
        return (4 if self.spatial_dims == 2 else 2) ** self.levels

    @property
    def packet_channels(self) -> int:
        return self.channels * self.bands

    @property
    def block(self) -> int:
        """Signal samples per latent position along each spatial axis."""
        return 2**self.levels

    @property
    def reduction(self) -> float:
        """Dimensionality reduction: signal values per latent value."""
        return self.packet_channels / self.latent_channels

    @property
    def bound(self) -> float:
        """Latents are soft-bounded to [-bound, bound] before quantization."""
        return float(2 ** (self.latent_bits - 1) - 1)

    @property
    def qualities(self) -> int:
        return len(self.quality_steps)

    def step(self, quality: int | None) -> float:
        return float(self.quality_steps[self.check_quality(quality) - 1])

    def max_symbol(self, quality: int | None) -> int:
        """Largest |q| at this quality: round(bound / step) can never exceed it."""
        return int(math.floor(self.bound / self.step(quality) + 0.5))

    def check_quality(self, quality: int | None) -> int:
        from .errors import InputError

        if quality is None:
            return self.default_quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= self.qualities:
            raise InputError(f"quality must be an integer in 1..{self.qualities} for {self.name}, got {quality!r}")
        return quality

    # --- serialization ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["quality_steps"] = list(self.quality_steps)
        for name, default in _LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodecConfig:
        if not isinstance(d, dict):
            raise WeightsError("codec config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise WeightsError(f"codec config has unknown fields {unknown}; written by a newer wavelatent?")
        d = dict(d)
        if "quality_steps" in d:
            if not isinstance(d["quality_steps"], (list, tuple)):
                raise WeightsError("quality_steps must be a list")
            d["quality_steps"] = tuple(float(s) for s in d["quality_steps"])
        try:
            return cls(**d)
        except TypeError as e:
            raise WeightsError(f"invalid codec config: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> CodecConfig:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise WeightsError(f"codec config is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @property
    def entropy_models(self) -> tuple[str, ...]:
        """The entropy models files of this codec may use: its own, the grid model's version 1 tables that
        version 2 keeps (same prediction and scale weights), the older one it keeps, and the
        per-channel tables every codec holds."""
        older_grids = (m for m, v in GRID_MODELS.items() if 0 < v < self.grid_version)
        return tuple(dict.fromkeys((self.context, *older_grids, self.legacy_context, "none")))

    @property
    def grid_version(self) -> int:
        """The grid model version of new files: 2 for ``context="grid2"``, 1 for ``"grid"``, 0 for none."""
        return GRID_MODELS.get(self.context, 0)

    def replace(self, **changes: Any) -> CodecConfig:
        return dataclasses.replace(self, **changes)


# Fields added after schema 1 and their defaults (omitted from to_dict() while at the default).
_LATER_FIELDS: dict[str, Any] = {
    "decoder_kernel": 3, "architecture": "wavelatent", "walloc_config": "", "context": "none", "legacy_context": "none",
}
