"""One small CNN family for every input: a stem that adapts to the input, then a fixed body.

``SmallCNN(in_channels, in_size, dims=2)`` for images (``[N, C, S, S]``), ``dims=1`` for audio
(``[N, C, S]``: the same layers with 1-D convolutions):

* **stem**: brings any input to ``body_size`` (``body_size x body_size`` for images; ``wavelatent
  learn`` uses the latent resolution: 16 for 128 px windows, 240 steps for 7,680 samples) with
  ``width`` channels: ``stem_layers`` conv-BN-ReLU layers (``kernel`` taps, 3 for images and 5
  for audio), of which the first ``n = log2(in_size / body_size)`` have stride 2 and the rest
  stride 1 (an input smaller than the body gets no stride). With ``stem_layers=None`` the stem
  is as short as possible (``max(n, 1)`` layers); with a fixed ``stem_layers`` every input gets
  the same depth. So a ``12x16x16`` latent, a ``3x32x32`` and a ``3x128x128`` image all reach
  the same ``width x 16 x 16`` feature map, and every input gets the same body. ``stem`` sets
  how much a larger input may spend before the body:

  - ``"wide"`` (default): every stem layer has ``width`` channels, as wide as the body;
  - ``"resnet"``: wide, and a residual block after each stride-2 layer above the body size
    (ResNet-style stages: a 128 px input gets two blocks, at 64 and 32 px);
  - ``"thin"``: channels ``width / 2**(layers-1)`` ... ``width``, at least 16 (the first
    version's stem, which may starve a 128 px input: 16 channels at 64 and 32 px).
* **body** (identical for all inputs): a residual block at the body size, a stride-2 transition
  and a residual block at half of it (``2 width``), the same at a quarter (``4 width``), global
  average pooling, dropout, a linear classifier. Batch norm and ReLU throughout.

The stem is the only part whose cost depends on the input; ``macs()`` reports the total, and the
learn results list it, so budgets can be compared (the 128 px stem does most of its work at 64x64).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SmallCNN", "STEMS", "count_macs", "warmup_cosine"]

STEMS = ("wide", "resnet", "thin")


_LAYERS = {1: (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d), 2: (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d)}


def conv_bn(dims: int, cin: int, cout: int, stride: int = 1, k: int = 3, act: bool = True) -> nn.Sequential:
    conv, bn, _ = _LAYERS[dims]
    layers = [conv(cin, cout, k, stride, k // 2, bias=False), bn(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if act else nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Residual block: two ``k``-tap convs (the first may stride), a 1x1 projection when the shape changes."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int = 1, k: int = 3) -> None:
        super().__init__()
        self.conv1 = conv_bn(dims, cin, cout, stride, k)
        self.conv2 = conv_bn(dims, cout, cout, 1, k, act=False)
        self.skip = (
            nn.Identity() if stride == 1 and cin == cout else conv_bn(dims, cin, cout, stride, 1, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


class SmallCNN(nn.Module):
    """Compact residual CNN whose stem takes ``in_channels`` at ``in_size`` (see module docstring)."""

    def __init__(self, in_channels: int, in_size: int, num_classes: int, *, width: int = 32, body_size: int = 16,
                 dropout: float = 0.1, stem_layers: int | None = None, dims: int = 2, kernel: int = 3,
                 stem: str = "wide") -> None:
        super().__init__()
        if dims not in _LAYERS:
            raise ValueError(f"dims must be 1 or 2, got {dims}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        n = max(0, round(math.log2(max(in_size, 1) / body_size)))
        if n and in_size != body_size * 2**n:
            raise ValueError(f"input size {in_size} is not {body_size} times a power of two")
        depth = max(n, 1) if stem_layers is None else stem_layers
        if depth < max(n, 1):
            raise ValueError(f"a {in_size} px input needs at least {max(n, 1)} stem layers, got {stem_layers}")
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(depth):  # stride 2 down to body_size, then stride 1; the last layer gives `width`
            thin = min(width, max(16, width // 2 ** (depth - 1 - i)))
            out = width if i == depth - 1 or stem != "thin" else thin
            layers.append(conv_bn(dims, c, out, stride=2 if i < n else 1, k=kernel))
            if stem == "resnet" and i < n - 1:  # a stage above the body size gets a block of its own
                layers.append(ResidualBlock(dims, out, out, k=kernel))
            c = out
        self.stem = nn.Sequential(*layers)
        self.body = nn.Sequential(
            ResidualBlock(dims, width, width, k=kernel),
            ResidualBlock(dims, width, 2 * width, stride=2, k=kernel),
            ResidualBlock(dims, 2 * width, 4 * width, stride=2, k=kernel),
        )
        self.head = nn.Sequential(_LAYERS[dims][2](1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes))
        self.in_channels, self.in_size, self.stem_downsamples = in_channels, in_size, n

    def features(self, x: Tensor) -> Tensor:
        """The penultimate features ``[N, 4 width]`` (pooled and flattened, before dropout and the linear layer)."""
        return self.head[:2](self.body(self.stem(x)))

    def classify(self, features: Tensor) -> Tensor:
        """Logits ``[N, classes]`` of :meth:`features`."""
        return self.head[2:](features)

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.features(x))


def count_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of convolutions and linear layers for one input of ``shape`` ``[C, *S]``."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        k = math.prod(m.kernel_size) * (m.in_channels // m.groups)
        total += out.numel() * k

    def lin_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    hooks += [m.register_forward_hook(lin_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def warmup_cosine(opt, steps_per_epoch: int, epochs: int):
    """The learning-rate schedule of every ``learn`` run: linear warmup over one epoch, then cosine to 0."""
    import torch

    total = steps_per_epoch * epochs
    warmup = min(steps_per_epoch, total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
