"""Weights files: strict, pickle-free, config travels with them; presets resolve by name."""
from __future__ import annotations

import hashlib
import pickle

import pytest
import torch
from safetensors.torch import save

import wavelatent as wl
from wavelatent.errors import PresetError, WeightsError
from wavelatent.models import create_codec, load_codec
from wavelatent.registry import list_presets
from wavelatent.weights import FORMAT, FORMAT_VERSION, has_shipped_weights, load_weights, save_weights


def test_round_trip(tmp_path, test_codec, image):
    path = tmp_path / "w.safetensors"
    sha = save_weights(test_codec, path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_weights(path)
    assert loaded.config == test_codec.config
    assert loaded.weights_sha256 == sha
    for (k, a), (_, b) in zip(test_codec.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    # a file written with the codec decodes with the file's weights, by path
    assert (wl.decompress(wl.compress(image, test_codec), path) == wl.decompress(wl.compress(image, loaded), loaded)).all()


def _tamper(test_codec, tmp_path, change) -> str:
    tensors = {k: v.clone() for k, v in test_codec.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": test_codec.config.to_json()}
    change(tensors, meta)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(save(tensors, metadata=meta))
    return path


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda t, m: t.pop("encoder.bias"), "do not match"),
        (lambda t, m: t.__setitem__("extra.weight", torch.zeros(2)), "do not match"),
        (lambda t, m: t.__setitem__("encoder.bias", torch.zeros(7)), "do not match"),
        (lambda t, m: m.__setitem__("format", "other"), "not a wavelatent weights"),
        (lambda t, m: m.__setitem__("format_version", "99"), "not supported"),
        (lambda t, m: m.__setitem__("config", "{not json"), "not valid JSON"),
        (lambda t, m: m.__setitem__("config", '{"name": "x", "levels": 99}'), "levels"),
        (lambda t, m: m.__setitem__("config", '{"name": "x", "surprise": 1}'), "unknown fields"),
    ],
)
def test_strict_loading(tmp_path, test_codec, change, match):
    with pytest.raises(WeightsError, match=match):
        load_weights(_tamper(test_codec, tmp_path, change))


def test_pickle_is_refused(tmp_path, test_codec):
    """A pickle-bearing checkpoint (what torch.save writes) is never unpickled."""

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    for name in ("evil.safetensors", "evil.pth"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps({"state_dict": Boom()}))
        with pytest.raises(WeightsError):
            load_codec(path)
    torch.save(test_codec.state_dict(), tmp_path / "torch.pth")
    with pytest.raises(WeightsError):
        load_codec(tmp_path / "torch.pth")


def test_presets_resolve():
    with pytest.raises(PresetError, match="unknown preset|neither"):
        load_codec("no-such-preset")
    for name in list_presets():
        if not has_shipped_weights(name):
            with pytest.raises(PresetError, match="no shipped weights"):
                load_codec(name)
        else:
            assert load_codec(name).config.name == name


def test_create_codec_is_seeded():
    a, b = create_codec("test-image", seed=3), create_codec("test-image", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_serialize_is_reproducible_across_processes():
    """safetensors orders its header by a per-process hash map; serialize() sorts it, so the same
    codec gives the same bytes (and weights sha256) in every process, and any reader still loads it."""
    import subprocess
    import sys

    from safetensors.torch import load

    from wavelatent.weights import serialize

    codec = create_codec("test-image", seed=0)
    data = serialize(codec)
    assert data[8 : 8 + int.from_bytes(data[:8], "little")].decode().startswith('{"__metadata__":{"config"')
    loaded = load(data)
    assert all(torch.equal(loaded[k], v) for k, v in codec.state_dict().items())
    code = ("import hashlib; from wavelatent.models import create_codec; from wavelatent.weights import serialize; "
            "print(hashlib.sha256(serialize(create_codec('test-image', seed=0))).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == hashlib.sha256(data).hexdigest()
