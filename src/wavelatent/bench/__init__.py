"""Speed, memory and complexity of codecs: throughput against Pillow JPEG/WebP, peak RSS, MACs.

Re-exports only, resolved lazily.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "bench": "throughput",
    "BenchResult": "throughput",
    "BenchRow": "throughput",
    "format_table": "throughput",
    "count_macs": "macs",
    "count_parameters": "macs",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .macs import count_macs, count_parameters
    from .throughput import BenchResult, BenchRow, bench, format_table


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
