"""Parameters and multiply-accumulates per pixel of a codec, counted analytically from its modules.

Per signal sample (pixel for images, sample for audio), per pass:

* wavelet packet analysis and synthesis, as implemented (``transforms/wavelets.py`` applies the
  J-level packet filter bank per axis as batched matrix products over overlapping windows): what
  ``encode``/``decode`` execute on a probe signal under ``torch.utils.flop_counter``, less the
  analytic counts of the linear encoder and the decoder's convolutions. The level-by-level reference would need ``channels * levels * dims * 9`` (analysis) and
  ``channels * levels * dims * 10`` (synthesis); the filter-bank path does more multiply-adds but
  far fewer passes over memory, which is what costs time on a CPU.
* the linear encoder: ``latent_channels * packet_channels`` per latent position; the decoder's
  convolutions: ``prod(kernel) * in_channels / groups * out_channels`` per output position, all at
  latent resolution, so both are scaled by the latent/pixel ratio ``1 / 2**(levels * dims)``.

Padding, the soft bound (tanh), GELUs, rounding and the entropy coder are not multiply-accumulates
and are not counted. ``torch.utils.flop_counter`` agrees (FLOPs = 2 MACs), see the tests.
"""
from __future__ import annotations

from torch import nn

import torch


def _conv_macs_per_position(module: nn.Module) -> int:
    total = 0
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            k = 1
            for s in m.kernel_size:
                k *= s
            total += k * (m.in_channels // m.groups) * m.out_channels
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
    return total


def count_parameters(codec) -> dict[str, int]:
    """Parameters of the encoder (linear map; the wavelet has none), decoder, and entropy prior
    (the prior is only used to freeze tables: coding runs on the integer tables)."""
    return {
        "encoder": sum(p.numel() for p in codec.encoder.parameters()),
        "decoder": sum(p.numel() for p in codec.decoder.parameters()),
        "prior": sum(p.numel() for p in codec.prior.parameters()),
    }


def _measured_macs(codec, size: tuple[int, ...]) -> tuple[float, float]:
    """MACs per pixel (per frame for audio) of ``codec.encode`` and ``codec.decode`` on a probe."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, codec.config.channels, *size)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as enc:
            y = codec.encode(x)
        with FlopCounterMode(display=False) as dec:
            codec.decode(y)
    pixels = x.numel() / codec.config.channels
    return enc.get_total_flops() / 2 / pixels, dec.get_total_flops() / 2 / pixels


def count_macs(codec, size: tuple[int, ...] | None = None) -> dict[str, float]:
    """MACs per signal sample: ``analysis``, ``encoder_linear``, ``encoder`` (their sum),
    ``decoder_conv``, ``synthesis``, ``decoder`` (their sum). The transforms' share depends a little
    on the signal ``size`` (padded to whole blocks; default 256 per side)."""
    cfg = codec.config
    dims = cfg.spatial_dims
    per_position = 1.0 / cfg.block**dims  # latent positions per signal sample
    size = tuple(-(-s // cfg.block) * cfg.block for s in size) if size else (max(256, 8 * cfg.block),) * dims
    linear = codec.encoder.weight.numel() * per_position
    conv = _conv_macs_per_position(codec.decoder) * per_position
    encode, decode = _measured_macs(codec, size)
    analysis, synthesis = encode - linear, decode - conv
    return {
        "analysis": analysis,
        "encoder_linear": linear,
        "encoder": analysis + linear,
        "decoder_conv": conv,
        "synthesis": synthesis,
        "decoder": conv + synthesis,
    }
