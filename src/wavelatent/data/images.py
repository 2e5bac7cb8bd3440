"""Training images: kept in memory as uint8, cut into random crops deterministically per step."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..io.files import list_files
from ..io.images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm")


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursive), sorted by path."""
    return list_files(root, IMAGE_SUFFIXES)


def load_images(paths: list[Path], channels: int, *, min_size: int = 1, progress: bool = False) -> list[np.ndarray]:
    """Decode images to ``[H, W, channels]`` uint8 arrays (RGB or L), skipping ones smaller than ``min_size``."""
    from PIL import Image
    from tqdm import tqdm

    out = []
    for p in tqdm(paths, desc="loading images", disable=not progress, leave=False):
        arr, mode = read_image(p)
        color = arr[:, :, : (1 if mode in ("L", "LA") else 3)]
        if channels == 1 and color.shape[2] == 3:
            color = np.asarray(Image.fromarray(color).convert("L"))[:, :, None]
        elif channels == 3 and color.shape[2] == 1:
            color = np.repeat(color, 3, axis=2)
        elif color.shape[2] != channels:
            raise InputError(f"{p}: cannot make {channels} channels from {mode}")
        if min(color.shape[:2]) >= min_size:
            out.append(np.ascontiguousarray(color))
    if not out:
        raise InputError(f"no usable images (need at least {min_size}x{min_size} pixels)")
    return out


class CropBatcher:
    """Random crops with flips; batch ``t`` depends only on ``(seed, t)``, so resumes are exact.

    ``batch(t)`` -> ``x [B, C, crop, crop]`` float32 in [0, 1] and a ``torch.Generator`` left in
    a state that also depends only on ``(seed, t)`` (callers draw quantization noise from it).
    """

    def __init__(self, images: list[np.ndarray], crop: int, batch_size: int, seed: int) -> None:
        small = [im.shape[:2] for im in images if min(im.shape[:2]) < crop]
        if small:
            raise InputError(f"{len(small)} training images are smaller than the {crop}px crop, e.g. {small[0]}")
        self.images, self.crop, self.batch_size, self.seed = images, crop, batch_size, seed

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + step) % (2**63))

    def batch(self, step: int) -> tuple[Tensor, torch.Generator]:
        g = self.generator(step)
        idx = torch.randint(len(self.images), (self.batch_size,), generator=g).tolist()
        u = torch.rand(self.batch_size, 4, generator=g).tolist()
        crops = []
        for i, (ry, rx, fh, fv) in zip(idx, u):
            im = self.images[i]
            y0 = int(ry * (im.shape[0] - self.crop + 1))
            x0 = int(rx * (im.shape[1] - self.crop + 1))
            c = im[y0 : y0 + self.crop, x0 : x0 + self.crop]
            if fh < 0.5:
                c = c[:, ::-1]
            if fv < 0.25:  # vertical flips are rarer in photos; keep some for augmentation
                c = c[::-1]
            crops.append(np.ascontiguousarray(c))
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
        return x, g
