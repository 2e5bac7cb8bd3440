"""WaveletCodec: tensors in, latents and tensors out. Knows nothing of bytes or files.

Signal ``x [B, C, H, W]`` (images) or ``[B, C, L]`` (audio), values nominally in [0, 1]
(images) or [-1, 1] (audio):

    encode:    x -> pad -> wavelet packet analysis -> linear encoder -> soft bound -> y
    quantize:  y -> q = round(y / step)            (integer symbols, bounded)
    dequantize q -> y_hat = q * step
    decode:    y_hat -> conv decoder -> wavelet packet synthesis -> crop -> x_hat

Large images are encoded and decoded in horizontal stripes of latent rows (bounded memory, same
result): each stripe takes the halo of rows its outputs depend on (cyclically for the periodized
wavelet transforms, clipped to the image for the zero-padded decoder) and keeps its centre.
"""
from __future__ import annotations

import math
import weakref
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import noise_fill
from .config import CodecConfig
from .entropy import grid
from .entropy.context import CONTEXTS, LEVELS, THRESHOLDS, ContextTables
from .entropy.tables import quantize_pmf
from .errors import InputError
from .nn import BoundedQuantizer, ConvDecoder, LinearEncoder, LogisticMixturePrior
from .transforms import analysis_1d, analysis_2d, analysis_2d_approximation, synthesis_1d, synthesis_2d
from .transforms.wavelets import analysis_halo, synthesis_halo

# codec -> {(quality, version): (buffer fingerprint, GridTables)}: outside the module, so codecs still pickle
_GRID_TABLES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def grid_tables_buffer(version: int, quality: int) -> str:
    """The buffer holding a quality's tables of grid model ``version`` (``grid_tables_q``, ``grid2_tables_q``)."""
    return f"grid{version if version > 1 else ''}_tables_{quality}"

# Without autograd, images of more than STRIPE_MIN_PIXELS pixels (the whole batch) are encoded and
# decoded in stripes of about STRIPE_PIXELS pixels each.
STRIPE_MIN_PIXELS = 1 << 22
STRIPE_PIXELS = 1 << 22


class WaveletCodec(nn.Module):
    """WaLLoC-style codec: near-free linear encoder, convolutional decoder, learned prior."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.spatial_dims
        self.encoder = LinearEncoder(config.packet_channels, config.latent_channels)
        self.quantizer = BoundedQuantizer(config.bound)
        self.decoder = ConvDecoder(
            config.latent_channels, config.packet_channels, config.decoder_width, config.decoder_blocks, dims=dims,
            kernel=config.decoder_kernel,
        )
        if config.architecture != "wavelatent":  # imported WaLLoC checkpoints (nn/walloc.py)
            from .nn.walloc import walloc_modules

            self.encoder, self.quantizer, self.decoder = walloc_modules(config)
        self.prior = LogisticMixturePrior(config.latent_channels, config.prior_components)
        # Frozen integer CDF tables, one per quality: [latent_channels, 2 * max_symbol + 1].
        for quality in range(1, config.qualities + 1):
            n = 2 * config.max_symbol(quality) + 1
            self.register_buffer(f"tables_{quality}", torch.ones(config.latent_channels, n, dtype=torch.int32))
            if "checkerboard" in (config.context, config.legacy_context):  # kept from v2 weights, for their files (entropy/context.py)
                C = config.latent_channels
                self.register_buffer(f"context_thresholds_{quality}", torch.zeros(C, 4, THRESHOLDS, dtype=torch.int32))
                self.register_buffer(f"context_lut_{quality}", torch.zeros(C, LEVELS**3, dtype=torch.uint8))
                # frequencies minus one (they lie in 1..2**16): uint16 halves the shipped file
                self.register_buffer(f"context_tables_{quality}", torch.zeros(C, CONTEXTS, n, dtype=torch.uint16))
            if config.grid_version:  # fitted by wavelatent.train.grid (entropy/grid.py)
                C, dims = config.latent_channels, config.spatial_dims
                P = len(grid.passes(dims))
                self.register_buffer(f"grid_mu_{quality}", torch.zeros(P, C, grid.mu_features_count(dims, C), dtype=torch.int32))
                self.register_buffer(
                    f"grid_sigma_{quality}", torch.zeros(P, C, grid.sigma_features_count(dims, C), dtype=torch.int32)
                )
                for version in range(1, config.grid_version + 1):  # a version 2 codec keeps version 1's tables too
                    self.register_buffer(grid_tables_buffer(version, quality),
                                         torch.ones(grid.table_rows(version), 2 * n - 1, dtype=torch.int32))
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
    def encode(
        self,
        x: Tensor,
        *,
        stripe_rows: int | None = None,
        preprocess: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Signal ``[B, C, *S]`` -> bounded latent ``y [B, latent_channels, *ceil(S / 2**levels)]``.

        Images are float in [0, 1] or uint8 (read as ``x / 255``, converted one stripe at a time).

        ``stripe_rows``: images are encoded in stripes of this many latent rows (same result,
        bounded memory); None stripes large images when no gradient is recorded.
        ``preprocess``: applied to each stripe of ``x`` (or to ``x``) first, e.g. to convert a
        uint8 image to float one stripe at a time.
        """
        self._check_signal(x)
        rows = self._stripe_rows(x.shape, stripe_rows)
        if rows is None:
            if preprocess is not None:
                x = preprocess(x)
            return self._encode(x)
        return self._encode_striped(x, rows, preprocess)

    def _encode(self, x: Tensor) -> Tensor:
        weight, approximation = self._inference_weight()
        if weight is not None:
            # linear up to the bias: a constant offset only reaches band 0 of each channel (DC gain 2**J),
            # and uint8's 1/255 can scale the small weight matrix; no extra pass over the image for either
            n = weight.shape[1] // self.config.channels
            offset = self.signal_offset * 2**self.config.levels * weight[:, ::n].sum(1)
            if x.dtype == torch.uint8:
                weight = weight / 255.0
            # an encoder that reads no level-1 detail band: skip computing them
            analysis = analysis_2d_approximation if approximation else analysis_2d
            y = self.encoder(analysis(self.pad(x), self.config.levels), weight)
            if torch.is_grad_enabled():
                return self.quantizer.squash(y - offset.view(1, -1, 1, 1))
            return self.quantizer.squash_(y.sub_(offset.view(1, -1, 1, 1)))
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).div_(255.0)
        return self.quantizer.squash(self.encoder(self.analysis(self.pad(x - self.signal_offset))))

    def _inference_weight(self) -> tuple[Tensor | None, bool]:
        """For images (not while training the encoder): the encoder weights the folded path uses and
        whether they read only the bands below the level-1 approximation (``[K, C * 4**(J-1)]``, every
        other weight exactly zero) or all of them (``[K, C * 4**J]``); else ``(None, False)``."""
        cfg = self.config
        if cfg.architecture != "wavelatent" or cfg.spatial_dims != 2 or cfg.levels < 1:
            return None, False  # WaLLoC's imported modules keep their own encoder
        weight = self.encoder.weight
        if weight.requires_grad and torch.is_grad_enabled():
            return None, False
        per_band = weight.view(weight.shape[0], cfg.channels, 4, 4 ** (cfg.levels - 1))
        if torch.count_nonzero(per_band[:, :, 1:]):
            return weight.detach(), False  # no gradient reaches it here (a Parameter argument would ask for one)
        return per_band[:, :, 0].reshape(weight.shape[0], -1), True

    def quantize(self, y: Tensor, quality: int | None = None) -> Tensor:
        """Latent -> integer symbols ``q`` (int32, same shape) in ``[-Q, Q]`` for this quality."""
        cfg = self.config
        return self.quantizer.quantize(y, cfg.step(quality), cfg.max_symbol(quality))

    def dequantize(self, q: Tensor, quality: int | None = None) -> Tensor:
        """Integer symbols -> ``y_hat`` (float32)."""
        return self.quantizer.dequantize(q, self.config.step(quality))

    def noise_std(self, quality: int | None = None) -> np.ndarray:
        """Noise-filling std per latent channel ``[K]`` (float64) of a quality, from its integer table
        (:func:`wavelatent.noise_fill.zero_bin_std`)."""
        quality = self.config.check_quality(quality)
        return noise_fill.zero_bin_std(self.tables(quality), self.config.step(quality))

    def dequantize_filled(self, q: Tensor, quality: int | None = None, *, seed: int, start: int = 0,
                          std: np.ndarray | None = None) -> Tensor:
        """Symbols ``q [B, K, n]`` -> ``y_hat`` (float32) with the zeros replaced by deterministic noise
        (:mod:`wavelatent.noise_fill`): row ``b * K + k``, positions ``start .. start + n - 1``.
        ``std``: :meth:`noise_std` of the quality, when the caller holds it (decoding block by block)."""
        if q.dim() != 3:
            raise InputError(f"noise filling takes 1-D latents [B, K, n], got {tuple(q.shape)}")
        y_hat = self.dequantize(q, quality)
        B, K, n = q.shape
        std = torch.from_numpy(self.noise_std(quality) if std is None else std).view(1, K, 1)
        u = torch.from_numpy(noise_fill.uniform(seed, B * K, start, n)).view(B, K, n)
        noise = (u * (math.sqrt(12.0) * std)).to(y_hat.dtype).to(y_hat.device)
        return torch.where(q == 0, noise, y_hat)

    def decode(
        self,
        y_hat: Tensor,
        size: Sequence[int] | None = None,
        *,
        stripe_rows: int | None = None,
        postprocess: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Latent ``[B, latent_channels, *s]`` -> signal ``x_hat [B, C, *S]``, cropped to ``size`` if given.

        Not clamped: callers convert to their sample format, with ``postprocess`` if they like, which
        is applied to each decoded stripe (or to the whole output). ``stripe_rows`` as in :meth:`encode`.
        """
        if y_hat.dim() != 2 + self.config.spatial_dims or y_hat.shape[1] != self.config.latent_channels:
            raise InputError(
                f"{self.config.name} decodes latents with {self.config.latent_channels} channels, got {tuple(y_hat.shape)}"
            )
        full = tuple(n * self.config.block for n in y_hat.shape[2:])
        if size is not None:
            size = tuple(size)
            if len(size) != len(full) or any(s > f or s < 1 for s, f in zip(size, full)):
                raise InputError(f"cannot crop a decoded signal of size {full} to {size}")
        signal_shape = (y_hat.shape[0], self.config.channels, *(size or full))
        rows = self._stripe_rows(signal_shape, stripe_rows)
        if rows is not None:
            return self._decode_striped(y_hat, signal_shape[2:], rows, postprocess)
        x_hat = self.synthesis(self.decoder(y_hat)) + self.signal_offset
        if size is not None:
            x_hat = x_hat[(..., *[slice(0, s) for s in size])]
        return x_hat if postprocess is None else postprocess(x_hat)

    # --- stripes --------------------------------------------------------------
    def _stripe_rows(self, shape: Sequence[int], stripe_rows: int | None) -> int | None:
        """Latent rows per stripe for a signal of ``shape [B, C, H, W]``, or None to process it whole."""
        if self.config.architecture == "walloc2d":  # global attention and GroupNorm: whole images only
            if stripe_rows is not None:
                raise InputError(f"{self.config.name} (WaLLoC's decoder attends over the whole image) has no stripes")
            return None
        if stripe_rows is not None:
            if isinstance(stripe_rows, bool) or not isinstance(stripe_rows, int) or stripe_rows < 1:
                raise InputError(f"stripe_rows must be a positive int, got {stripe_rows!r}")
            if self.config.spatial_dims != 2:
                raise InputError(f"{self.config.name} codes {self.config.modality}; stripes are for images")
            return stripe_rows
        if self.config.spatial_dims != 2 or torch.is_grad_enabled():
            return None
        batch, _, height, width = shape
        if batch * height * width <= STRIPE_MIN_PIXELS:
            return None
        b = self.config.block
        rows = max(1, STRIPE_PIXELS // (batch * b * b * math.ceil(width / b)))
        return rows if rows < math.ceil(height / b) else None

    def _encode_striped(self, x: Tensor, rows: int, preprocess: Callable[[Tensor], Tensor] | None) -> Tensor:
        """:meth:`encode` of ``x [B, C, H, W]``, ``rows`` latent rows at a time.

        Each stripe of latent rows ``[a, b)`` analyses the padded image rows of latent rows
        ``[a - before, b + after)`` (indices modulo the padded height: the transform is periodized;
        padded rows repeat the last one) and keeps the centre.
        """
        b = self.config.block
        height = x.shape[2]
        latent_height = math.ceil(height / b)
        before, after = analysis_halo(self.config.levels)
        y: Tensor | None = None
        for top in range(0, latent_height, rows):
            bottom = min(latent_height, top + rows)
            index = torch.arange(b * (top - before), b * (bottom + after), device=x.device)
            stripe = x.index_select(2, (index % (latent_height * b)).clamp_(max=height - 1))
            if preprocess is not None:
                stripe = preprocess(stripe)
            part = self._encode(stripe)[:, :, before : before + bottom - top]
            if y is None:
                y = part.new_empty(*part.shape[:2], latent_height, part.shape[3])
            y[:, :, top:bottom] = part
        assert y is not None
        return y

    def _decode_striped(
        self, y_hat: Tensor, size: Sequence[int], rows: int, postprocess: Callable[[Tensor], Tensor] | None
    ) -> Tensor:
        """:meth:`decode` of ``y_hat [B, K, h, w]`` to ``size (H, W)``, ``rows`` latent rows at a time.

        Output rows of latent rows ``[a, b)`` are synthesized from decoder outputs at latent rows
        ``[a - before, b + after)`` (modulo ``h``), each computed on a window clipped to ``[0, h)``
        with the decoder's receptive field around it, so zero padding at the image edges is kept.
        """
        b = self.config.block
        height, width = size
        before, after = synthesis_halo(self.config.levels)
        radius = self._decoder_radius()
        x_hat: Tensor | None = None
        for top in range(0, math.ceil(height / b), rows):
            bottom = min(y_hat.shape[2], top + rows)
            coeffs = self._decoder_rows(y_hat, top - before, bottom + after, radius)
            part = self.synthesis(coeffs)[:, :, b * before : b * before + min(b * (bottom - top), height - b * top)]
            part = part[..., :width] + self.signal_offset
            if postprocess is not None:
                part = postprocess(part)
            if x_hat is None:
                x_hat = part.new_empty(*part.shape[:2], height, width)
            x_hat[:, :, b * top : b * top + part.shape[2]] = part
        assert x_hat is not None
        return x_hat

    def _decoder_rows(self, y_hat: Tensor, start: int, stop: int, radius: int) -> Tensor:
        """Decoder output at latent rows ``start .. stop - 1`` (modulo ``h``) of ``y_hat [B, K, h, w]``."""
        h = y_hat.shape[2]
        if stop - start >= h:  # tiny image: decode it whole
            return self.decoder(y_hat).index_select(2, torch.arange(start, stop, device=y_hat.device) % h)
        parts = []
        row = start
        while row < stop:  # at most three runs of rows inside [0, h)
            first = row % h
            count = min(stop - row, h - first)
            lo, hi = max(0, first - radius), min(h, first + count + radius)
            parts.append(self.decoder(y_hat[:, :, lo:hi])[:, :, first - lo : first - lo + count])
            row += count
        return parts[0] if len(parts) == 1 else torch.cat(parts, 2)

    def _decoder_radius(self) -> int:
        """Latent rows of context the decoder reaches on each side: the convolutions' half-extents summed."""
        radius = 0
        for module in self.decoder.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                radius += (module.kernel_size[0] - 1) * module.dilation[0] // 2
        return radius

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
        """Freeze the prior into integer tables for every quality (after training, before coding); a
        context model's tables start as copies of them."""
        cfg = self.config
        for quality in range(1, cfg.qualities + 1):
            pmf = self.prior.pmf(cfg.step(quality), cfg.max_symbol(quality)).cpu().numpy()
            freqs = quantize_pmf(pmf)
            getattr(self, f"tables_{quality}").copy_(torch.from_numpy(freqs.astype(np.int32)))
            if "checkerboard" in (cfg.context, cfg.legacy_context):  # until fitted, every context uses the channel's table
                ctx = getattr(self, f"context_tables_{quality}")
                ctx.copy_(torch.from_numpy((freqs - 1).astype(np.int32))[:, None, :].expand_as(ctx).to(torch.uint16))
            if cfg.grid_version:  # until fitted (train/grid.py): no prediction, Laplace tables
                getattr(self, f"grid_mu_{quality}").zero_()
                getattr(self, f"grid_sigma_{quality}").zero_()
                for version in range(1, cfg.grid_version + 1):
                    laplace = grid.laplace_tables(cfg.max_symbol(quality), version=version)
                    getattr(self, grid_tables_buffer(version, quality)).copy_(torch.from_numpy(laplace.astype(np.int32)))
        self.weights_sha256 = None

    def tables(self, quality: int | None = None) -> np.ndarray:
        """Integer frequency table ``[latent_channels, 2Q + 1]`` (uint32) for a quality."""
        quality = self.config.check_quality(quality)
        return getattr(self, f"tables_{quality}").cpu().numpy().astype(np.uint32)

    def grid_tables(self, quality: int | None = None, version: int | None = None) -> grid.GridTables:
        """The grid context model of a quality (configs with ``context="grid"`` or ``"grid2"``), of
        ``version`` (default: the config's; a version 2 codec also holds version 1's tables). Kept
        while its buffers are unchanged, so its checks and coder models are built once, not per file."""
        own = self.config.grid_version
        version = own if version is None else version
        if not own or version not in (1, own):
            raise InputError(f"{self.config.name} has no grid context model of version {version}")
        quality = self.config.check_quality(quality)
        bufs = [getattr(self, name) for name in (f"grid_mu_{quality}", f"grid_sigma_{quality}",
                                                 grid_tables_buffer(version, quality))]
        key = tuple((b.data_ptr(), b._version, b.device.type) for b in bufs)
        cached = _GRID_TABLES.setdefault(self, {}).get((quality, version))
        if cached is not None and cached[0] == key:
            return cached[1]
        tables = grid.GridTables(bufs[0].cpu().numpy().copy(), bufs[1].cpu().numpy().copy(),
                                 bufs[2].cpu().numpy().astype(np.int64), version)
        _GRID_TABLES[self][(quality, version)] = (key, tables)
        return tables

    def context_tables(self, quality: int | None = None) -> ContextTables:
        """The checkerboard context model of a quality (configs that hold one)."""
        if "checkerboard" not in (self.config.context, self.config.legacy_context):
            raise InputError(f"{self.config.name} has no context model")
        quality = self.config.check_quality(quality)
        return ContextTables(
            getattr(self, f"context_thresholds_{quality}").cpu().numpy().astype(np.int64),
            getattr(self, f"context_lut_{quality}").cpu().numpy().astype(np.int64),
            getattr(self, f"context_tables_{quality}").cpu().numpy().astype(np.uint32) + 1,
        )

    def extra_repr(self) -> str:
        return f"preset={self.config.name!r}"
