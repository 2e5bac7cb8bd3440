"""The ``wavelatent`` command: parses arguments and calls the library, nothing more."""
from .main import main

__all__ = ["main"]
