"""wavelatent: wavelet learned lossy compression with latents that ML models can use directly."""
from __future__ import annotations

__version__ = "0.1.0"

from .api import compress, decompress, read_info  # noqa: E402
from .config import CodecConfig  # noqa: E402
from .errors import WavelatentError  # noqa: E402
from .models import create_codec, load_codec  # noqa: E402
from .registry import list_presets  # noqa: E402

__all__ = [
    "CodecConfig",
    "WavelatentError",
    "__version__",
    "compress",
    "create_codec",
    "decompress",
    "list_presets",
    "load_codec",
    "read_info",
]
