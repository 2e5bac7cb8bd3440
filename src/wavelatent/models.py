"""Factories: ``create_codec`` (fresh, from a preset or config) and ``load_codec`` (trained)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .codec import WaveletCodec
from .config import CodecConfig
from .errors import InputError, PresetError
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

    Every call returns a fresh module (only the shipped files' bytes are cached; loading takes a
    few ms), so converting, moving or training it affects nothing else.
    """
    if isinstance(preset_or_path, str) and preset_or_path in list_presets():
        return load_shipped(preset_or_path)
    path = Path(preset_or_path)
    if path.suffix == ".safetensors" or path.exists():
        return load_weights(path)
    raise PresetError(f"{preset_or_path!r} is neither a preset ({', '.join(list_presets())}) nor a weights file")


def resolve_codec(codec: str | os.PathLike | WaveletCodec) -> WaveletCodec:
    """``codec`` itself if it is a loaded codec, else :func:`load_codec` of the preset name or weights path."""
    return codec if isinstance(codec, WaveletCodec) else load_codec(codec)


def pick_codec(codec, preset):
    """``codec`` or its old keyword alias ``preset`` (at most one of them may be given)."""
    if preset is not None:
        if codec is not None:
            raise InputError("pass codec= or its old alias preset=, not both")
        return preset
    return codec
