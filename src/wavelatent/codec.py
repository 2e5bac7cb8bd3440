"""WaveletCodec: tensors in, latents and tensors out. Knows nothing of bytes or files.

Signal ``x [B, C, H, W]`` (images) or ``[B, C, L]`` (audio), values nominally in [0, 1]
(images) or [-1, 1] (audio):

    encode:    x -> pad -> wavelet packet analysis -> linear encoder -> soft bound -> y
    quantize:  y -> q = round(y / step)            (integer symbols, bounded)
    dequantize q -> y_hat = q * step
    decode:    y_hat -> conv decoder -> wavelet packet synthesis -> crop -> x_hat
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import CodecConfig
from .entropy.tables import quantize_pmf
from .errors import InputError
from .nn import BoundedQuantizer, ConvDecoder, LinearEncoder, LogisticMixturePrior
from .transforms import analysis_1d, analysis_2d, synthesis_1d, synthesis_2d


class WaveletCodec(nn.Module):
    """WaLLoC-style codec: near-free linear encoder, convolutional decoder, learned prior."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.spatial_dims
        self.encoder = LinearEncoder(config.packet_channels, config.latent_channels)
        self.quantizer = BoundedQuantizer(config.bound)
        self.decoder = ConvDecoder(
            config.latent_channels, config.packet_channels, config.decoder_width, config.decoder_blocks, dims=dims
        )
        self.prior = LogisticMixturePrior(config.latent_channels, config.prior_components)
        # Frozen integer CDF tables, one per quality: [latent_channels, 2 * max_symbol + 1].
        for quality in range(1, config.qualities + 1):
            n = 2 * config.max_symbol(quality) + 1
            self.register_buffer(f"tables_{quality}", torch.ones(config.latent_channels, n, dtype=torch.int32))
        self.weights_sha256: str | None = None  # set when loaded from / saved to a weights file

    # --- shapes -------------------------------------------------------------
    @property
    def signal_offset(self) -> float:
        """Images are centred by subtracting 0.5; audio is already centred."""
        return 0.5 if self.config.modality == "image" else 0.0

    def latent_size(self, size: Sequence[int]) -> tuple[int, ...]:
        """Spatial size of the latent for a signal of spatial ``size``."""
        b = self.config.block
        return tuple(math.ceil(s / b) for s in size)

    def _check_signal(self, x: Tensor) -> None:
        want = 2 + self.config.spatial_dims
        if x.dim() != want or x.shape[1] != self.config.channels:
            layout = "[B, C, H, W]" if want == 4 else "[B, C, L]"
            raise InputError(
                f"{self.config.name} expects a {layout} tensor with C={self.config.channels}, got shape {tuple(x.shape)}"
            )
        if any(s < 1 for s in x.shape[2:]) or x.shape[0] < 1:
            raise InputError(f"empty signal of shape {tuple(x.shape)}")

    # --- wavelets -----------------------------------------------------------
    def analysis(self, x: Tensor) -> Tensor:
        fn = analysis_2d if self.config.spatial_dims == 2 else analysis_1d
        return fn(x, self.config.levels)

    def synthesis(self, coeffs: Tensor) -> Tensor:
        fn = synthesis_2d if self.config.spatial_dims == 2 else synthesis_1d
        return fn(coeffs, self.config.levels)

    def pad(self, x: Tensor) -> Tensor:
        """Replicate-pad the spatial dims up to multiples of ``2**levels``."""
        b = self.config.block
        pads: list[int] = []
        for s in reversed(x.shape[2:]):
            pads += [0, (-s) % b]
        if not any(pads):
            return x
        return F.pad(x, pads, mode="replicate")

    # --- the codec ----------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Signal ``[B, C, *S]`` -> bounded latent ``y [B, latent_channels, *ceil(S / 2**levels)]``."""
        self._check_signal(x)
        coeffs = self.analysis(self.pad(x - self.signal_offset))
        return self.quantizer.squash(self.encoder(coeffs))

    def quantize(self, y: Tensor, quality: int | None = None) -> Tensor:
        """Latent -> integer symbols ``q`` (int32, same shape) in ``[-Q, Q]`` for this quality."""
        cfg = self.config
        return self.quantizer.quantize(y, cfg.step(quality), cfg.max_symbol(quality))

    def dequantize(self, q: Tensor, quality: int | None = None) -> Tensor:
        """Integer symbols -> ``y_hat`` (float32)."""
        return self.quantizer.dequantize(q, self.config.step(quality))

    def decode(self, y_hat: Tensor, size: Sequence[int] | None = None) -> Tensor:
        """Latent ``[B, latent_channels, *s]`` -> signal ``x_hat [B, C, *S]``, cropped to ``size`` if given.

        Not clamped: callers convert to their sample format.
        """
        if y_hat.dim() != 2 + self.config.spatial_dims or y_hat.shape[1] != self.config.latent_channels:
            raise InputError(
                f"{self.config.name} decodes latents with {self.config.latent_channels} channels, got {tuple(y_hat.shape)}"
            )
        x_hat = self.synthesis(self.decoder(y_hat)) + self.signal_offset
        if size is not None:
            full = x_hat.shape[2:]
            if len(size) != len(full) or any(s > f or s < 1 for s, f in zip(size, full)):
                raise InputError(f"cannot crop a decoded signal of size {tuple(full)} to {tuple(size)}")
            x_hat = x_hat[(..., *[slice(0, s) for s in size])]
        return x_hat

    def forward(self, x: Tensor, step: Tensor | float, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Training pass. ``x [B, C, *S]`` with sizes divisible by ``2**levels``; ``step`` a float or ``[B]``;
        ``noise`` optional ``U(-1/2, 1/2)`` samples shaped like the latent (for reproducible runs).

        Returns ``x_hat`` (decoder fed straight-through-rounded latents) and ``bits [B]``: the
        information content of the noisy latents under the prior, the rate the coder pays.
        """
        y = self.encode(x)
        if isinstance(step, Tensor):
            step = step.view(-1, *([1] * (y.dim() - 1))).to(y)
        if noise is None:
            noise = torch.rand_like(y) - 0.5
        bits = self.prior.bits(y + noise.to(y) * step, step)
        y_hat = self.quantizer.round_ste(y, step)
        x_hat = self.decode(y_hat)
        return x_hat, bits.flatten(1).sum(1)

    # --- entropy tables -----------------------------------------------------
    @torch.no_grad()
    def freeze(self) -> None:
        """Freeze the prior into integer tables for every quality (after training, before coding)."""
        cfg = self.config
        for quality in range(1, cfg.qualities + 1):
            pmf = self.prior.pmf(cfg.step(quality), cfg.max_symbol(quality)).cpu().numpy()
            freqs = quantize_pmf(pmf)
            getattr(self, f"tables_{quality}").copy_(torch.from_numpy(freqs.astype(np.int32)))
        self.weights_sha256 = None

    def tables(self, quality: int | None = None) -> np.ndarray:
        """Integer frequency table ``[latent_channels, 2Q + 1]`` (uint32) for a quality."""
        quality = self.config.check_quality(quality)
        return getattr(self, f"tables_{quality}").cpu().numpy().astype(np.uint32)

    def extra_repr(self) -> str:
        return f"preset={self.config.name!r}"
