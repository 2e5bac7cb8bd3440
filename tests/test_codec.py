"""Codec invariants, parametrized over every registered preset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import wavelatent as wl
from wavelatent.codec import WaveletCodec
from wavelatent.errors import InputError, UnsupportedInputError, WeightsMismatchError
from wavelatent.io import to_tensor
from wavelatent.models import create_codec
from wavelatent.registry import get_config, list_presets

from .conftest import smooth_image

PRESETS = list_presets()


@pytest.fixture(scope="module", params=PRESETS)
def codec(request) -> WaveletCodec:
    return create_codec(request.param, seed=0)


def test_encoder_is_small_and_linear(codec):
    cfg = codec.config
    n = sum(p.numel() for p in codec.encoder.parameters())
    assert n < 100_000
    assert n == cfg.packet_channels * cfg.latent_channels + cfg.latent_channels
    # linear before the soft bound: encode(a*x) - encode(0) scales (checked in the pre-bound domain)
    x = torch.rand(1, cfg.channels, *[16 * cfg.block] * cfg.spatial_dims, dtype=torch.float64)
    enc = codec.encoder.double()
    c1 = codec.analysis(x)
    assert torch.allclose(enc(2 * c1) - enc(0 * c1), 2 * (enc(c1) - enc(0 * c1)))
    codec.float()


def test_latent_shape_and_reduction(codec):
    cfg = codec.config
    x = torch.rand(2, cfg.channels, *(4 * cfg.block, 2 * cfg.block)[: cfg.spatial_dims])
    y = codec.encode(x)
    assert y.shape == (2, cfg.latent_channels, *(4, 2)[: cfg.spatial_dims])
    assert x.numel() / y.numel() == pytest.approx(cfg.reduction)
    assert y.abs().max() <= cfg.bound


def test_compress_equals_tensor_path(codec):
    cfg = codec.config
    if cfg.modality != "image":
        pytest.skip("audio files are coded in chunks: tests/test_audio.py")
    img = smooth_image(37, 45, cfg.channels, seed=1)
    for quality in range(1, cfg.qualities + 1):
        data = wl.compress(img, codec, quality)
        out = wl.decompress(data, codec)
        with torch.inference_mode():
            x = to_tensor(img)
            x_hat = codec.decode(codec.dequantize(codec.quantize(codec.encode(x), quality), quality), (37, 45))
        ref = x_hat.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
        out = out if out.ndim == 3 else out[:, :, None]
        np.testing.assert_array_equal(out, ref)


def test_quantize_range(codec):
    cfg = codec.config
    y = torch.linspace(-3 * cfg.bound, 3 * cfg.bound, 101).view(1, 1, -1).expand(1, cfg.latent_channels, -1)
    y = codec.quantizer.squash(y.reshape(1, cfg.latent_channels, *([1] * (cfg.spatial_dims - 1)), -1))
    for quality in range(1, cfg.qualities + 1):
        q = codec.quantize(y, quality)
        assert q.dtype == torch.int32
        assert q.abs().max() <= cfg.max_symbol(quality)
        assert codec.tables(quality).shape == (cfg.latent_channels, 2 * cfg.max_symbol(quality) + 1)
        assert (codec.tables(quality).sum(1) == 2**16).all()


@pytest.mark.parametrize("shape", [(1, 1), (1, 1000), (7, 9), (1000, 1), (513, 767)])
def test_odd_sizes(test_codec, shape):
    img = smooth_image(*shape, seed=2)
    data = wl.compress(img, test_codec)
    out = wl.decompress(data, test_codec)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_odd_size_large_preset():
    codec = create_codec("image-rgb-16x", seed=0)
    img = smooth_image(513, 767, seed=3)
    out = wl.decompress(wl.compress(img, codec), codec)
    assert out.shape == img.shape


def test_modes(test_codec):
    rgb = smooth_image(20, 30, 3)
    gray = rgb[:, :, 0]
    alpha = (np.arange(20 * 30) % 256).astype(np.uint8).reshape(20, 30)
    # grayscale through an RGB preset comes back grayscale
    out = wl.decompress(wl.compress(gray, test_codec), test_codec)
    assert out.shape == (20, 30)
    # alpha is kept losslessly, colour lossy
    rgba = np.dstack([rgb, alpha])
    out = wl.decompress(wl.compress(rgba, test_codec), test_codec)
    assert out.shape == (20, 30, 4)
    np.testing.assert_array_equal(out[:, :, 3], alpha)
    la = np.dstack([gray, alpha])
    out = wl.decompress(wl.compress(la, test_codec), test_codec)
    assert out.shape == (20, 30, 2)
    np.testing.assert_array_equal(out[:, :, 1], alpha)


def test_pil_inputs(test_codec):
    from PIL import Image

    rgb = smooth_image(20, 30, 3)
    img = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE)
    assert wl.decompress(wl.compress(img, test_codec), test_codec).shape == (20, 30, 3)
    with pytest.raises(InputError, match="1-channel"):  # 16-bit goes the multi-band way: needs a gray preset
        wl.compress(Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 200), test_codec)
    with pytest.raises(UnsupportedInputError, match="16-bit"):
        wl.compress(Image.fromarray(rgb[:, :, 0].astype(np.int32) * 200, mode="I"), test_codec)


def test_bad_arrays(test_codec):
    with pytest.raises(UnsupportedInputError):
        wl.compress(np.zeros((8, 8, 3), np.int16), test_codec)
    with pytest.raises(UnsupportedInputError):
        wl.compress(np.zeros((8, 8), np.float16), test_codec)
    with pytest.raises(InputError):
        wl.compress(np.zeros((8, 8, 5), np.uint8), test_codec)
    with pytest.raises(InputError):
        wl.compress(np.zeros((0, 8, 3), np.uint8), test_codec)
    with pytest.raises(InputError):
        wl.compress("not an image", test_codec)
    with pytest.raises(InputError, match="quality"):
        wl.compress(np.zeros((8, 8, 3), np.uint8), test_codec, quality=99)
    gray_codec = create_codec("test-gray")
    with pytest.raises(InputError, match="1-channel"):
        wl.compress(np.zeros((8, 8, 3), np.uint8), gray_codec)
    assert isinstance(InputError("x"), wl.WavelatentError)


def test_weights_mismatch(test_codec, image):
    other = create_codec("test-image", seed=1)
    data = wl.compress(image, test_codec)
    with pytest.raises(WeightsMismatchError):
        wl.decompress(data, other)


def test_real_bits_track_model_estimate():
    """Coded bits >= the tables' information content, and within 2% of it (plus container bytes),
    with the trained ``test-image`` preset on a photo, so that every quality codes real symbols."""
    from PIL import Image

    from wavelatent import container
    from wavelatent.demo import IMAGE_SAMPLE, sample_path
    from wavelatent.entropy.tables import ideal_bits

    codec = wl.load_codec("test-image")
    img = np.asarray(Image.open(sample_path(IMAGE_SAMPLE)).convert("RGB"))[128:384, 128:384]
    for quality in range(1, codec.config.qualities + 1):
        data = wl.compress(img, codec, quality, entropy="none")  # the per-channel tables the estimate uses
        latent = container.unpack(data).streams["latent"]
        grid_latent = container.unpack(wl.compress(img, codec, quality)).streams["latent"]
        with torch.inference_mode():
            q = codec.quantize(codec.encode(to_tensor(img)), quality)
        assert torch.count_nonzero(q).item() >= 0.05 * q.numel(), f"q{quality}: too few nonzero symbols to test rate"
        idx = q[0].flatten(1).numpy() + codec.config.max_symbol(quality)
        est = ideal_bits(idx, codec.tables(quality))
        real = 8 * len(latent)
        assert est <= real <= 1.02 * est + 64
        assert len(grid_latent) < 0.9 * len(latent)  # the shipped context model codes them in fewer bytes
        # and the trained-rate model agrees with the integer tables (same prior)
        with torch.inference_mode():
            model_bits = codec.prior.bits(codec.dequantize(q, quality), codec.config.step(quality))
        assert abs(model_bits.sum().item() - est) <= 0.02 * est + 64


def test_configs_round_trip():
    for name in PRESETS:
        cfg = get_config(name)
        assert type(cfg).from_json(cfg.to_json()) == cfg


def test_folded_encoder_matches_the_float_path(codec):
    """At inference an image encoder folds the -0.5 offset and uint8's 1/255 into its weights and
    transforms uint8 pixels without a conversion pass (all bands here: the full transform); the latent
    is the float path's up to rounding."""
    cfg = codec.config
    if cfg.modality != "image":
        pytest.skip("images only")
    g = torch.Generator().manual_seed(3)
    pixels = torch.randint(0, 256, (2, cfg.channels, 3 * cfg.block, 5 * cfg.block), generator=g, dtype=torch.uint8)
    with torch.inference_mode():
        assert codec._inference_weight()[1] is False  # nonzero detail weights
        x = pixels.to(torch.float32) / 255.0
        reference = codec.quantizer.squash(codec.encoder(codec.analysis(codec.pad(x - codec.signal_offset))))
        torch.testing.assert_close(codec.encode(pixels), reference, atol=1e-5, rtol=0)
        torch.testing.assert_close(codec.encode(x), reference, atol=1e-5, rtol=0)


def test_pruned_encoder_computes_only_the_approximation_subtree(codec):
    import copy

    from wavelatent.train import prune_details

    cfg = codec.config
    if cfg.modality != "image":
        pytest.skip("images only")
    assert codec._inference_weight()[1] is False or not torch.is_grad_enabled()
    with torch.inference_mode():
        assert codec._inference_weight()[1] is False  # nonzero detail weights: the full transform
    pruned = copy.deepcopy(codec).eval()
    assert 0 < prune_details(pruned) <= 1
    x = torch.rand(2, cfg.channels, 3 * cfg.block, 5 * cfg.block, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert pruned._inference_weight()[1]
        fast = pruned.encode(x)
        coeffs = pruned.analysis(pruned.pad(x - pruned.signal_offset))
        full = pruned.quantizer.squash(pruned.encoder(coeffs))
        torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)
        striped = pruned.encode(x, stripe_rows=1)
        torch.testing.assert_close(striped, full, atol=1e-5, rtol=0)
    # training the encoder takes the full path (its gradient reaches every weight)
    with torch.enable_grad():
        assert pruned._inference_weight()[0] is None
        frozen = copy.deepcopy(pruned).requires_grad_(False)  # a frozen codec still passes gradients to x
        assert frozen._inference_weight()[1]
        xg = x.clone().requires_grad_(True)
        frozen.encode(xg).square().sum().backward()
        assert xg.grad is not None and xg.grad.abs().sum() > 0
