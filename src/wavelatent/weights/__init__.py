"""Weights files: safetensors with the codec config in the metadata, and the shipped presets.

This folder also holds the shipped ``<preset>.safetensors`` files. Loading is strict and never
unpickles anything.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import weakref
from functools import lru_cache
from pathlib import Path

import torch

from ..config import CodecConfig
from ..errors import PresetError, WeightsError

FORMAT = "wavelatent-weights"
FORMAT_VERSION = "1"
MAX_WEIGHTS_BYTES = 1 << 30
_MAX_SAFETENSORS_HEADER = 1 << 24
_HERE = Path(__file__).resolve().parent


def shipped_path(preset: str) -> Path:
    return _HERE / f"{preset}.safetensors"


def weights_file(preset_or_path: str | os.PathLike) -> Path:
    """The weights file of a registered preset (its shipped file) or of a path."""
    from ..registry import list_presets

    if isinstance(preset_or_path, str) and preset_or_path in list_presets():
        return shipped_path(preset_or_path)
    return Path(preset_or_path)


def has_shipped_weights(preset: str) -> bool:
    return shipped_path(preset).is_file()


def serialize(codec: torch.nn.Module, extra: dict[str, str] | None = None) -> bytes:
    """The weights file's bytes: the state dict plus config and versions in the metadata.

    Byte-for-byte reproducible: safetensors writes its JSON header in hash-map order, which
    changes from process to process, so the header is rewritten with sorted keys (same tensors,
    same offsets); the sha256 of a codec that was never saved is then the same in every process.
    """
    from safetensors.torch import save

    from .. import __version__

    tensors = {k: v.detach().cpu().contiguous() for k, v in codec.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": codec.config.to_json(),
        "wavelatent_version": __version__,
        **(extra or {}),
    }
    return _canonical_header(save(tensors, metadata=metadata))


def _canonical_header(data: bytes) -> bytes:
    """``data`` (safetensors bytes) with its header as sorted, compact JSON, space-padded to 8 bytes."""
    n = struct.unpack("<Q", data[:8])[0]
    text = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


def save_weights(codec: torch.nn.Module, path: str | os.PathLike, *, extra: dict[str, str] | None = None) -> str:
    """Write ``codec`` atomically to ``path``; returns the file's sha256 (also set on the codec)."""
    data = serialize(codec, extra)
    atomic_write(Path(path), data)
    return remember_sha256(codec, hashlib.sha256(data).hexdigest())


# codec -> fingerprint of its tensors when ``codec.weights_sha256`` was last set or computed
_FINGERPRINTS: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _fingerprint(codec: torch.nn.Module) -> tuple:
    """Where every parameter and buffer lives and how often it was written in place: it changes when a
    tensor is replaced (``.double()``, ``.to()``, ``load_state_dict``) or edited in place (optimizer
    steps, ``p.add_()`` under ``no_grad``: the tensor's version counter). Costs microseconds."""
    # each module's own tensors in module order: about half the cost of named_parameters()'s prefixed names
    return tuple(
        (name, t.data_ptr(), t.dtype, t.shape, t._version)
        for m in codec.modules() for own in (m._parameters, m._buffers) for name, t in own.items() if t is not None
    )


def remember_sha256(codec: torch.nn.Module, sha: str) -> str:
    """Record ``sha`` as the hash of ``codec``'s weights as they are now (after loading or saving)."""
    codec.weights_sha256 = sha
    _FINGERPRINTS[codec] = _fingerprint(codec)
    return sha


# codec -> (its hash when loaded, the older releases its file declares it decodes)
_ALSO_DECODES: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[str, tuple[str, ...]]]" = weakref.WeakKeyDictionary()


def also_decodes(meta: dict[str, str]) -> tuple[str, ...]:
    """The older weights hashes a weights file's metadata declares its codec decodes: releases with the
    same encoder, quantizer and entropy tables that this one keeps (it added an entropy model, or
    trained only its decoder further), so their files hold symbols this codec reads."""
    try:
        value = json.loads(meta.get("also_decodes", "[]"))
    except json.JSONDecodeError:
        raise WeightsError("weights metadata 'also_decodes' is not JSON") from None
    if not isinstance(value, list) or not all(
        isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v) for v in value
    ):
        raise WeightsError("weights metadata 'also_decodes' must be a list of sha256 hex digests")
    return tuple(value)


def successor_metadata(data: bytes) -> dict[str, str]:
    """The metadata a release made from the weights blob ``data`` carries over (training records, fits)
    with ``also_decodes`` naming ``data``'s hash and every hash it declared: for a new release that
    keeps the encoder, quantizer and entropy tables (so it decodes the older files)."""
    meta = read_metadata(data)
    older = list(dict.fromkeys([hashlib.sha256(data).hexdigest(), *also_decodes(meta)]))
    keep = {k: v for k, v in meta.items() if k not in ("format", "format_version", "config", "wavelatent_version")}
    return {**keep, "also_decodes": json.dumps(older)}


def accepts_weights(codec: torch.nn.Module, sha: str) -> bool:
    """Whether a file naming weights ``sha`` (all 64 hex digits, or a prefix of at least 16) decodes
    with ``codec``: its weights as they are now, or, while they are unchanged since loading, an older
    release that its weights file declares (``also_decodes``)."""
    if not isinstance(sha, str) or not 16 <= len(sha) <= 64 or any(c not in "0123456789abcdef" for c in sha):
        return False
    own = weights_sha256(codec)
    if own.startswith(sha):
        return True
    loaded, older = _ALSO_DECODES.get(codec, ("", ()))
    return loaded == own and any(o.startswith(sha) for o in older)


def weights_sha256(codec: torch.nn.Module) -> str:
    """The sha256 of ``codec``'s weights file as the weights are *now*: the hash recorded when it was
    loaded or saved while no tensor has been replaced or edited in place since, else the hash of
    :func:`serialize` (recomputed once per change). Edits through ``tensor.data`` bypass the version
    counter and are not seen; use ``torch.no_grad()`` and the tensor itself."""
    fp = _fingerprint(codec)
    if codec.weights_sha256 is None or _FINGERPRINTS.get(codec) != fp:
        codec.weights_sha256 = hashlib.sha256(serialize(codec)).hexdigest()
        _FINGERPRINTS[codec] = fp
    return codec.weights_sha256


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (temporary file, fsync, rename)."""
    from ..io.files import atomic_write_bytes

    atomic_write_bytes(path, data, force=True)


def safetensors_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of any safetensors blob (``{}`` when it has none), its sizes checked
    before anything is sliced. Raises WeightsError."""
    if len(data) < 8:
        raise WeightsError("not a safetensors file: too short")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_SAFETENSORS_HEADER or 8 + n > len(data):
        raise WeightsError("not a safetensors file: bad header length")
    try:
        header = json.loads(data[8 : 8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WeightsError("not a safetensors file: header is not JSON") from None
    if not isinstance(header, dict):
        raise WeightsError("not a safetensors file: header is not an object")
    meta = header.get("__metadata__")
    return meta if isinstance(meta, dict) else {}


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a wavelatent weights blob, parsed with its sizes checked."""
    meta = safetensors_metadata(data)
    if meta.get("format") != FORMAT:
        raise WeightsError("not a wavelatent weights file (no wavelatent metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"weights format version {meta.get('format_version')!r} is not supported")
    return meta


def deserialize(data: bytes, *, source: str = "<bytes>", sha256: str | None = None):
    """Build a codec from weights bytes (strict: every tensor must match the config's model).
    ``sha256``: the hash of ``data`` when the caller already knows it."""
    from safetensors.torch import load

    from ..codec import WaveletCodec

    meta = read_metadata(data)
    config = CodecConfig.from_json(meta.get("config", ""))
    try:
        tensors = load(data)
    except Exception as e:  # safetensors raises its own error type for malformed files
        raise WeightsError(f"{source}: cannot read tensors: {e}") from None
    with torch.device("meta"):  # no storage and no random init: the loaded tensors are assigned (ms, not 100s of ms)
        codec = WaveletCodec(config)
    expected = {k: (v.dtype, v.shape) for k, v in codec.state_dict().items()}
    try:
        codec.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as e:
        raise WeightsError(f"{source}: weights do not match config {config.name!r}: {e}") from None
    wrong = [k for k, v in codec.state_dict().items() if (v.dtype, v.shape) != expected[k]]
    wrong += [f"{m}.{k}" for m, mod in codec.named_modules() for k, v in vars(mod).items()  # also non-persistent
              if isinstance(v, torch.Tensor) and v.is_meta]
    wrong += [k for k, v in (*codec.named_parameters(), *codec.named_buffers()) if v.is_meta]
    if wrong:
        raise WeightsError(f"{source}: weights do not match config {config.name!r}: dtype or shape of {wrong[:3]}")
    sha = remember_sha256(codec, sha256 if sha256 is not None else hashlib.sha256(data).hexdigest())
    _ALSO_DECODES[codec] = (sha, also_decodes(meta))
    return codec.eval()


def load_weights(path: str | os.PathLike):
    """Load a codec from a ``.safetensors`` weights file."""
    path = Path(path)
    return deserialize(_read_weights_file(path), source=str(path))


def _read_weights_file(path: Path) -> bytes:
    if path.exists() and not path.is_file():
        raise WeightsError(f"{path}: not a regular file")
    try:
        size = path.stat().st_size
        if size > MAX_WEIGHTS_BYTES:
            raise WeightsError(f"{path}: {size} bytes is larger than any weights file ({MAX_WEIGHTS_BYTES})")
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"cannot read weights {path}: {e.strerror or e}") from None
    return data


@lru_cache(maxsize=8)
def _shipped_bytes(preset: str, mtime_ns: int) -> tuple[bytes, str]:
    """The shipped file's bytes and sha256 (immutable, so safe to share)."""
    data = _read_weights_file(shipped_path(preset))
    return data, hashlib.sha256(data).hexdigest()


def load_shipped(preset: str):
    """A fresh codec with the shipped weights of a registered preset (the file's bytes are cached,
    never the module: callers may train, move or convert what they get)."""
    from ..registry import get_config

    get_config(preset)  # unknown names raise PresetError
    path = shipped_path(preset)
    if not path.is_file():
        raise PresetError(
            f"preset {preset!r} has no shipped weights; train it with `wavelatent train --preset {preset}` "
            "and pass the exported file with --weights"
        )
    data, sha = _shipped_bytes(preset, path.stat().st_mtime_ns)
    return deserialize(data, source=str(path), sha256=sha)
