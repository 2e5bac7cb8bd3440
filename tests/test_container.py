"""The .wlt container: round trips, canonical bytes, and a typed error for every bad file."""
from __future__ import annotations

import ast
import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wavelatent.container import (
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    MAGIC,
    Container,
    Limits,
    pack,
    read_header,
    unpack,
)
from wavelatent.errors import (
    BadMagicError,
    ChecksumError,
    ContainerError,
    HeaderError,
    LimitError,
    TruncatedError,
    UnsupportedVersionError,
)


def small_file() -> bytes:
    """A valid container of about 200 bytes with three streams (one empty)."""
    header = {"preset": "test-image", "shape": [1, 3, 8, 8], "quality": 2, "note": "héllo"}
    data = pack(header, {"y": bytes(range(40)), "empty": b"", "side": b"\x00\xff" * 10})
    assert 100 <= len(data) <= 200
    return data


def build(header_bytes: bytes, payload: bytes = b"", *, version: int = 1, flags: int = 0) -> bytes:
    """Assemble a container by hand with a correct CRC (to reach the checks after it); version 1
    takes a JSON header, version 2 a compact one."""
    body = MAGIC + struct.pack("<BBI", version, flags, len(header_bytes)) + header_bytes + payload
    return body + struct.pack("<I", zlib.crc32(body))


def header_json(streams, **extra) -> bytes:
    obj = {"format_version": 1, "streams": streams, **extra}
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def fix_crc(data: bytes | bytearray) -> bytes:
    body = bytes(data[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


# --- round trips ------------------------------------------------------------
def test_round_trip_several_streams():
    streams = {"b": b"\x01\x02", "a": bytes(range(256)) * 3, "c": b""}
    data = pack({"shape": [2, 3], "step": 0.5}, streams)
    box = unpack(data)
    assert isinstance(box, Container)
    assert box.streams == streams
    assert list(box.streams) == ["b", "a", "c"]  # the mapping's order, not sorted
    assert all(type(v) is bytes for v in box.streams.values())
    assert box.header["shape"] == [2, 3] and box.header["step"] == 0.5
    assert box.header["format_version"] == FORMAT_VERSION
    assert box.header["streams"] == [
        {"name": "b", "length": 2},
        {"name": "a", "length": 768},
        {"name": "c", "length": 0},
    ]
    assert read_header(data) == box.header


def test_round_trip_no_streams_and_empty_header():
    data = pack({}, {})
    box = unpack(data)
    assert box.streams == {}
    assert box.header == {"format_version": FORMAT_VERSION, "streams": []}


def test_round_trip_unicode_header_is_ascii_on_disk():
    header = {"title": "ondelette 🌊 — 小波", "ключ": "значение"}
    data = pack(header, {"s": b"x"}, version=1)
    raw_len = struct.unpack_from("<I", data, 6)[0]
    data[10 : 10 + raw_len].decode("ascii")  # ensure_ascii=True
    for version in (1, 2):
        box = unpack(pack(header, {"s": b"x"}, version=version))
        assert box.header["title"] == header["title"] and box.header["ключ"] == "значение"


def test_accepts_bytearray_and_memoryview():
    data = small_file()
    assert unpack(bytearray(data)) == unpack(data) == unpack(memoryview(data))


def test_canonical_bytes_are_deterministic():
    for version in (1, 2):
        a = pack({"b": 1, "a": {"y": [1, 2], "x": None}}, {"s": b"123", "t": b""}, version=version)
        b = pack({"a": {"x": None, "y": [1, 2]}, "b": 1}, {"s": bytearray(b"123"), "t": memoryview(b"")},
                 version=version)
        assert a == b
        assert a[:4] == b"WLAT" and a[4] == version and a[5] == 0
        assert struct.unpack("<I", a[-4:])[0] == zlib.crc32(a[:-4])
    a = pack({"b": 1, "a": {"y": [1, 2], "x": None}}, {"s": b"123", "t": b""}, version=1)
    header = a[10 : 10 + struct.unpack_from("<I", a, 6)[0]]
    assert header == json.dumps(
        json.loads(header), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()


def test_pack_rejects_programming_errors():
    with pytest.raises(ValueError, match="reserved"):
        pack({"streams": []}, {})
    with pytest.raises(ValueError, match="reserved"):
        pack({"format_version": 1}, {})
    with pytest.raises(ValueError):
        pack({"x": float("nan")}, {})
    with pytest.raises(TypeError):
        pack({"x": object()}, {})
    with pytest.raises(TypeError):
        pack({}, {"s": "not bytes"})


def test_pack_checks_limits():
    with pytest.raises(LimitError, match="too many streams"):
        pack({}, {str(i): b"" for i in range(DEFAULT_LIMITS.max_streams + 1)})
    with pytest.raises(LimitError, match="header too large"):
        pack({"big": "x" * DEFAULT_LIMITS.max_header_bytes}, {})
    with pytest.raises(LimitError, match="payload too large"):
        pack({}, {"s": b"12345"}, limits=Limits(max_payload_bytes=4))


# --- each error path ----------------------------------------------------------
def test_every_truncation_is_a_container_error():
    data = small_file()
    for cut in range(len(data)):
        with pytest.raises(ContainerError):
            unpack(data[:cut])
    for cut in range(10):
        with pytest.raises(TruncatedError):
            unpack(data[:cut])


def test_truncation_in_payload_is_reported_as_truncation():
    data = small_file()
    for cut in (len(data) - 1, len(data) - 5, len(data) - 30):
        with pytest.raises(TruncatedError, match="truncated"):
            unpack(data[:cut])


def test_bad_magic():
    data = small_file()
    with pytest.raises(BadMagicError, match="WLAT"):
        unpack(b"RIFF" + data[4:])
    with pytest.raises(BadMagicError):
        unpack(b"hello")


def test_unsupported_version_says_which_are_supported():
    data = bytearray(small_file())
    data[4] = 3
    with pytest.raises(UnsupportedVersionError, match=r"version 3.*reads version\(s\) 1, 2"):
        unpack(fix_crc(data))


def test_nonzero_flags():
    data = bytearray(small_file())
    data[5] = 1
    with pytest.raises(HeaderError, match="flags"):
        unpack(fix_crc(data))


def test_crc_flip_in_payload_and_in_crc():
    data = bytearray(small_file())
    data[-10] ^= 0x01
    with pytest.raises(ChecksumError, match="CRC32"):
        unpack(bytes(data))
    data = bytearray(small_file())
    data[-1] ^= 0x80
    with pytest.raises(ChecksumError):
        read_header(bytes(data))


def test_huge_header_len_is_a_limit_error_without_allocating():
    data = MAGIC + struct.pack("<BBI", 1, 0, 0xFFFFFFFF) + b"\x00" * 4
    tracemalloc.start()
    try:
        with pytest.raises(LimitError, match="header too large"):
            unpack(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    with pytest.raises(LimitError):
        unpack(small_file(), limits=Limits(max_header_bytes=16))


def test_malformed_json_with_valid_crc():
    for raw in (b"{not json", b"\xff\xfe{}", b"[1, 2]", b'"str"', b"{}", b'{"a":NaN}', b"[" * 5000 + b"]" * 5000):
        with pytest.raises(HeaderError):
            unpack(build(raw))
    dup = b'{"format_version":1,"streams":[],"streams":[]}'
    with pytest.raises(HeaderError, match="duplicate"):
        unpack(build(dup))


@pytest.mark.parametrize(
    "streams",
    [
        None,
        "abc",
        {"name": "a", "length": 1},
        [["a", 1]],
        [{"name": "a"}],
        [{"name": 1, "length": 1}],
        [{"name": "a", "length": -1}],
        [{"name": "a", "length": 1.0}],
        [{"name": "a", "length": True}],
        [{"name": "a", "length": 1, "extra": 0}],
        [{"name": "a", "length": 1}, {"name": "a", "length": 0}],
    ],
)
def test_malformed_stream_table(streams):
    with pytest.raises(HeaderError):
        unpack(build(header_json(streams), b"x"))


def test_missing_streams_or_wrong_format_version():
    with pytest.raises(HeaderError, match="streams"):
        unpack(build(b'{"format_version":1}'))
    with pytest.raises(HeaderError, match="format_version"):
        unpack(build(b'{"streams":[]}'))
    with pytest.raises(HeaderError, match="format_version"):
        unpack(build(b'{"format_version":2,"streams":[]}'))


def test_too_many_streams_and_payload_over_limit():
    many = [{"name": str(i), "length": 0} for i in range(17)]
    with pytest.raises(LimitError, match="too many streams"):
        unpack(build(header_json(many)))
    # The declared sizes alone exceed the limit: no payload needs to be present.
    huge = [{"name": "a", "length": 2**30}, {"name": "b", "length": 2**30 + 1}]
    with pytest.raises(LimitError, match="payload too large"):
        unpack(build(header_json(huge)))
    with pytest.raises(LimitError):
        unpack(small_file(), limits=Limits(max_payload_bytes=10))
    with pytest.raises(LimitError):
        unpack(small_file(), limits=Limits(max_streams=2))


def test_crafted_lengths_shorter_and_longer_than_payload():
    table = [{"name": "a", "length": 5}]
    with pytest.raises(TruncatedError, match="declares"):
        unpack(build(header_json(table), b"abc"))
    with pytest.raises(HeaderError, match="trailing bytes"):
        unpack(build(header_json(table), b"abcdefg"))
    assert unpack(build(header_json(table), b"abcde")).streams == {"a": b"abcde"}


def test_trailing_bytes_after_a_valid_file():
    data = small_file()
    with pytest.raises(ContainerError):
        unpack(data + b"\x00")
    with pytest.raises(HeaderError, match="trailing bytes"):
        unpack(fix_crc(data[:-4] + b"junk" + data[-4:]))


def test_messages_say_expected_and_found():
    data = small_file()
    header_len = struct.unpack_from("<I", data, 6)[0]
    with pytest.raises(TruncatedError, match=f"header declares {header_len} bytes"):
        unpack(data[:40])


def test_every_single_byte_change_is_detected():
    data = small_file()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        with pytest.raises(ContainerError):
            unpack(bytes(bad))


# --- the compact header (version 2) ----------------------------------------------
def test_compact_header_bytes_follow_the_spec():
    """Tags as the module docstring gives them: small ints inline, dictionary words in one byte,
    varints, hex strings as bytes, UTF-8 strings, sorted keys."""
    data = pack({"quality": 2, "width": 768, "weights_sha256": "1e43", "note": "é", "gain": -1}, {"latent": b"ab"})
    raw = data[10 : 10 + struct.unpack_from("<I", data, 6)[0]]
    from wavelatent import container as c

    word = lambda w: bytes([0x80 + c._DICTIONARY.index(w)])  # noqa: E731
    expected = (
        b"\x48\x07"  # an object of 7 keys, sorted
        + word("format_version") + b"\x02"
        + word("gain") + b"\x41\x00"  # -1 = -(0) - 1
        + b"\x46\x04note" + b"\x46\x02\xc3\xa9"
        + word("quality") + b"\x02"
        + word("streams") + b"\x47\x01\x48\x02" + word("length") + b"\x02" + word("name") + word("latent")
        + word("weights_sha256") + b"\x49\x02\x1e\x43"
        + word("width") + b"\x40\x80\x06"  # 768 as a LEB128 varint
    )
    assert raw == expected


def test_real_headers_are_small():
    import numpy as np

    import wavelatent as wl

    img = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    data = wl.compress(img, "test-image")
    overhead = len(data) - len(unpack(data).streams["latent"])
    assert overhead <= 64  # 10 prefix + ~45 header + 4 CRC; JSON took ~245


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"", "truncated"),
        (b"\x48", "truncated"),
        (b"\x48\x01", "declares"),
        (b"\x48\x01\x05\x01", "key must be a string"),
        (b"\x48\x02\x81\x00\x81\x00", "duplicate"),
        (b"\x4f", "unknown tag"),
        (b"\xfe", "dictionary word"),
        (b"\x40" + b"\xff" * 50, "longer than"),
        (b"\x42" + struct.pack("<d", float("nan")), "non-finite"),
        (b"\x42\x00\x00", "truncated"),
        (b"\x46\x02\xff\xfe", "UTF-8"),
        (b"\x49\x00", "empty hex"),
        (b"\x47\x01" * 40 + b"\x00", "nested"),
        (b"\x47\x00\x00", "trailing"),
        (b"\x47\x00", "must be an object"),
    ],
)
def test_malformed_compact_headers(raw, match):
    with pytest.raises(HeaderError, match=match):
        unpack(build(raw, version=2))


def test_compact_header_huge_counts_allocate_nothing():
    for raw in (b"\x47\xff\xff\xff\xff\x0f", b"\x48\xff\xff\xff\xff\x0f", b"\x46\xff\xff\xff\xff\x0f"):
        tracemalloc.start()
        try:
            with pytest.raises(HeaderError):
                unpack(build(raw, version=2))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 100_000


def test_version_1_files_still_read():
    header = {"preset": "image-rgb-16x", "quality": 2, "weights_sha256": "00ff", "gain": 1.0, "shape": [1, 2]}
    old, new = pack(header, {"latent": b"xyz"}, version=1), pack(header, {"latent": b"xyz"})
    assert old[4] == 1 and new[4] == 2 and len(new) < len(old)
    a, b = unpack(old), unpack(new)
    assert a.streams == b.streams
    assert {**a.header, "format_version": 2} == b.header


# --- properties -----------------------------------------------------------------
@settings(max_examples=400, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_container_errors(data):
    for candidate in (data, MAGIC + data, MAGIC + b"\x01\x00" + data, MAGIC + b"\x02\x00" + data):
        try:
            unpack(candidate)
        except ContainerError:
            pass


def _mutations():
    edit = st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255))
    return st.lists(edit, min_size=1, max_size=4)


def _apply(data: bytes, edits) -> bytearray:
    out = bytearray(data)
    for kind, pos, value in edits:
        pos %= len(out) + 1
        if kind == "insert":
            out.insert(pos, value)
        elif out and kind == "set":
            out[min(pos, len(out) - 1)] = value
        elif out:
            del out[min(pos, len(out) - 1)]
    return out


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(), st.booleans())
def test_mutations_of_a_valid_file_only_raise_container_errors(edits, recompute_crc):
    data = _apply(small_file(), edits)
    if recompute_crc and len(data) >= 4:
        data = bytearray(fix_crc(data))  # reach the JSON and stream-table checks
    try:
        box = unpack(bytes(data))
    except ContainerError:
        return
    assert isinstance(box.header, dict) and all(type(v) is bytes for v in box.streams.values())


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in ("streams", "format_version")),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
            max_leaves=8,
        ),
        max_size=5,
    ),
    st.dictionaries(st.text(max_size=6), st.binary(max_size=50), max_size=5),
)
def test_property_round_trip(header, streams):
    for version in (1, 2):
        box = unpack(pack(header, streams, version=version))
        assert box.streams == streams
        assert {k: v for k, v in box.header.items() if k not in ("streams", "format_version")} == header


def test_container_module_imports_only_the_stdlib():
    source = Path(__file__).parents[1] / "src" / "wavelatent" / "container.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "json", "struct", "zlib", "dataclasses", "typing"}
