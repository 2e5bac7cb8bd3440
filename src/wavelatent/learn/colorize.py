"""``wavelatent learn DATA --task colorize``: colorization in the latent domain and in pixels.

A dense task on the same Imagenette images as the classification experiment (stored at ``size``
px, 144; ``crop`` windows, 128, on an 8 px grid; horizontal flips of the stored images). Two
routes of equal size, the same CNN family and budget:

``latents``
    input: ``image-gray-16x`` latents of the grayscale image (4x16x16, BT.601 luma);
    target: ``image-rgb-16x`` latents of the colour image (12x16x16), both dequantized at the
    presets' default qualities; the prediction is decoded by ``image-rgb-16x``'s decoder.
``pixels``
    input: the grayscale image shrunk 4x by box filtering (1x32x32, as many values as the gray
    latents); target: the colour image shrunk 4x (3x32x32, as many values as the RGB latents);
    the prediction is upsampled 4x (bicubic).

The CNN (:func:`dense_cnn`) keeps its input resolution: a 3x3 stem to ``width`` channels, ``blocks``
residual blocks, a 3x3 head; inputs and targets are standardized per channel with training
statistics and the loss is MSE on them. Every route is scored by PSNR-RGB of its 128 px output
against the colour crop -- with the chroma of the prediction and the luma of the route's own gray
input (:func:`keep_luma`, the usual way to colourize), and also as predicted -- next to two
references per route: the gray input shown as gray (what a model must beat) and the route's own
target (its ceiling: the RGB latents decoded, or the 32 px colour thumbnail upsampled). Results go to ``OUT/colorize.json``, ``OUT/colorize.md`` and
``OUT/colorize.png`` (scores and a strip of validation examples).
"""
from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError

__all__ = ["GRAY_PRESET", "RGB_PRESET", "colorize", "dense_cnn", "gray", "keep_luma"]

GRAY_PRESET = "image-gray-16x"
RGB_PRESET = "image-rgb-16x"
ROUTES = ("latents", "pixels")
SHRINK = 4  # pixel route: 32 px thumbnails of 128 px windows, as many values as the 16x latents


def gray(images: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> uint8 ``[N, H, W, 1]`` BT.601 luma (Pillow's ``convert("L")``)."""
    x = images.astype(np.uint32)
    y = (x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000) >> 16
    return y.astype(np.uint8)[..., None]


def keep_luma(colour: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[..., 3]``: the chroma (BT.601 Cb, Cr) of ``colour`` with the luma of ``grey``
    (an RGB image whose channels are equal) -- a colourization that keeps its input's brightness."""
    c = colour.astype(np.float64)
    y = grey[..., 0].astype(np.float64)
    cb = -0.168736 * c[..., 0] - 0.331264 * c[..., 1] + 0.5 * c[..., 2]
    cr = 0.5 * c[..., 0] - 0.418688 * c[..., 1] - 0.081312 * c[..., 2]
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _latents(preset: str, images: np.ndarray) -> np.ndarray:
    """Dequantized latents ``[N, K, H/8, W/8]`` float32 of uint8 images at the preset's default quality."""
    from ..data.cache import encode_symbols
    from ..models import load_codec

    codec = load_codec(preset)
    return encode_symbols(codec, images).astype(np.float32) * np.float32(codec.config.step(None))


def _shrink(images: np.ndarray) -> np.ndarray:
    from .inputs import box_downsample

    return box_downsample(images, SHRINK).astype(np.float32) / np.float32(255)


def dense_cnn(cin: int, cout: int, *, width: int = 64, blocks: int = 4):
    """``[N, cin, h, w]`` -> ``[N, cout, h, w]``: 3x3 stem, ``blocks`` residual blocks, 3x3 head."""
    from torch import nn

    from .models import ResidualBlock, conv_bn

    return nn.Sequential(conv_bn(2, cin, width), *[ResidualBlock(2, width, width) for _ in range(blocks)],
                         nn.Conv2d(width, cout, 3, 1, 1))


class _Pairs:
    """Inputs and targets of one route for one split, at stored resolution (``factor`` px per value)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, factor: int) -> None:
        self.x, self.y, self.factor = x, y, factor

    def window(self, a: np.ndarray, idx: np.ndarray, offsets: np.ndarray | None, grid: int, crop: int, centre: int):
        import torch

        c, g = crop // self.factor, grid // self.factor
        if offsets is None:
            o = centre // self.factor
            return torch.from_numpy(np.ascontiguousarray(a[idx, :, o : o + c, o : o + c]))
        return torch.from_numpy(np.stack([a[i, :, oy * g : oy * g + c, ox * g : ox * g + c]
                                          for i, (oy, ox) in zip(idx, offsets)]))


def _stats(a: np.ndarray):
    import torch

    m = a.mean(axis=(0, 2, 3), dtype=np.float64)
    s = np.sqrt(np.maximum(a.var(axis=(0, 2, 3), dtype=np.float64), 1e-12))
    return (torch.tensor(m, dtype=torch.float32).view(1, -1, 1, 1), torch.tensor(s, dtype=torch.float32).view(1, -1, 1, 1))


def _to_uint8(t) -> np.ndarray:
    """float ``[N, 3, H, W]`` in [0, 1] -> uint8 ``[N, H, W, 3]``."""
    import torch

    return t.clamp(0, 1).mul(255).add(0.5).floor().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def colorize(train_images: np.ndarray, val_images: np.ndarray, out: Path, *, epochs: int = 12, batch_size: int = 64,
             lr: float = 2e-3, weight_decay: float = 0.05, width: int = 64, blocks: int = 4, crop: int = 128,
             grid: int = 8, seed: int = 0, log: Callable[[str], None] = lambda m: None) -> dict:
    """Train both routes on uint8 ``[N, size, size, 3]`` images and score them; returns the results."""
    import torch
    import torch.nn.functional as F

    from ..evaluate.metrics import psnr
    from ..models import load_codec
    from .models import count_macs, warmup_cosine

    size = train_images.shape[1]
    if crop % 8 or grid % 8 or size % 8 or crop > size or ((size - crop) // 2) % 8:
        raise InputError(f"colorize needs the size ({size}), crop ({crop}), grid ({grid}) and centre offset in "
                         "multiples of 8 px")
    centre = (size - crop) // 2
    t0 = time.perf_counter()
    flipped = np.ascontiguousarray(train_images[:, :, ::-1])
    data: dict[str, dict[str, _Pairs]] = {"latents": {}, "pixels": {}}
    for name, imgs in (("train", train_images), ("flip", flipped), ("val", val_images)):
        g = gray(imgs)
        data["latents"][name] = _Pairs(_latents(GRAY_PRESET, g), _latents(RGB_PRESET, imgs), 8)
        data["pixels"][name] = _Pairs(_shrink(g), _shrink(imgs), SHRINK)
    log(f"colorize: features in {time.perf_counter() - t0:.0f} s")
    rgb = load_codec(RGB_PRESET)
    gray_codec = load_codec(GRAY_PRESET)
    truth = np.ascontiguousarray(val_images[:, centre : centre + crop, centre : centre + crop])

    def render(route: str, y: torch.Tensor) -> np.ndarray:
        """Route outputs of whole stored images ``[n, C, h, w]`` -> uint8 RGB ``[n, crop, crop, 3]``:
        decoded (RGB or gray latents) or upsampled, then the centre window (no edge effects in it)."""
        with torch.inference_mode():
            if route == "latents":
                codec = rgb if y.shape[1] == rgb.config.latent_channels else gray_codec
                parts = [codec.decode(y[i : i + 64]) for i in range(0, len(y), 64)]
            else:
                parts = [F.interpolate(y[i : i + 64], scale_factor=SHRINK, mode="bicubic", align_corners=False)
                         for i in range(0, len(y), 64)]
        x = torch.cat(parts)[:, :, centre : centre + crop, centre : centre + crop]
        return _to_uint8(x.expand(-1, 3, -1, -1))

    def score(pred: np.ndarray) -> float:
        return float(np.mean([psnr(a, b) for a, b in zip(pred, truth)]))

    N, V = len(train_images), len(val_images)
    results, examples = [], {}
    for route in ROUTES:
        tr, fl, va = (data[route][k] for k in ("train", "flip", "val"))
        xm, xs = _stats(tr.x)
        ym, ys = _stats(tr.y)
        torch.manual_seed(seed)
        model = dense_cnn(tr.x.shape[1], tr.y.shape[1], width=width, blocks=blocks)
        c = crop // tr.factor
        macs = count_macs(model, (tr.x.shape[1], c, c))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps = math.ceil(N / batch_size)
        sched = warmup_cosine(opt, steps, epochs)
        positions = (size - crop) // grid + 1
        history = []
        t_run = time.perf_counter()
        for epoch in range(epochs):
            rng = np.random.default_rng([seed, epoch])
            perm, offsets, flips = rng.permutation(N), rng.integers(0, positions, (N, 2)), rng.random(N) < 0.5
            model.train()
            t_ep, loss_sum = time.perf_counter(), 0.0
            for b in range(steps):
                sl = slice(b * batch_size, (b + 1) * batch_size)
                idx, off, fm = perm[sl], offsets[sl], flips[sl]
                xb = torch.where(torch.from_numpy(fm).view(-1, 1, 1, 1), fl.window(fl.x, idx, off, grid, crop, centre),
                                 tr.window(tr.x, idx, off, grid, crop, centre))
                yb = torch.where(torch.from_numpy(fm).view(-1, 1, 1, 1), fl.window(fl.y, idx, off, grid, crop, centre),
                                 tr.window(tr.y, idx, off, grid, crop, centre))
                loss = F.mse_loss(model((xb - xm) / xs), (yb - ym) / ys)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * len(idx)
            history.append({"epoch": epoch + 1, "train_loss": loss_sum / N, "train_seconds": time.perf_counter() - t_ep})
            log(f"  colorize {route} epoch {epoch + 1}/{epochs}: loss {loss_sum / N:.4f}, "
                f"{history[-1]['train_seconds']:.1f} s")
        model.eval()  # fully convolutional: predicts whole stored images, scored on the centre window
        xv = torch.from_numpy(va.x)
        with torch.inference_mode():
            pred = torch.cat([model((xv[i : i + 256] - xm) / xs) for i in range(0, V, 256)]) * ys + ym
        raw_rgb = render(route, pred)
        target_rgb = render(route, torch.from_numpy(va.y))
        gray_rgb = render(route, xv)
        out_rgb = keep_luma(raw_rgb, gray_rgb)
        examples[route] = out_rgb[:6]
        results.append({
            "route": route,
            "input_shape": [tr.x.shape[1], c, c], "target_shape": [tr.y.shape[1], c, c],
            "psnr_rgb": score(out_rgb), "psnr_rgb_raw": score(raw_rgb), "psnr_gray_as_gray": score(gray_rgb),
            "psnr_target": score(target_rgb),
            "epoch_seconds": float(np.mean([h["train_seconds"] for h in history])),
            "run_seconds": time.perf_counter() - t_run, "macs": macs,
            "parameters": sum(p.numel() for p in model.parameters()), "history": history,
        })
        r = results[-1]
        log(f"colorize {route}: PSNR-RGB {r['psnr_rgb']:.2f} dB (output as predicted {r['psnr_rgb_raw']:.2f}, gray "
            f"{r['psnr_gray_as_gray']:.2f}, ceiling {r['psnr_target']:.2f})")
    doc = {
        "experiment": "colorize", "train_samples": N, "val_samples": V,
        "settings": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                     "width": width, "blocks": blocks, "size": size, "crop": crop, "grid": grid, "seed": seed},
        "presets": {"gray": GRAY_PRESET, "rgb": RGB_PRESET}, "runs": results,
    }
    _write(out, doc, truth[:6], examples)
    return doc


def colorize_table(doc: dict) -> str:
    lines = ["| route | input | output | PSNR-RGB (input's luma kept) | as predicted | gray input shown as gray "
             "| route's ceiling (true target) | s/epoch | MACs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        lines.append(f"| {r['route']} | {'x'.join(map(str, r['input_shape']))} | {'x'.join(map(str, r['target_shape']))} "
                     f"| {r['psnr_rgb']:.2f} dB | {r['psnr_rgb_raw']:.2f} dB | {r['psnr_gray_as_gray']:.2f} dB "
                     f"| {r['psnr_target']:.2f} dB | {r['epoch_seconds']:.1f} | {r['macs'] / 1e6:.1f} M |")
    return "\n".join(lines)


def _write(out: Path, doc: dict, truth: np.ndarray, examples: dict[str, np.ndarray]) -> None:
    from ..io.files import atomic_write_bytes, atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "colorize.json", doc)
    atomic_write_bytes(out / "colorize.md", (colorize_table(doc) + "\n").encode(), force=True)
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("colour", truth), ("gray input", np.repeat(gray(truth), 3, axis=3))] + \
        [(f"{route} route", examples[route]) for route in ROUTES]
    n = len(truth)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.8 * n, 1.9 * len(rows)), squeeze=False)
    for i, (label, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.imshow(imgs[j])
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("; ".join(f"{r['route']}: {r['psnr_rgb']:.2f} dB" for r in doc["runs"]), fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out / "colorize.png", buf.getvalue(), force=True)
