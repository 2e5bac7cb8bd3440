"""Learned per-channel prior of the latents: a mixture of logistics per channel.

The same cumulative distribution gives the training rate (probability mass of a noisy latent's
quantization bin) and, frozen, the integer tables the rANS coder uses, so the rate that training
minimises is the rate that files pay.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_MIN_LIKELIHOOD = 1e-9


class LogisticMixturePrior(nn.Module):
    """``K``-component logistic mixture for each of ``C`` latent channels."""

    def __init__(self, channels: int, components: int, init_scale: float = 8.0) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(channels, components))
        # computed on the CPU and moved: under a meta-device context (weights loading) the same
        # arithmetic would run torch's Python meta kernels, whose first use costs seconds of imports
        spread = torch.linspace(-1.0, 1.0, components, device="cpu") if components > 1 else torch.zeros(1, device="cpu")
        self.means = nn.Parameter((spread.repeat(channels, 1) * init_scale / 2).to(self.logits.device))
        self.log_scales = nn.Parameter(torch.full((channels, components), math.log(init_scale)))

    def _params(self, ndim: int) -> tuple[Tensor, Tensor, Tensor]:
        # broadcast [C, K] against [B, C, *S, 1]
        shape = (1, self.logits.shape[0]) + (1,) * (ndim - 2) + (self.logits.shape[1],)
        w = F.softmax(self.logits, dim=-1).view(shape)
        return w, self.means.view(shape), self.log_scales.exp().view(shape)

    def likelihood(self, y: Tensor, step: Tensor | float) -> Tensor:
        """Probability of the bin ``[y - step/2, y + step/2]``; ``y [B, C, *S]`` -> same shape."""
        w, mu, s = self._params(y.dim())
        y = y.unsqueeze(-1)
        half = step / 2 if not isinstance(step, Tensor) else (step / 2).unsqueeze(-1)
        upper = (y + half - mu) / s
        lower = (y - half - mu) / s
        # evaluate in the lower tail where sigmoid differences keep their precision
        sign = -torch.sign(upper + lower).detach()
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return (w * p).sum(-1).clamp_min(_MIN_LIKELIHOOD)

    def bits(self, y: Tensor, step: Tensor | float) -> Tensor:
        """Information content in bits per element of ``y`` under the bin model."""
        return -torch.log2(self.likelihood(y, step))

    @torch.no_grad()
    def pmf(self, step: float, max_symbol: int) -> Tensor:
        """Symbol probabilities ``[C, 2 * max_symbol + 1]`` (float64) for symbols ``-Q..Q``.

        The two edge symbols take the tails, so each row sums to one over the bounded alphabet.
        """
        C, K = self.logits.shape
        edges = (torch.arange(-max_symbol, max_symbol + 2, dtype=torch.float64) - 0.5) * step  # 2Q+2 edges
        w = F.softmax(self.logits.double(), -1).view(C, 1, K)
        mu = self.means.double().view(C, 1, K)
        s = self.log_scales.double().exp().view(C, 1, K)
        cdf = (w * torch.sigmoid((edges.view(1, -1, 1) - mu) / s)).sum(-1)  # [C, 2Q+2]
        # survival function for the upper half keeps tail precision
        sf = (w * torch.sigmoid(-(edges.view(1, -1, 1) - mu) / s)).sum(-1)
        cdf[:, 0] = 0.0
        sf[:, 0] = 1.0
        sf[:, -1] = 0.0
        cdf[:, -1] = 1.0
        lower_half = cdf[:, 1:] - cdf[:, :-1]
        upper_half = sf[:, :-1] - sf[:, 1:]
        centre = (edges[:-1] + edges[1:]) / 2
        pmf = torch.where(centre.view(1, -1) < 0, lower_half, upper_half)
        return pmf.clamp_min(0.0)
