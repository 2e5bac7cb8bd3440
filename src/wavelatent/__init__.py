"""wavelatent: wavelet learned lossy compression with latents that ML models can use directly.

Re-exports only, resolved lazily so that ``import wavelatent.container`` (or ``--help``) does
not pay for importing torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "compress": "api",
    "decompress": "api",
    "read_info": "api",
    "CodecConfig": "config",
    "WavelatentError": "errors",
    "create_codec": "models",
    "load_codec": "models",
    "list_presets": "registry",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .api import compress, decompress, read_info
    from .config import CodecConfig
    from .errors import WavelatentError
    from .models import create_codec, load_codec
    from .registry import list_presets


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wavelatent' has no attribute {name!r}")
