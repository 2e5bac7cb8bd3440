"""The decoder: a small convolutional network at latent resolution, plus a linear skip.

No attention and no normalisation over the whole signal, so every output position depends only
on a bounded neighbourhood of latents: any size works and tiles decode consistently.
"""
from __future__ import annotations

from torch import Tensor, nn


def _conv(dims: int, cin: int, cout: int, kernel: int) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    return conv(cin, cout, kernel, padding=kernel // 2)


class ResBlock(nn.Module):
    def __init__(self, dims: int, width: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = _conv(dims, width, width, kernel)
        self.conv2 = _conv(dims, width, width, kernel)
        self.act = nn.GELU()

    def forward(self, h: Tensor) -> Tensor:
        return h + self.conv2(self.act(self.conv1(self.act(h))))


class ConvDecoder(nn.Module):
    """``[B, latent_channels, *S] -> [B, packet_channels, *S]`` (wavelet packet coefficients).

    ``out = skip(y) + head(blocks(stem(y)))``: the linear skip learns the best linear inverse of the
    encoder quickly, the convolutional body adds what a linear map cannot (context, denoising).
    """

    def __init__(
        self, latent_channels: int, packet_channels: int, width: int, blocks: int, *, dims: int = 2, kernel: int = 3
    ) -> None:
        super().__init__()
        self.skip = _conv(dims, latent_channels, packet_channels, 1)
        self.stem = _conv(dims, latent_channels, width, kernel)
        self.blocks = nn.Sequential(*[ResBlock(dims, width, kernel) for _ in range(blocks)])
        self.act = nn.GELU()
        self.head = _conv(dims, width, packet_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, y_hat: Tensor) -> Tensor:
        h = self.blocks(self.stem(y_hat))
        return self.skip(y_hat) + self.head(self.act(h))
