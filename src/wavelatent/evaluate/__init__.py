"""Rate-distortion evaluation against baselines: codecs, metrics, Bjontegaard deltas, reports.

Re-exports only, resolved lazily (importing this package does not import torch or matplotlib).
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "evaluate": "run",
    "default_codecs": "run",
    "EvaluationResult": "run",
    "ImageCodec": "codecs",
    "PillowCodec": "codecs",
    "WavelatentCodec": "codecs",
    "make_baseline": "codecs",
    "make_baselines": "codecs",
    "load_wavelatent_codecs": "codecs",
    "TAEF2Codec": "taef2",
    "load_taef2": "taef2",
    "taef2_encode": "taef2",
    "bd_rate": "bd",
    "bd_psnr": "bd",
    "bd_table": "bd",
    "psnr": "metrics",
    "psnr_y": "metrics",
    "ms_ssim": "metrics",
    "bpp": "metrics",
    "evaluate_classify": "mpq",
    "Classifier": "classifier",
    "ClassifierError": "classifier",
    "load_classifier": "classifier",
    "train_classifier": "classifier",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .bd import bd_psnr, bd_rate, bd_table
    from .classifier import Classifier, ClassifierError, load_classifier, train_classifier
    from .codecs import ImageCodec, PillowCodec, WavelatentCodec, load_wavelatent_codecs, make_baseline, make_baselines
    from .metrics import bpp, ms_ssim, psnr, psnr_y
    from .mpq import evaluate_classify
    from .run import EvaluationResult, default_codecs, evaluate
    from .taef2 import TAEF2Codec, load_taef2, taef2_encode


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
