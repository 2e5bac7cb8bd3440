"""Diagnostic input: 32 px pixels rearranged space-to-depth into 12x16x16 (the 16x latents' shape)."""
import numpy as np
from wavelatent.learn.inputs import box_downsample, register_input


def s2d(images):
    x = box_downsample(images, 4)  # [N, 3, H/4, W/4]
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(n, 12, h // 2, w // 2))


register_input("pixels-32-s2d", s2d, description="32 px pixels space-to-depth: 12x16x16")
