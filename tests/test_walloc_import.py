"""Importing WaLLoC checkpoints (``wavelatent import-walloc``).

Always on: synthetic walloc-format state dicts written from our own modules (key mapping, weight
norm, strict loading, pickle refusal, the CLI, coding with the result). With the ``walloc`` package
importable (a separate venv: ``pip install walloc einops diffusers pytorch-wavelets``): randomly
initialised ``Codec2D`` / ``Codec1D`` models, saved the way walloc's README loads them, must give
the same integer latents and the same decoded signals (within 1e-4) after the import.
"""
from __future__ import annotations

import argparse
import json
import types
import warnings

import numpy as np
import pytest
import torch

from wavelatent.codec import WaveletCodec
from wavelatent.errors import InputError, WeightsError
from wavelatent.nn.walloc import _bior44_buffers, parse_walloc_config
from wavelatent.walloc_import import codec_config, import_walloc
from wavelatent.weights import load_weights, save_weights

CONFIG_2D = {"channels": 3, "J": 2, "Ne": None, "Nd": 32, "latent_dim": 6, "latent_bits": 8,
             "lightweight_encode": True, "epochs": 10}
CONFIG_1D = {"channels": 2, "J": 2, "Ne": None, "Nd": 8, "latent_dim": 4, "latent_bits": 8,
             "lightweight_encode": True, "post_filter": True}


def _ours(walloc_config: dict, architecture: str, seed: int = 0) -> WaveletCodec:
    """One of our walloc-architecture codecs with random weights (norms and Snakes perturbed too)."""
    text = json.dumps(walloc_config, sort_keys=True, separators=(",", ":"))
    spec = parse_walloc_config(text, architecture)
    torch.manual_seed(seed)
    codec = WaveletCodec(codec_config(spec, text, name="synthetic", sample_rate=8000))
    with torch.no_grad():
        for name, p in codec.named_parameters():
            if name.startswith("decoder.") and p.dim() == 1 or name.endswith(("alpha", "beta")):
                p.add_(0.2 * torch.randn_like(p))
        codec.encoder.weight.mul_(20)
    return codec.eval()


def _walloc_state(codec: WaveletCodec) -> dict[str, torch.Tensor]:
    """The state dict walloc would save for ``codec``'s weights (its key names, conv shapes, weight norm)."""
    dims = codec.config.spatial_dims
    k, p = codec.encoder.weight.shape
    scale = 1.0 if dims == 2 else 2.0  # walloc's audio is at half our amplitude
    state = dict(_bior44_buffers(dims))
    state["encoder.0.weight"] = (codec.encoder.weight * scale).reshape(k, p, *(1,) * dims).clone()
    state["encoder.0.bias"] = codec.encoder.bias.clone()
    for name, t in codec.decoder.state_dict().items():
        if name == "edge":
            continue
        if name.startswith("post."):
            state[name] = t.clone()
        elif dims == 1 and name.endswith(".weight") and t.dim() == 3 and not name.startswith("post."):
            # torch.nn.utils.weight_norm(dim=0): weight = g * v / ||v||, norm over all dims but 0
            v = t.clone()
            state[f"decoder.1.{name}_v"] = v
            state[f"decoder.1.{name}_g"] = v.flatten(1).norm(dim=1).view(-1, 1, 1)
        else:
            state[f"decoder.1.{name}"] = t.clone()
    return state


def _write(tmp_path, state, config, stem="m"):
    model, cfg = tmp_path / f"{stem}.pth", tmp_path / f"{stem}.json"
    torch.save({"model_state_dict": state, "epoch": 3}, model)
    cfg.write_text(json.dumps(config))
    return model, cfg


@pytest.mark.parametrize("config, architecture", [(CONFIG_2D, "walloc2d"), (CONFIG_1D, "walloc1d")])
def test_synthetic_import_reproduces_the_modules(tmp_path, config, architecture):
    ours = _ours(config, architecture)
    model, cfg = _write(tmp_path, _walloc_state(ours), config)
    codec, report = import_walloc(model, cfg, sample_rate=8000)
    assert report["architecture"] == architecture and codec.config.architecture == architecture
    assert codec.config.name == "walloc-m" and json.loads(codec.config.walloc_config) == config
    mine, theirs = ours.state_dict(), codec.state_dict()
    for key in mine:
        if key.startswith(("encoder.", "decoder.")) and key != "decoder.edge":
            assert torch.allclose(mine[key], theirs[key], atol=1e-6), key
    shape = (2, config["channels"], 16, 24) if architecture == "walloc2d" else (2, config["channels"], 64)
    x = torch.rand(shape) if architecture == "walloc2d" else torch.rand(shape) * 2 - 1
    with torch.no_grad():
        y = codec.encode(x)
        assert torch.allclose(y, ours.encode(x), atol=1e-5)
        q = codec.quantize(y)
        assert q.abs().max() <= 2 ** (config["latent_bits"] - 1) - 1 and q.unique().numel() > 10
        if architecture == "walloc1d":  # the edge frames: walloc's encoder bias, companded and rounded
            from wavelatent.nn.walloc import compand

            assert torch.equal(codec.decoder.edge, torch.round(compand(codec.encoder.bias, 8)))
            ours.decoder.edge.copy_(codec.decoder.edge)
        x_hat = codec.decode(codec.dequantize(q), size=shape[2:])
        assert x_hat.shape == x.shape and torch.isfinite(x_hat).all()
        assert torch.allclose(x_hat, ours.decode(ours.dequantize(q), size=shape[2:]), atol=1e-5)
    # the weights file round-trips (strict load) and needs nothing but the file
    path = tmp_path / "imported.safetensors"
    save_weights(codec, path)
    again = load_weights(path)
    assert again.config == codec.config
    with torch.no_grad():
        assert torch.equal(again.decode(again.dequantize(q)), codec.decode(codec.dequantize(q)))


def test_prior_is_wide_and_tables_cover_the_symbol_range(tmp_path):
    model, cfg = _write(tmp_path, _walloc_state(_ours(CONFIG_2D, "walloc2d")), CONFIG_2D)
    codec, _ = import_walloc(model, cfg)
    tables = codec.tables()
    assert tables.shape == (6, 255) and (tables > 0).all()
    assert codec.config.qualities == 1 and codec.config.step(None) == 1.0


def test_refuses_pickles_and_malformed_checkpoints(tmp_path):
    state = _walloc_state(_ours(CONFIG_2D, "walloc2d"))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(CONFIG_2D))
    pickled = tmp_path / "pickled.pth"
    torch.save({"model_state_dict": state, "args": types.SimpleNamespace(J=2)}, pickled)
    with pytest.raises(WeightsError, match="refusing to unpickle"):
        import_walloc(pickled, cfg)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError):
        import_walloc(garbage, cfg)
    with pytest.raises(WeightsError, match="no such file"):
        import_walloc(tmp_path / "missing.pth", cfg)

    def attempt(change, match):
        bad = dict(state)
        change(bad)
        model, _ = _write(tmp_path, bad, CONFIG_2D, stem="bad")
        with pytest.raises(WeightsError, match=match):
            import_walloc(model, cfg)

    attempt(lambda s: s.update({"decoder.1.extra.weight": torch.zeros(3)}), "lacks|unexpected")
    attempt(lambda s: s.pop("decoder.1.conv_out.bias"), "lacks")
    attempt(lambda s: s.update({"decoder.1.conv_out.bias": torch.zeros(5)}), "does not fit")
    attempt(lambda s: s.update({"wt.h0_col": s["wt.h0_col"] * 2}), "bior4.4")
    attempt(lambda s: s.pop("encoder.0.weight"), "encoder")


def test_refuses_configs_that_do_not_fit(tmp_path):
    state = _walloc_state(_ours(CONFIG_2D, "walloc2d"))
    for change, match in [({"lightweight_encode": False}, "lightweight_encode"), ({"Nd": 64}, "does not fit"),
                          ({"latent_dim": 7}, "does not fit"), ({"J": "3"}, "J must be"),
                          ({"Nd": 40}, "multiple of 32")]:
        model, cfg = _write(tmp_path, state, {**CONFIG_2D, **change}, stem="x")
        with pytest.raises(WeightsError, match=match):
            import_walloc(model, cfg)
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(WeightsError, match="JSON object"):
        import_walloc(model, tmp_path / "x.json")


def test_config_defaults_keep_existing_presets_unchanged():
    from wavelatent.config import CodecConfig
    from wavelatent.registry import get_config

    d = get_config("test-image").to_dict()
    assert "architecture" not in d and "walloc_config" not in d
    with pytest.raises(WeightsError, match="walloc_config"):
        CodecConfig(name="x", architecture="walloc2d")
    with pytest.raises(WeightsError, match="architecture"):
        CodecConfig(name="x", architecture="nope")


def test_cli_import_then_compress_and_decompress(tmp_path, image):
    import wavelatent
    from PIL import Image

    from wavelatent.cli.walloc import add_parsers

    model, cfg = _write(tmp_path, _walloc_state(_ours(CONFIG_2D, "walloc2d")), CONFIG_2D, stem="rgb")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(image, 7 * i, axis=1)).save(folder / f"{i}.png")
    parser = argparse.ArgumentParser()
    handlers = add_parsers(parser.add_subparsers(dest="command"))
    out = tmp_path / "rgb.safetensors"
    args = ["import-walloc", str(model), str(cfg), "-o", str(out), "--fit-prior", str(folder)]
    assert handlers["import-walloc"](parser.parse_args(args)) == 0
    with pytest.raises(InputError, match="exists"):
        handlers["import-walloc"](parser.parse_args(args))
    with pytest.raises(InputError, match="sample-rate"):
        handlers["import-walloc"](parser.parse_args(args[:5] + ["--force", "--sample-rate", "8000"]))
    data = wavelatent.compress(image, preset=out)
    restored = wavelatent.decompress(data, out)
    assert restored.shape == image.shape and restored.dtype == np.uint8
    codec = load_weights(out)
    with pytest.raises(InputError, match="stripes"):
        codec.encode(torch.rand(1, 3, 16, 16), stripe_rows=1)


def test_fitted_prior_costs_fewer_bits(tmp_path, image):
    from PIL import Image

    model, cfg = _write(tmp_path, _walloc_state(_ours(CONFIG_2D, "walloc2d")), CONFIG_2D)
    Image.fromarray(image).save(tmp_path / "a.png")
    _, report = import_walloc(model, cfg, fit_dir=tmp_path / "a.png")
    assert report["bits_fitted_prior"] < report["bits_wide_prior"]


def test_1d_decoder_reach_fits_the_audio_geometry(tmp_path):
    """Chunked audio decoding needs every decoded position to depend only on latents within
    ``geometry(codec).decoder`` positions (the post-filter runs inside the decoder)."""
    from wavelatent.audio import geometry

    model, cfg = _write(tmp_path, _walloc_state(_ours(CONFIG_1D, "walloc1d")), CONFIG_1D)
    codec, _ = import_walloc(model, cfg, sample_rate=8000)
    n, centre = 400, 200
    q = torch.randint(-20, 21, (1, 4, n), generator=torch.Generator().manual_seed(0))
    moved = q.clone()
    moved[..., centre] += 30
    with torch.no_grad():
        diff = (codec.decoder(codec.dequantize(q)) - codec.decoder(codec.dequantize(moved))).abs().amax(1)[0]
    reach = (diff > 0).nonzero().flatten()
    radius = geometry(codec).decoder
    assert int(reach.min()) >= centre - radius and int(reach.max()) <= centre + radius


def test_1d_import_codes_audio_files(tmp_path):
    """Audio files code and decode; chunk seams are exact. Only the first and last post-filter
    spans (walloc's periodic wavelet boundary wraps a window's far end around) depend on the chunking."""
    from wavelatent.audio import compress_audio, decompress_audio

    model, cfg = _write(tmp_path, _walloc_state(_ours(CONFIG_1D, "walloc1d")), CONFIG_1D)
    codec, _ = import_walloc(model, cfg, sample_rate=8000)
    path = tmp_path / "stereo.safetensors"
    save_weights(codec, path)
    x = (0.3 * np.sin(np.arange(3000)[:, None] * [0.05, 0.07])).astype(np.float32)
    data = compress_audio(x, 8000, path)
    whole, rate = decompress_audio(data, path)
    chunked, _ = decompress_audio(data, path, chunk_frames=256)
    assert rate == 8000 and whole.shape == x.shape
    edge = 200  # > 64 post-filter taps + the wavelet halos, in samples
    assert np.abs(whole - chunked)[edge:-edge].max() < 1e-4


# --------------------------------------------------------------------------- against the walloc package
def _walloc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("walloc.walloc")


def _perturb(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("alpha", "beta")) or "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
        model.encoder[0].weight.mul_(40)  # latents over a wide range of integers


def _check_rounding(ours_q: torch.Tensor, z: torch.Tensor, z_hat: torch.Tensor) -> None:
    """Identical integers, except where walloc's own value is within float rounding of a half-integer."""
    differ = ours_q.float() != z_hat
    assert not (differ & ((z - z.floor() - 0.5).abs() > 1e-4)).any()
    assert differ.sum() <= max(1, z.numel() // 10_000)


def test_walloc2d_matches_the_walloc_package(tmp_path):
    walloc = _walloc()
    torch.manual_seed(0)
    config = {"channels": 3, "J": 3, "Ne": None, "Nd": 32, "latent_dim": 12, "latent_bits": 8,
              "lightweight_encode": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = walloc.Codec2D(**config).eval()
    _perturb(model)
    path, cfg = tmp_path / "RGB_16x.pth", tmp_path / "RGB_16x.json"
    torch.save({"model_state_dict": model.state_dict()}, path)
    walloc.save_config(types.SimpleNamespace(**config), cfg)
    codec, _ = import_walloc(path, cfg)
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        z = model.encoder[0:2](model.wavelet_analysis(x - 0.5, J=3))
        z_hat = model.encoder[2](z)
        x_walloc = model.wavelet_synthesis(model.decoder(z_hat), J=3) + 0.5
        y = codec.encode(x)
        x_ours = codec.decode(codec.dequantize(z_hat.to(torch.int32)))
    assert (y - z).abs().max() < 1e-3
    _check_rounding(codec.quantize(y), z, z_hat)
    assert (x_ours - x_walloc).abs().max() < 1e-4


@pytest.mark.parametrize("post_filter", [True, False])
def test_walloc1d_matches_the_walloc_package(tmp_path, post_filter):
    walloc = _walloc()
    torch.manual_seed(1)
    config = {"channels": 2, "J": 3, "Ne": None, "Nd": 24, "latent_dim": 8, "latent_bits": 8,
              "lightweight_encode": True, "post_filter": post_filter}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = walloc.Codec1D(**config).eval()
    _perturb(model)
    path, cfg = tmp_path / "stereo.pth", tmp_path / "stereo.json"
    torch.save({"model_state_dict": model.state_dict()}, path)
    walloc.save_config(types.SimpleNamespace(**config), cfg)
    codec, _ = import_walloc(path, cfg)
    x = torch.rand(2, 2, 1024) - 0.5  # walloc's amplitude: peak 0.5
    with torch.no_grad():
        z = model.encoder[0:2](model.wavelet_analysis(x, J=3))
        z_hat = model.encoder[2](z)  # two more frames than the signal has positions
        x_walloc = model.wavelet_synthesis(model.decoder(z_hat), J=3)
        if post_filter:
            x_walloc = model.post(x_walloc)
        y = codec.encode(2 * x)
        x_ours = codec.decode(codec.dequantize(z_hat[..., 1:-1].to(torch.int32))) / 2
    assert torch.equal(z_hat[..., 0], codec.decoder.edge.expand(2, -1))
    assert torch.equal(z_hat[..., -1], codec.decoder.edge.expand(2, -1))
    assert (y - z[..., 1:-1]).abs().max() < 1e-3
    _check_rounding(codec.quantize(y), z[..., 1:-1], z_hat[..., 1:-1])
    assert (x_ours - x_walloc).abs().max() < 1e-4
