"""LatentCoder: every caller's symbols <-> bytes; the entropy-model registry; module boundaries."""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wavelatent import bitstream
from wavelatent.bitstream import ENTROPY_MODELS, EntropyModel, LatentCoder
from wavelatent.entropy import rans
from wavelatent.errors import EntropyCodingError
from wavelatent.models import create_codec
from wavelatent.registry import get_config

SRC = Path(__file__).resolve().parents[1] / "src" / "wavelatent"


def _symbols(codec, shape, quality=None, seed=0):
    M = codec.config.max_symbol(codec.config.check_quality(quality))
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.laplace(0, 1.5, (codec.config.latent_channels, *shape))), -M, M).astype(np.int32)


def test_factorized_round_trip_and_stream(test_codec):
    coder = LatentCoder(test_codec, 2, entropy="none")
    assert coder.entropy == "none" and coder.max_symbol == test_codec.config.max_symbol(2)
    for shape in [(5, 7), (35,), (3, 4, 5)]:
        q = _symbols(test_codec, shape, 2)
        data = coder.compress(q)
        # the stream every file and shard held before LatentCoder: symbol + max_symbol, spatial flattened
        assert data == rans.encode(q.reshape(q.shape[0], -1) + coder.max_symbol, test_codec.tables(2))
        assert coder.compress(torch.from_numpy(q)) == coder.compress(q.astype(np.int8)) == data
        out = coder.decompress(data, shape)
        assert out.dtype == np.int32 and np.array_equal(out, q)


def test_checkerboard_round_trip():
    codec = create_codec(dataclasses.replace(get_config("test-image"), context="checkerboard"), seed=0)
    coder = LatentCoder(codec)
    assert coder.entropy == "checkerboard"
    q = _symbols(codec, (6, 9))
    assert np.array_equal(coder.decompress(coder.compress(q), (6, 9)), q)
    with pytest.raises(EntropyCodingError):  # a 2-D model
        coder.compress(q.reshape(q.shape[0], -1))
    # a file or shard may name the factorized model for the same codec
    plain = LatentCoder(codec, entropy="none")
    assert np.array_equal(plain.decompress(plain.compress(q), (6, 9)), q)


def test_a_new_entropy_model_is_one_registry_row(test_codec, monkeypatch):
    calls = []

    def encode(q, tables):
        calls.append(tables)
        return np.ascontiguousarray(q, "<i4").tobytes()

    def decode(data, tables, shape):
        return np.frombuffer(data, "<i4").reshape(-1, *shape)

    monkeypatch.setitem(ENTROPY_MODELS, "grid", EntropyModel(lambda codec, q: ("grid-tables", q), encode, decode, (2,)))
    coder = LatentCoder(test_codec, 1, entropy="grid")
    q = _symbols(test_codec, (4, 4), 1)
    assert np.array_equal(coder.decompress(coder.compress(q), (4, 4)), q)
    assert calls == [("grid-tables", 1)]
    with pytest.raises(EntropyCodingError, match="unknown entropy model"):
        LatentCoder(test_codec, entropy="nope")
    assert bitstream.ENTROPY_MODELS is ENTROPY_MODELS


def test_coder_rejects_bad_symbols(test_codec):
    coder = LatentCoder(test_codec, 1)
    with pytest.raises(EntropyCodingError):
        coder.compress(np.zeros((test_codec.config.latent_channels + 1, 4), np.int32))
    with pytest.raises(EntropyCodingError):
        coder.compress(np.zeros((test_codec.config.latent_channels, 4), np.float32))
    with pytest.raises(EntropyCodingError):
        coder.compress(np.full((test_codec.config.latent_channels, 4), 1000, np.int64))


def _modules():
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), is_pkg, ast.parse(path.read_text())


def test_no_private_names_across_modules_and_no_import_cycle():
    mods = {name: (is_pkg, tree) for name, is_pkg, tree in _modules()}
    private, graph = [], {name: set() for name in mods}
    for name, (is_pkg, tree) in mods.items():
        package = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else (node.module or "")
            if not target.startswith("wavelatent"):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    private.append(f"{name}: from {target} import {alias.name}")
                dep = f"{target}.{alias.name}" if f"{target}.{alias.name}" in mods else target
                if dep in mods and dep not in (name, "wavelatent"):
                    graph[name].add(dep)
    assert not private
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, "import cycle: " + " -> ".join(path + [d])
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_entropy_and_container_import_no_torch():
    code = ("import sys, wavelatent.entropy.rans, wavelatent.entropy.context, wavelatent.container; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC.parent), "PATH": ""})
