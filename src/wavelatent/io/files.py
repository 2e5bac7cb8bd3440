"""Byte-level file helpers: atomic writes, bounded reads."""
from __future__ import annotations

import glob
import os
import sys
import tempfile
from pathlib import Path

from ..errors import InputError, OutputError, OutputExistsError

MAX_INPUT_BYTES = 1 << 32


def list_files(root: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``root`` (recursive) whose suffix (any case) is one of ``suffixes``, sorted by path;
    ``root`` itself if it is a file. Raises InputError if it is neither."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def read_input_bytes(path: str | os.PathLike, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """All bytes of a file (``-`` reads stdin), refusing files over ``limit``."""
    if str(path) == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory") from None
        except OSError as e:
            raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than the {limit}-byte input limit")
    return data


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (``-`` writes stdout).

    An existing file is only replaced with ``force``; on any failure nothing is left behind.
    """
    if str(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; use --force to overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual mode
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """:func:`atomic_write_bytes` of ``obj`` as indented JSON (a results or index file: replaced)."""
    import json

    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode(), force=True)
    return Path(path)
