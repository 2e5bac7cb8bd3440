"""Fit the checkerboard context model (entropy/context.py) of a trained image codec on images.

The codec's encoder, decoder and prior stay as trained; for every quality the context thresholds
are quantiles of the context features, the lookup table ranks the feature combinations by the
mean log-magnitude of the symbols they precede, and each context's table is the histogram of its
training symbols smoothed with the channel's own (factorized) table.
"""
from __future__ import annotations

import numpy as np
import torch

from ..codec import WaveletCodec
from ..entropy import context as cx
from ..entropy.tables import PRECISION, quantize_pmf

# weight of the channel's factorized table, in symbols, added to every context histogram
SMOOTHING = 32.0


def load_fit_images(folder: str, channels: int, size: int = 512, progress: bool = False) -> list[np.ndarray]:
    """The images of ``folder`` (recursive), centre-cropped to at most ``size`` px, for fitting."""
    from ..data import list_images, load_images

    out = []
    for im in load_images(list_images(folder), channels, progress=progress):
        h, w = im.shape[:2]
        top, left = (h - min(h, size)) // 2, (w - min(w, size)) // 2
        out.append(np.ascontiguousarray(im[top : top + size, left : left + size]))
    return out


def _levels(values: np.ndarray, n: int) -> np.ndarray:
    """``n - 1`` integer thresholds: the ``i / n`` quantiles of ``values`` (int64)."""
    if values.size == 0:
        return np.zeros(n - 1, dtype=np.int64)
    return np.floor(np.quantile(values, np.arange(1, n) / n)).astype(np.int64)


@torch.no_grad()
def fit_context(codec: WaveletCodec, images: list[np.ndarray], progress: bool = False) -> dict[int, dict[str, float]]:
    """Fill ``codec``'s context buffers from uint8 images ``[H, W, C]``; returns, per quality, the
    ideal bits per symbol of the fitting set under the factorized and the context tables."""
    from tqdm import tqdm

    cfg = codec.config
    if cfg.context != "checkerboard":
        raise ValueError("fit_context needs a codec with context='checkerboard'")
    device = next(codec.parameters()).device
    latents = [codec.encode(torch.from_numpy(np.array(im)).to(device).permute(2, 0, 1).unsqueeze(0)) for im in images]
    C, L = cfg.latent_channels, cx.LEVELS
    report = {}
    for quality in tqdm(range(1, cfg.qualities + 1), desc="context tables", disable=not progress):
        Q = cfg.max_symbol(quality)
        qs = [codec.quantize(y, quality)[0].cpu().numpy() for y in latents]
        # the two halves of every image side by side: [C, n] symbols and features
        halves = [(q[:, f[0]], q[:, ~f[0]], *f[1:]) for q, f in ((q, cx.split_features(q)) for q in qs)]
        sym_a, sym_o, a_anchor, a_other, b, c = (np.concatenate(parts, axis=-1) for parts in zip(*halves))
        thresholds = np.zeros((C, 4, cx.THRESHOLDS), dtype=np.int64)
        lut = np.zeros((C, L**3), dtype=np.int64)
        counts = np.zeros((C, cx.CONTEXTS, 2 * Q + 1))
        for k in range(C):
            thresholds[k, 0, : cx.ANCHOR_LEVELS - 1] = _levels(a_anchor[k], cx.ANCHOR_LEVELS)
            for row, v in ((1, a_other[k]), (2, b), (3, c[k])):
                thresholds[k, row, : L - 1] = _levels(v, L)
            # the lookup ranks the level combinations by the mean log-magnitude of what they precede
            combo = cx.combination(thresholds[k], a_other[k], b, c[k])
            logmag = np.log2(1.0 + np.abs(sym_o[k]))
            n = np.bincount(combo, minlength=L**3).astype(np.float64)
            mean = np.bincount(combo, weights=logmag, minlength=L**3) / np.maximum(n, 1)
            mean[n == 0] = logmag.mean() if logmag.size else 0.0
            order = np.argsort(mean, kind="stable")
            before = np.cumsum(n[order]) - n[order]  # samples in combos ranked lower
            lut[k, order] = np.minimum((before / max(n.sum(), 1) * cx.BUCKETS).astype(np.int64), cx.BUCKETS - 1)
            t = cx.ContextTables(thresholds, lut, np.ones((C, cx.CONTEXTS, 1)))
            np.add.at(counts[k], (cx._anchor_context(t, k, a_anchor[k]), sym_a[k] + Q), 1)
            np.add.at(counts[k], (cx._other_context(t, k, a_other[k], b, c[k]), sym_o[k] + Q), 1)
        base = codec.tables(quality).astype(np.float64) / 2**PRECISION
        freqs = quantize_pmf(counts + SMOOTHING * base[:, None, :])
        getattr(codec, f"context_thresholds_{quality}").copy_(torch.from_numpy(np.minimum(thresholds, cx.MAX_THRESHOLD)))
        getattr(codec, f"context_lut_{quality}").copy_(torch.from_numpy(lut.astype(np.uint8)))
        getattr(codec, f"context_tables_{quality}").copy_(torch.from_numpy((freqs - 1).astype(np.int32)).to(torch.uint16))
        n_symbols = counts.sum()
        report[quality] = {
            "factorized_bits_per_symbol": float(-(counts.sum(1) * np.log2(base)).sum() / n_symbols),
            "context_bits_per_symbol": float(-(counts * np.log2(freqs / 2**PRECISION)).sum() / n_symbols),
        }
    codec.weights_sha256 = None
    return report
