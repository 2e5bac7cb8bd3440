"""Goldens that mean the same on any CPU (issue 15): every preset that ships weights, images and audio.

Integers are exact (file bytes, entropy-decoded symbols, re-entropy-coded streams); float outputs
are within one LSB on at most 0.1 % of the values; re-encoding the source may flip a symbol only
where the codec's own float latent ``y / step`` lies within 1e-4 of a rounding boundary.
Definitions and file layout: ``tests/golden/golden.py``; regenerate with
``PYTHONPATH=src python tests/golden/make_golden.py``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import wavelatent as wl
from wavelatent import container

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import golden as g  # noqa: E402

MANIFEST = json.loads(g.MANIFEST.read_text())
ENTRIES = MANIFEST["goldens"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


_CODECS: dict = {}


def codec_for(entry: dict):
    """The shipped codec of ``entry``'s preset, failing clearly when the goldens are stale."""
    preset = entry["preset"]
    if preset not in _CODECS:
        _CODECS[preset] = wl.load_codec(preset)
    codec = _CODECS[preset]
    if codec.weights_sha256 != entry["weights_sha256"] or codec.config.version != entry["preset_version"]:
        pytest.fail(f"the shipped weights of {preset} (sha256 {codec.weights_sha256[:12]}…, version "
                    f"{codec.config.version}) are not those of the goldens ({entry['weights_sha256'][:12]}…, version "
                    f"{entry['preset_version']}): regenerate with `PYTHONPATH=src {g.REGENERATE}` (and bump the "
                    f"preset's version in src/wavelatent/registry.py if the weights changed on purpose)")
    return codec


def stored(entry: dict) -> bytes:
    data = (g.HERE / entry["file"]).read_bytes()
    assert g.sha256(data) == entry["file_sha256"], f"{entry['file']} is not the file the manifest pins"
    return data


def golden_symbols(entry: dict) -> np.ndarray:
    return g.read_npy(g.HERE / entry["symbols"])


def golden_output(entry: dict) -> np.ndarray:
    path = g.HERE / entry["decoded"]
    return g.read_png(path) if path.suffix == ".png" else g.read_npy(path)


def ids(entry: dict) -> str:
    return entry["file"].removesuffix(".wlt")


def test_every_shipped_preset_has_goldens():
    from wavelatent.registry import list_presets
    from wavelatent.weights import has_shipped_weights

    covered = {e["preset"] for e in ENTRIES}
    missing = [p for p in list_presets() if has_shipped_weights(p) and p not in covered]
    assert not missing, f"{missing} ship weights but have no goldens: regenerate with `PYTHONPATH=src {g.REGENERATE}`"
    assert {"test-image", "test-audio"} <= covered, "the trained test presets must ship (tests/golden/train_test_presets.sh)"
    for name, digest in MANIFEST["sources"].items():
        assert g.file_sha256(g.HERE / name) == digest, f"source {name} changed"


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_symbols_are_exact(entry):
    """(a) the pinned file unpacks and entropy-decodes to exactly the golden symbols;
    (b) entropy-coding the golden symbols again gives exactly the stored streams."""
    codec = codec_for(entry)
    data = stored(entry)
    expected = golden_symbols(entry)
    got = g.stream_symbols(data, codec)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected), f"{entry['file']}: {np.count_nonzero(got != expected)} symbols differ"
    streams = container.unpack(data).streams
    recoded = g.encode_streams(expected, data, codec)
    assert recoded == {k: v for k, v in streams.items() if k in recoded}, f"{entry['file']}: re-coded stream differs"


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_symbols_are_real(entry):
    """Every golden codes nonzero symbols; the trained test presets at least 5 % of them."""
    symbols = golden_symbols(entry)
    fraction = np.count_nonzero(symbols) / symbols.size
    assert fraction == pytest.approx(entry["nonzero_fraction"], abs=1e-4)
    assert fraction > 0
    if entry["preset"].startswith("test-"):
        assert fraction >= g.MIN_NONZERO_TEST, f"{entry['file']}: {fraction:.1%} nonzero symbols (untrained test preset?)"


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_decoded_within_one_lsb(entry):
    """(c) decoding the pinned file gives the golden output within 1 LSB on <= 0.1 % of the values."""
    codec = codec_for(entry)
    out = g.decoded(codec, stored(entry))
    expected = golden_output(entry)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    diff = np.abs(out.astype(np.int32) - expected.astype(np.int32))
    assert diff.max() <= g.MAX_LSB, f"{entry['file']}: decoded values off by up to {diff.max()} LSB"
    assert np.count_nonzero(diff) <= g.MAX_DIFFERING * diff.size, \
        f"{entry['file']}: {np.count_nonzero(diff)} of {diff.size} decoded values differ by 1 LSB"


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_reencoding_the_source(entry):
    """(d) compress now gives the golden symbols except where y / step is within 1e-4 of x.5;
    (e) when the symbols are the golden ones, the file is the stored file byte for byte."""
    codec = codec_for(entry)
    name, signal, rate = g.source_for(entry["preset"])
    assert name == entry["source"]
    ratios: list = []
    with g.recorded_latents(codec, ratios):
        data = g.compress(codec, signal, rate, entry["quality"])
    symbols, expected = g.stream_symbols(data, codec), golden_symbols(entry)
    assert symbols.shape == expected.shape
    ratio = np.concatenate(ratios, axis=-1) if len(ratios) > 1 else ratios[0]
    assert ratio.shape == symbols.shape, "the recorded float latent does not line up with the stream's symbols"
    flipped = symbols != expected
    unexplained = flipped & ~g.near_boundary(ratio)
    assert not unexplained.any(), (
        f"{entry['file']}: {np.count_nonzero(unexplained)} symbols differ from the golden ones away from a rounding "
        f"boundary; if the codec changed on purpose, regenerate with `PYTHONPATH=src {g.REGENERATE}`")
    if not flipped.any():
        old = stored(entry)
        if data != old:
            header, before = container.read_header(data), container.read_header(old)
            changed = sorted(k for k in header.keys() | before.keys() if header.get(k) != before.get(k))
            pytest.fail(f"{entry['file']}: same symbols but other bytes (header fields that differ: "
                        f"{changed or 'none'}); if intended, regenerate with `PYTHONPATH=src {g.REGENERATE}`")


def test_near_boundary():
    r = np.array([0.5, 0.50009, 0.5002, -1.49995, 2.0, 3.499], dtype=np.float32)
    assert g.near_boundary(r).tolist() == [True, True, False, True, False, False]


V1 = Path(__file__).resolve().parent / "legacy" / "container-v1"
V1_ENTRIES = [e for e in ENTRIES if (V1 / e["file"]).exists()]


def test_container_v1_goldens_are_there():
    """The files of the previous container version (JSON header), one per shipped preset at its
    default quality: the goldens as the previous release wrote them (committed with -f)."""
    assert len(V1_ENTRIES) == 6


@pytest.mark.parametrize("entry", V1_ENTRIES, ids=ids)
def test_container_v1_files_still_decode(entry):
    """A file with the JSON header of container version 1 holds the streams today's codec writes for
    the golden symbols with the entropy model it names, entropy-decodes to the same symbols and
    decodes to the same output (within 1 LSB) as today's file, whose header holds the same fields
    (the weights it names may be an older release that today's declare they decode: one that changed
    only the decoder, or added an entropy model)."""
    from wavelatent.weights import accepts_weights

    codec = codec_for(entry)
    old, new = (V1 / entry["file"]).read_bytes(), stored(entry)
    assert old[4] == 1 and new[4] == container.FORMAT_VERSION == 2
    a, b = container.unpack(old), container.unpack(new)
    release = ("weights_sha256", "preset_version", "entropy")
    assert a.streams == g.encode_streams(golden_symbols(entry), old, codec)
    assert accepts_weights(codec, a.header["weights_sha256"])
    if a.header.get("entropy") == b.header.get("entropy"):
        assert a.streams == b.streams and len(new) < len(old)
    else:  # another entropy model: other stream lengths
        release += ("streams",)
    assert {**a.header, "format_version": 2, **{k: b.header[k] for k in release if k in b.header}} == b.header
    assert np.array_equal(g.stream_symbols(old, codec), golden_symbols(entry))
    diff = np.abs(g.decoded(codec, old).astype(np.int32) - golden_output(entry).astype(np.int32))
    assert diff.max() <= g.MAX_LSB and np.count_nonzero(diff) <= g.MAX_DIFFERING * diff.size
