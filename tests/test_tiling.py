"""Striped (tiled) encode/decode: the same latents, symbols and pixels as the whole-image path."""
from __future__ import annotations

import math

import pytest
import torch

import wavelatent as wl
from wavelatent import codec as codec_module
from wavelatent.codec import WaveletCodec
from wavelatent.config import CodecConfig
from wavelatent.errors import InputError
from wavelatent.models import create_codec

from .conftest import smooth_image


def _codec(preset: str) -> WaveletCodec:
    """A preset's architecture with every decoder weight perturbed: the zero-initialised head would
    otherwise hide the 3x3 convolutions (and so the decoder's halo) behind the 1x1 skip."""
    codec = create_codec(preset, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in codec.decoder.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return codec.eval()


@pytest.fixture(scope="module", params=["test-image", "image-rgb-16x"])
def codec(request) -> WaveletCodec:
    return _codec(request.param)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).square().mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


@pytest.mark.parametrize(
    ("size", "rows"),
    [
        ((67, 45), 1),  # every stripe's halo wraps around a short image
        ((67, 45), 3),  # height not divisible by the stripe
        ((130, 97), 4),
        ((5, 7), 1),  # tiny: one latent row, halos longer than the image
        ((1, 1), 2),
        ((40, 24), 100),  # one stripe larger than the image
    ],
)
def test_striped_equals_whole(codec: WaveletCodec, size: tuple[int, int], rows: int) -> None:
    x = torch.rand(2, codec.config.channels, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y, y_striped = codec.encode(x), codec.encode(x, stripe_rows=rows)
        q, q_striped = codec.quantize(y), codec.quantize(y_striped)
        y_hat = codec.dequantize(q)
        x_hat, x_striped = codec.decode(y_hat, size), codec.decode(y_hat, size, stripe_rows=rows)
    assert y_striped.shape == y.shape and (y_striped - y).abs().max().item() < 1e-5
    assert torch.equal(q_striped, q)  # the bitstream does not depend on the stripes
    assert x_striped.shape == x_hat.shape == x.shape
    assert (x_striped - x_hat).abs().max().item() < 1e-4
    assert _psnr(_uint8(x_striped), _uint8(x_hat)) >= 50


def test_striped_decode_without_crop_and_with_postprocess(codec: WaveletCodec) -> None:
    y_hat = torch.randn(1, codec.config.latent_channels, 9, 5, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        whole = codec.decode(y_hat)
        striped = codec.decode(y_hat, stripe_rows=2, postprocess=_uint8)
    assert striped.dtype == torch.uint8 and striped.shape == whole.shape
    assert _psnr(striped, _uint8(whole)) >= 50


def test_striped_encode_with_preprocess(codec: WaveletCodec) -> None:
    pixels = torch.from_numpy(smooth_image(50, 30, codec.config.channels, seed=3)).permute(2, 0, 1).unsqueeze(0)
    with torch.inference_mode():
        whole = codec.encode(pixels.float() / 255)
        striped = codec.encode(pixels, stripe_rows=2, preprocess=lambda t: t.float() / 255)
    assert torch.equal(codec.quantize(striped), codec.quantize(whole))


def test_compress_is_unchanged_by_automatic_stripes(monkeypatch, codec: WaveletCodec) -> None:
    img = smooth_image(75, 61, codec.config.channels, seed=4)
    data = wl.compress(img, codec)
    out = wl.decompress(data, codec)
    monkeypatch.setattr(codec_module, "STRIPE_MIN_PIXELS", 0)
    monkeypatch.setattr(codec_module, "STRIPE_PIXELS", 1)  # one latent row per stripe
    with torch.no_grad():
        assert codec._stripe_rows((1, 3, 75, 61), None) == 1
    assert wl.compress(img, codec) == data
    striped = wl.decompress(data, codec)
    assert striped.shape == out.shape
    assert _psnr(torch.from_numpy(striped), torch.from_numpy(out)) >= 50


def test_automatic_stripes_only_for_large_images_without_autograd(codec: WaveletCodec) -> None:
    b = codec.config.block
    big = (1, 3, 4000, 6000)
    with torch.no_grad():
        rows = codec._stripe_rows(big, None)
        assert rows is not None and 1 <= rows < math.ceil(4000 / b)
        assert rows * b * b * math.ceil(6000 / b) <= codec_module.STRIPE_PIXELS
        assert codec._stripe_rows((1, 3, 512, 768), None) is None
    assert codec._stripe_rows(big, None) is None  # autograd records: no stripes
    assert codec._stripe_rows((1, 3, 8, 8), 3) == 3


def test_decoder_radius_is_read_from_the_module() -> None:
    for preset in ("test-image", "test-gray", "image-rgb-16x"):
        codec = create_codec(preset, seed=0)
        kernel = codec.decoder.stem.kernel_size[0]  # 1 + 2 * blocks convolutions of this size in a row
        assert codec._decoder_radius() == (kernel // 2) * (1 + 2 * codec.config.decoder_blocks)


@pytest.mark.parametrize("rows", [0, -1, 1.5, True])
def test_bad_stripe_rows(codec: WaveletCodec, rows) -> None:
    x = torch.rand(1, codec.config.channels, 16, 16)
    with pytest.raises(InputError, match="stripe_rows"):
        codec.encode(x, stripe_rows=rows)
    with pytest.raises(InputError, match="stripe_rows"):
        codec.decode(codec.encode(x), stripe_rows=rows)


def test_stripes_are_for_images() -> None:
    config = CodecConfig(
        name="test-audio", modality="audio", channels=1, levels=2, latent_channels=2, sample_rate=16000
    )
    codec = WaveletCodec(config)
    x = torch.rand(1, 1, 64)
    assert codec.encode(x).shape == (1, 2, 16)
    with pytest.raises(InputError, match="stripes"):
        codec.encode(x, stripe_rows=1)
