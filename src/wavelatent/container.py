"""The .wlt container: pack/unpack a JSON header and named byte streams. Stdlib only.

Layout (all integers little-endian)::

    magic       4 bytes   b"WLAT"
    version     u8        FORMAT_VERSION
    flags       u8        0 (reserved)
    header_len  u32       length of the JSON header in bytes
    header      UTF-8 JSON object, canonical (sorted keys, no spaces, ASCII only);
                it always holds "format_version" and "streams" = [{"name", "length"}, ...]
    payload     the streams, concatenated in the order of header["streams"]
    crc32       u32       zlib.crc32 of every byte before it (magic .. payload)

Reading checks, in order: fixed-size prefix, magic, version, flags, header length against
:class:`Limits` (before anything is sliced), declared header length against the data,
CRC32 (before the JSON is parsed), the JSON header, the stream table, and the exact total
length. Every failure raises a :class:`~wavelatent.errors.ContainerError` subclass whose
message says what was expected and what was found.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import (
    BadMagicError,
    ChecksumError,
    HeaderError,
    LimitError,
    TruncatedError,
    UnsupportedVersionError,
)

__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT_VERSION",
    "MAGIC",
    "SUPPORTED_VERSIONS",
    "Container",
    "Limits",
    "pack",
    "read_header",
    "unpack",
]

MAGIC = b"WLAT"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

_PREFIX = struct.Struct("<4sBBI")  # magic, version, flags, header_len
_PREFIX_LEN = _PREFIX.size  # 10
_CRC = struct.Struct("<I")
_CRC_LEN = _CRC.size  # 4
_RESERVED_KEYS = ("format_version", "streams")


@dataclass(frozen=True)
class Limits:
    """Upper bounds checked while reading, before anything of that size is allocated."""

    max_header_bytes: int = 65536
    max_payload_bytes: int = 2**31
    max_streams: int = 16

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_payload_bytes", "max_streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Limits.{name} must be an int >= 0, got {value!r}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Container:
    """An unpacked container: the JSON header as stored (with "streams") and the streams."""

    header: dict
    streams: dict[str, bytes]


# --- writing ----------------------------------------------------------------
def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
        "ascii"
    )


def pack(header: Mapping[str, Any], streams: Mapping[str, bytes], *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Serialize ``header`` and ``streams`` (in the mapping's order) into container bytes.

    ``header`` must be JSON-serializable and must not contain the keys "streams" or
    "format_version", which this function sets. Programming errors (reserved keys, wrong
    types, NaN) raise ``ValueError``/``TypeError``; sizes over ``limits`` raise LimitError.
    """
    if not isinstance(header, Mapping):
        raise TypeError(f"header must be a mapping, got {type(header).__name__}")
    if not isinstance(streams, Mapping):
        raise TypeError(f"streams must be a mapping, got {type(streams).__name__}")
    reserved = [key for key in _RESERVED_KEYS if key in header]
    if reserved:
        raise ValueError(f"header must not contain the reserved key(s) {reserved}; pack() sets them")
    for key in header:
        if not isinstance(key, str):
            raise TypeError(f"header keys must be str, got {key!r}")

    table = []
    blobs = []
    for name, blob in streams.items():
        if not isinstance(name, str):
            raise TypeError(f"stream names must be str, got {name!r}")
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"stream {name!r} must be bytes-like, got {type(blob).__name__}")
        blob = memoryview(blob).cast("B")
        table.append({"name": name, "length": blob.nbytes})
        blobs.append(blob)

    if len(table) > limits.max_streams:
        raise LimitError(f"too many streams: at most {limits.max_streams} allowed, got {len(table)}")
    payload_len = sum(entry["length"] for entry in table)
    if payload_len > limits.max_payload_bytes:
        raise LimitError(f"payload too large: at most {limits.max_payload_bytes} bytes allowed, got {payload_len}")

    full_header = dict(header)
    full_header["format_version"] = FORMAT_VERSION
    full_header["streams"] = table
    header_bytes = _canonical_json(full_header)
    if len(header_bytes) > limits.max_header_bytes:
        raise LimitError(
            f"header too large: at most {limits.max_header_bytes} bytes allowed, got {len(header_bytes)}"
        )

    out = bytearray(_PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(header_bytes)))
    out += header_bytes
    for blob in blobs:
        out += blob
    out += _CRC.pack(zlib.crc32(out))
    return bytes(out)


# --- reading ----------------------------------------------------------------
def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dupes = sorted({key for key, _ in pairs if key in seen or seen.add(key)})
        raise ValueError(f"duplicate key(s) {dupes}")
    return obj


def _parse_json(raw: memoryview) -> Any:
    """Decode strict UTF-8 JSON; any problem raises HeaderError."""
    try:
        text = bytes(raw).decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError as exc:
        raise HeaderError(f"header is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise HeaderError("header JSON is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError, duplicate keys, NaN, huge ints
        raise HeaderError(f"header is not valid JSON: {exc}") from None


def _stream_table(header: Any, limits: Limits) -> list[tuple[str, int]]:
    """Validate the header object and its "streams" table; return [(name, length), ...]."""
    if not isinstance(header, dict):
        raise HeaderError(f"header must be a JSON object, found {type(header).__name__}")
    version = header.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise HeaderError(f"header format_version must be {FORMAT_VERSION} (as in the prefix), found {version!r}")
    if "streams" not in header:
        raise HeaderError("header has no 'streams' list")
    entries = header["streams"]
    if not isinstance(entries, list):
        raise HeaderError(f"header 'streams' must be a list, found {type(entries).__name__}")
    if len(entries) > limits.max_streams:
        raise LimitError(f"too many streams: at most {limits.max_streams} allowed, found {len(entries)}")
    table: list[tuple[str, int]] = []
    names: set[str] = set()
    total = 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"name", "length"}:
            raise HeaderError(f"streams[{i}] must be an object with exactly 'name' and 'length', found {entry!r:.80}")
        name, length = entry["name"], entry["length"]
        if not isinstance(name, str):
            raise HeaderError(f"streams[{i}].name must be a string, found {name!r:.80}")
        if type(length) is not int or length < 0:
            raise HeaderError(f"streams[{i}].length must be an integer >= 0, found {length!r:.80}")
        if name in names:
            raise HeaderError(f"duplicate stream name {name!r}")
        names.add(name)
        total += length
        if total > limits.max_payload_bytes:
            raise LimitError(
                f"payload too large: at most {limits.max_payload_bytes} bytes allowed, "
                f"streams[0..{i}] already declare {total}"
            )
        table.append((name, length))
    return table


def _declared_payload(raw_header: memoryview, limits: Limits) -> int | None:
    """Best-effort sum of declared stream lengths of a possibly corrupt header, or None."""
    try:
        return sum(length for _, length in _stream_table(_parse_json(raw_header), limits))
    except (HeaderError, LimitError):
        return None


def _check(
    data: bytes | bytearray | memoryview, limits: Limits
) -> tuple[memoryview, dict, list[tuple[str, int]], int]:
    """Run every check; return (view, header, stream table, payload offset). Nothing is copied."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    size = view.nbytes
    head = bytes(view[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise BadMagicError(f"not a wavelatent file: expected magic {MAGIC!r}, found {head!r}")
    if size < _PREFIX_LEN:
        raise TruncatedError(f"truncated: the fixed prefix needs {_PREFIX_LEN} bytes but the data has {size}")
    _, version, flags, header_len = _PREFIX.unpack_from(view)
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise UnsupportedVersionError(
            f"unsupported container format version {version}; this build reads version(s) {supported}"
        )
    if flags != 0:
        raise HeaderError(f"reserved flags byte must be 0, found {flags:#04x}")
    if header_len > limits.max_header_bytes:
        raise LimitError(
            f"header too large: at most {limits.max_header_bytes} bytes allowed, file declares {header_len}"
        )
    remaining = size - _PREFIX_LEN
    if remaining < header_len + _CRC_LEN:
        raise TruncatedError(
            f"truncated: header declares {header_len} bytes (+{_CRC_LEN} for the CRC) "
            f"but only {remaining} remain"
        )
    raw_header = view[_PREFIX_LEN : _PREFIX_LEN + header_len]

    (stored_crc,) = _CRC.unpack_from(view, size - _CRC_LEN)
    actual_crc = zlib.crc32(view[: size - _CRC_LEN])
    if stored_crc != actual_crc:
        declared = _declared_payload(raw_header, limits)
        if declared is not None:
            expected = _PREFIX_LEN + header_len + declared + _CRC_LEN
            if size < expected:
                raise TruncatedError(
                    f"truncated: header declares {expected} bytes in total but the data has {size}"
                )
        raise ChecksumError(f"CRC32 mismatch: file stores {stored_crc:#010x}, contents give {actual_crc:#010x}")

    header = _parse_json(raw_header)
    table = _stream_table(header, limits)
    expected = _PREFIX_LEN + header_len + sum(length for _, length in table) + _CRC_LEN
    if size < expected:
        raise TruncatedError(f"truncated: header declares {expected} bytes in total but the data has {size}")
    if size > expected:
        raise HeaderError(f"trailing bytes: header declares {expected} bytes in total but the data has {size}")
    return view, header, table, _PREFIX_LEN + header_len


def unpack(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Container:
    """Parse and verify container bytes; raise a ContainerError subclass if they are invalid."""
    view, header, table, offset = _check(data, limits)
    streams: dict[str, bytes] = {}
    for name, length in table:
        streams[name] = bytes(view[offset : offset + length])
        offset += length
    return Container(header=header, streams=streams)


def read_header(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Verify container bytes exactly as :func:`unpack` does and return only the header."""
    header = _check(data, limits)[1]
    return header
