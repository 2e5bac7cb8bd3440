"""Parameters and multiply-accumulates per pixel of a codec, counted analytically from its modules.

Per signal sample (pixel for images, sample for audio), per pass:

* wavelet packet analysis, as implemented: every level filters every band along each spatial
  axis once, and each output value is one dot product with the 9 stored taps of the lowpass or
  highpass filter (the highpass has 7 non-zero taps, but the convolution computes 9):
  ``channels * levels * dims * 9``.
* synthesis (polyphase): each output value sums 5 taps of each of 2 bands:
  ``channels * levels * dims * 10``.
* the linear encoder: ``latent_channels * packet_channels`` per latent position; the decoder's
  convolutions: ``prod(kernel) * in_channels / groups * out_channels`` per output position, all at
  latent resolution, so both are scaled by the latent/pixel ratio ``1 / 2**(levels * dims)``.

Padding, the soft bound (tanh), GELUs, rounding and the entropy coder are not multiply-accumulates
and are not counted. ``torch.utils.flop_counter`` agrees (FLOPs = 2 MACs), see the tests.
"""
from __future__ import annotations

from torch import nn

from ..transforms.wavelets import _ANALYSIS_TAPS, _SYNTHESIS_TAPS


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


def count_macs(codec) -> dict[str, float]:
    """MACs per signal sample: ``analysis``, ``encoder_linear``, ``encoder`` (their sum),
    ``decoder_conv``, ``synthesis``, ``decoder`` (their sum)."""
    cfg = codec.config
    dims = cfg.spatial_dims
    per_position = 1.0 / cfg.block**dims  # latent positions per signal sample
    analysis = float(cfg.channels * cfg.levels * dims * _ANALYSIS_TAPS)
    synthesis = float(cfg.channels * cfg.levels * dims * 2 * _SYNTHESIS_TAPS)
    linear = codec.encoder.weight.numel() * per_position
    conv = _conv_macs_per_position(codec.decoder) * per_position
    return {
        "analysis": analysis,
        "encoder_linear": linear,
        "encoder": analysis + linear,
        "decoder_conv": conv,
        "synthesis": synthesis,
        "decoder": conv + synthesis,
    }
