"""Factories: ``create_codec`` (fresh, from a preset or config) and ``load_codec`` (trained)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .codec import WaveletCodec
from .config import CodecConfig
from .errors import PresetError
from .registry import get_config, list_presets
from .weights import load_shipped, load_weights


def create_codec(preset: str | CodecConfig, *, seed: int | None = None) -> WaveletCodec:
    """An untrained codec of a preset (or config), with its entropy tables frozen."""
    config = get_config(preset) if isinstance(preset, str) else preset
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            codec = WaveletCodec(config)
    else:
        codec = WaveletCodec(config)
    codec.freeze()
    return codec.eval()


def load_codec(preset_or_path: str | os.PathLike) -> WaveletCodec:
    """A trained codec: a registered preset's shipped weights, or a ``.safetensors`` file.

    Shipped presets are cached and shared; do not train them in place (``copy.deepcopy`` first).
    """
    if isinstance(preset_or_path, str) and preset_or_path in list_presets():
        return load_shipped(preset_or_path)
    path = Path(preset_or_path)
    if path.suffix == ".safetensors" or path.exists():
        return load_weights(path)
    raise PresetError(f"{preset_or_path!r} is neither a preset ({', '.join(list_presets())}) nor a weights file")
