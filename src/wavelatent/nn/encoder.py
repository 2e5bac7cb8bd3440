"""The encoder: one linear map over wavelet packet channels (a 1x1 convolution)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LinearEncoder(nn.Module):
    """``[B, packet_channels, *S] -> [B, latent_channels, *S]``, the same affine map at every position."""

    def __init__(self, packet_channels: int, latent_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(latent_channels, packet_channels))
        self.bias = nn.Parameter(torch.zeros(latent_channels))
        nn.init.orthogonal_(self.weight)

    def forward(self, coeffs: Tensor, weight: Tensor | None = None) -> Tensor:
        """``weight``: the columns of ``self.weight`` for a subset of packet channels that ``coeffs`` holds
        (the others' weights being zero); default all."""
        # einsum over the channel axis works for 1D and 2D signals alike
        y = torch.einsum("kc,bc...->bk...", self.weight if weight is None else weight, coeffs)
        return y + self.bias.view(1, -1, *([1] * (coeffs.dim() - 2)))
