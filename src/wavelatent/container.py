"""The .wlt container: pack/unpack a header (a JSON-like object) and named byte streams. Stdlib only.

Layout (all integers little-endian)::

    magic       4 bytes   b"WLAT"
    version     u8        FORMAT_VERSION (2; version 1 files are still read)
    flags       u8        0 (reserved)
    header_len  u32       length of the stored header in bytes
    header      version 2: the compact binary header (below); version 1: UTF-8 JSON, canonical
                (sorted keys, no spaces, ASCII only). Either way the object always holds
                "format_version" and "streams" = [{"name", "length"}, ...]
    payload     the streams, concatenated in the order of header["streams"]
    crc32       u32       zlib.crc32 of every byte before it (magic .. payload)

The compact header stores the same object as tagged values: one byte for the integers 0..63 and
for each string of a fixed dictionary (field names and common values), LEB128 varints for other
integers, float64 for floats, lowercase hex strings (the weights hash) as their bytes, UTF-8 for
other strings; object keys sorted. A typical image header takes ~45 bytes instead of ~230 as JSON.
The encoding is fully specified (no compressor), so a file's bytes are the same on every machine.

Reading checks, in order: fixed-size prefix, magic, version, flags, header length against
:class:`Limits` (before anything is sliced), declared header length against the data,
CRC32 (before the header is parsed), the header (every length inside it checked against the bytes
left before allocating), the stream table, and the exact total length. Every failure raises a
:class:`~wavelatent.errors.ContainerError` subclass whose message says what was expected and what
was found.
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
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)

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
    """An unpacked container: the header as stored (with "streams") and the streams."""

    header: dict
    streams: dict[str, bytes]


# --- the compact header (format version 2) -------------------------------------
# Every JSON value as a tagged binary value: small ints in one byte, strings of a fixed dictionary
# (keys and common values) in one byte, lowercase hex strings as their bytes. Fully specified, so the
# bytes are the same on every machine; the dictionary is part of format version 2 and never changes.
_DICTIONARY = (
    # keys
    "alpha", "bands", "bit_depth", "channels", "chunk", "chunks", "classes", "coded_channels", "count",
    "dtype", "entropy", "first", "format", "format_version", "frames", "gain", "groups", "height", "kind",
    "klt", "labels", "latent", "latent_shape", "latents", "length", "lengths", "modality", "mode", "name",
    "preset", "preset_version", "quality", "sample_rate", "size", "source_format", "step", "storage",
    "streams", "subtype", "transform", "weights_sha256", "width",
    # values
    "image", "audio", "multiband", "latent-shard", "grid", "none", "checkerboard", "L", "LA", "RGB", "RGBA",
    "uint8", "uint16", "float32", "float64", "image-rgb-16x", "image-rgb-4x", "image-gray-16x",
    "audio-mono-2x", "audio-stereo-5x", "audio-stereo-20x", "test-image", "test-audio", "array", "WAV",
    "FLAC", "OGG", "MP3", "OPUS", "VORBIS", "PCM_16", "PCM_24", "PCM_32", "PCM_U8", "PCM_S8", "FLOAT",
    "DOUBLE",
)
_WORD = {word: i for i, word in enumerate(_DICTIONARY)}
_SMALL = 0x40  # tags 0x00..0x3F: the integers 0..63
_UINT, _NEG, _FLOAT, _FALSE, _TRUE, _NULL, _STR, _LIST, _OBJECT, _HEX = range(0x40, 0x4A)
_WORDS = 0x80  # tags 0x80..0xFF: _DICTIONARY[tag - 0x80]
_MAX_DEPTH = 32
_MAX_INT_BYTES = 40  # varints of up to 280 bits
_HEX_DIGITS = frozenset("0123456789abcdef")


def _varint(value: int, out: bytearray) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _encode_value(value: Any, out: bytearray, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"header nested deeper than {_MAX_DEPTH}")
    if value is None:
        out.append(_NULL)
    elif value is True or value is False:
        out.append(_TRUE if value else _FALSE)
    elif isinstance(value, int):
        if value.bit_length() > 7 * _MAX_INT_BYTES - 8:
            raise ValueError(f"header integer too large: {value.bit_length()} bits")
        if 0 <= value < _SMALL:
            out.append(value)
        else:
            out.append(_UINT if value >= 0 else _NEG)
            _varint(value if value >= 0 else -value - 1, out)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"header floats must be finite, got {value}")
        out.append(_FLOAT)
        out += struct.pack("<d", value)
    elif isinstance(value, str):
        _encode_str(value, out)
    elif isinstance(value, (list, tuple)):
        out.append(_LIST)
        _varint(len(value), out)
        for item in value:
            _encode_value(item, out, depth + 1)
    elif isinstance(value, Mapping):
        out.append(_OBJECT)
        _varint(len(value), out)
        for key in sorted(value):
            if not isinstance(key, str):
                raise TypeError(f"header keys must be str, got {key!r}")
            _encode_str(key, out)
            _encode_value(value[key], out, depth + 1)
    else:
        raise TypeError(f"header values must be JSON types, got {type(value).__name__}")


def _encode_str(text: str, out: bytearray) -> None:
    word = _WORD.get(text)
    if word is not None:
        out.append(_WORDS + word)
    elif text and len(text) % 2 == 0 and set(text) <= _HEX_DIGITS:
        out.append(_HEX)
        _varint(len(text) // 2, out)
        out += bytes.fromhex(text)
    else:
        raw = text.encode("utf-8")
        out.append(_STR)
        _varint(len(raw), out)
        out += raw


def _compact(header: dict) -> bytes:
    out = bytearray()
    _encode_value(header, out)
    return bytes(out)


class _Reader:
    """Parses a compact header; every length is checked against the bytes left before anything is
    allocated, so a crafted header costs at most its own size."""

    def __init__(self, raw: memoryview) -> None:
        self.raw, self.pos = raw, 0

    def _take(self, n: int) -> memoryview:
        if n > len(self.raw) - self.pos:
            raise HeaderError(f"compact header truncated: a field needs {n} bytes at offset {self.pos}, "
                              f"{len(self.raw) - self.pos} remain")
        self.pos += n
        return self.raw[self.pos - n : self.pos]

    def varint(self) -> int:
        value = shift = 0
        for _ in range(_MAX_INT_BYTES):
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
        raise HeaderError(f"compact header integer longer than {_MAX_INT_BYTES} bytes at offset {self.pos}")

    def count(self, each: int = 1) -> int:
        """A length of items of at least ``each`` bytes that must fit in the bytes left."""
        n = self.varint()
        if n * each > len(self.raw) - self.pos:
            raise HeaderError(f"compact header declares {n} items at offset {self.pos} but only "
                              f"{len(self.raw) - self.pos} bytes remain")
        return n

    def value(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise HeaderError(f"compact header nested deeper than {_MAX_DEPTH}")
        tag = self._take(1)[0]
        if tag < _SMALL:
            return tag
        if tag >= _WORDS:
            if tag - _WORDS >= len(_DICTIONARY):
                raise HeaderError(f"compact header names dictionary word {tag - _WORDS}, which does not exist")
            return _DICTIONARY[tag - _WORDS]
        if tag == _UINT:
            return self.varint()
        if tag == _NEG:
            return -self.varint() - 1
        if tag == _FLOAT:
            (value,) = struct.unpack("<d", self._take(8))
            if value != value or value in (float("inf"), float("-inf")):
                raise HeaderError("compact header holds a non-finite float")
            return value
        if tag in (_FALSE, _TRUE, _NULL):
            return {_FALSE: False, _TRUE: True, _NULL: None}[tag]
        if tag == _STR:
            try:
                return bytes(self._take(self.count())).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HeaderError(f"compact header string is not valid UTF-8: {exc.reason}") from None
        if tag == _HEX:
            n = self.count()
            if n == 0:
                raise HeaderError("compact header holds an empty hex string")
            return bytes(self._take(n)).hex()
        if tag == _LIST:
            return [self.value(depth + 1) for _ in range(self.count())]
        if tag == _OBJECT:
            obj: dict = {}
            for _ in range(self.count(2)):
                key = self.value(depth + 1)
                if not isinstance(key, str):
                    raise HeaderError(f"compact header object key must be a string, found {key!r:.40}")
                if key in obj:
                    raise HeaderError(f"compact header has duplicate key {key!r:.40}")
                obj[key] = self.value(depth + 1)
            return obj
        raise HeaderError(f"compact header has unknown tag {tag:#04x} at offset {self.pos - 1}")


def _parse_compact(raw: memoryview) -> Any:
    reader = _Reader(raw)
    try:
        value = reader.value()
    except RecursionError:
        raise HeaderError("compact header is nested too deeply") from None
    if reader.pos != len(raw):
        raise HeaderError(f"compact header has {len(raw) - reader.pos} trailing bytes")
    return value


# --- writing ----------------------------------------------------------------
def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
        "ascii"
    )


def pack(
    header: Mapping[str, Any],
    streams: Mapping[str, bytes],
    *,
    limits: Limits = DEFAULT_LIMITS,
    version: int = FORMAT_VERSION,
) -> bytes:
    """Serialize ``header`` and ``streams`` (in the mapping's order) into container bytes.

    ``header`` must be JSON-serializable and must not contain the keys "streams" or
    "format_version", which this function sets. Programming errors (reserved keys, wrong
    types, NaN) raise ``ValueError``/``TypeError``; sizes over ``limits`` raise LimitError.
    ``version``: 2 (the compact header) or 1 (JSON, as every file written before version 2; for
    tests of old files).
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"version must be one of {SUPPORTED_VERSIONS}, got {version!r}")
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
    full_header["format_version"] = version
    full_header["streams"] = table
    header_bytes = _canonical_json(full_header) if version == 1 else _compact(full_header)
    if len(header_bytes) > limits.max_header_bytes:
        raise LimitError(
            f"header too large: at most {limits.max_header_bytes} bytes allowed, got {len(header_bytes)}"
        )

    out = bytearray(_PREFIX.pack(MAGIC, version, 0, len(header_bytes)))
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


def _parse_header(raw: memoryview, version: int) -> Any:
    return _parse_json(raw) if version == 1 else _parse_compact(raw)


def _stream_table(header: Any, limits: Limits, version: int) -> list[tuple[str, int]]:
    """Validate the header object and its "streams" table; return [(name, length), ...]."""
    if not isinstance(header, dict):
        raise HeaderError(f"header must be an object, found {type(header).__name__}")
    stored = header.get("format_version")
    if type(stored) is not int or stored != version:
        raise HeaderError(f"header format_version must be {version} (as in the prefix), found {stored!r:.40}")
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


def _declared_payload(raw_header: memoryview, limits: Limits, version: int) -> int | None:
    """Best-effort sum of declared stream lengths of a possibly corrupt header, or None."""
    try:
        return sum(length for _, length in _stream_table(_parse_header(raw_header, version), limits, version))
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
        declared = _declared_payload(raw_header, limits, version)
        if declared is not None:
            expected = _PREFIX_LEN + header_len + declared + _CRC_LEN
            if size < expected:
                raise TruncatedError(
                    f"truncated: header declares {expected} bytes in total but the data has {size}"
                )
        raise ChecksumError(f"CRC32 mismatch: file stores {stored_crc:#010x}, contents give {actual_crc:#010x}")

    header = _parse_header(raw_header, version)
    table = _stream_table(header, limits, version)
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
