"""What pairing the grid model's scale buckets would trade: rANS groups against bytes (not shipped).

    python benchmarks/paired_buckets.py            # ~10 s; writes results/entropy/paired_buckets.json

The grid model (``entropy/grid.py``) codes one rANS call per (pass, channel, table) group, and a call
costs about as much as coding a few dozen symbols, so fewer tables make faster coding. Here the
shipped ``image-rgb-16x`` symbols at its default quality are mapped to tables in two ways:

* ``version 2``: the shipped model's map (:func:`wavelatent.entropy.grid.context_map` of version 2:
  40 buckets, and a second table for predictions near an integer in buckets 7-12; 46 tables);
* ``paired``: shifted buckets ``2m`` and ``2m + 1`` share a table, and the pairs 3-6 (buckets 6-13)
  take the near-integer second table (24 tables).

Both take the shifts the shipped encoder picks, and both get tables fitted the same way on the same
training photos (every file of ``images/train`` but every 5th; residual histograms per table with
0.5 symbols of uniform prior each); scored on the photos left out and on Kodak by ideal code length
(so no header or rANS termination bytes) and by the number of (pass, channel, table) groups per
image, which is the number of rANS calls per file.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PRESET = "image-rgb-16x"


def paired_map() -> np.ndarray:
    """Table of each (fraction quarter, shifted bucket) when buckets go in pairs: int ``[4, BUCKETS]``."""
    from wavelatent.entropy.grid import BUCKETS

    rows = np.tile(np.arange(BUCKETS) // 2, (4, 1))
    lo, hi = 3, 7
    rows[1:3, 2 * lo : 2 * hi] = BUCKETS // 2 + np.arange(2 * lo, 2 * hi) // 2 - lo
    return rows


def coded(codec, quality: int, images: list) -> list[tuple[np.ndarray, ...]]:
    """Per image: (step, shifted bucket, fraction quarter, residual index) of every symbol, with the shifts
    the shipped encoder picks."""
    from wavelatent.entropy import grid
    from wavelatent.pixels import encode_image_symbols

    t = codec.grid_tables(quality)
    C, Q = t.check()
    out = []
    for im in images:
        step, k, b, quarter, r = grid.coded_symbols(encode_image_symbols(codec, im, quality), t)
        shifts = grid.choose_shifts(k, b, r, C, t.code_lengths(), Q, quarter=quarter, version=t.version)
        shifted = np.clip(b + shifts[k], 0, grid.BUCKETS - 1)
        out.append((step.astype(np.int64), shifted, quarter, r.astype(np.int64) + 2 * Q))
    return out


def score(fit: list, sets: dict, table_map: np.ndarray, N: int) -> dict:
    """Ideal bytes and groups per image of each set under tables of ``table_map`` fitted on ``fit``."""
    rows = int(table_map.max()) + 1
    counts = np.zeros((rows, N))
    for _, sb, quarter, r in fit:
        np.add.at(counts, (table_map[quarter, sb], r), 1)
    p = counts + 0.5 / N
    p /= p.sum(1, keepdims=True)
    lengths = -np.log2(p)
    out = {}
    for name, items in sets.items():
        bits = sum(lengths[table_map[q, sb], r].sum() for _, sb, q, r in items)
        groups = [len(np.unique(step * rows + table_map[q, sb])) for step, sb, q, _ in items]
        out[name] = {"tables": rows, "ideal_bytes_per_image": bits / 8 / len(items), "groups_per_image": float(np.mean(groups))}
    return out


def main() -> int:
    import torch

    from wavelatent.data import list_images, load_images
    from wavelatent.entropy.grid import context_map
    from wavelatent.models import load_codec
    from wavelatent.train.grid import HOLDOUT, fit_files

    torch.set_num_threads(1)
    started = time.time()
    codec = load_codec(PRESET)
    quality = codec.config.default_quality
    train = list_images(DATA / "images" / "train")
    fit = coded(codec, quality, load_images(fit_files(train, HOLDOUT), 3))
    sets = {"held-out photos": coded(codec, quality, load_images(train[::HOLDOUT], 3)),
            "kodak": coded(codec, quality, load_images(list_images(DATA / "images" / "kodak"), 3))}
    N = 4 * codec.config.max_symbol(quality) + 1
    result = {"preset": PRESET, "quality": quality, "fit_images": len(fit),
              "version 2": score(fit, sets, context_map(2).astype(np.int64), N),
              "paired": score(fit, sets, paired_map(), N)}
    for name in sets:
        v2, pa = result["version 2"][name], result["paired"][name]
        result.setdefault("paired_vs_version_2", {})[name] = {
            "bytes": pa["ideal_bytes_per_image"] / v2["ideal_bytes_per_image"],
            "groups": pa["groups_per_image"] / v2["groups_per_image"]}
        print(f"{name:16s} version 2: {v2['ideal_bytes_per_image']:.0f} bytes, {v2['groups_per_image']:.0f} groups per image; "
              f"paired: {pa['ideal_bytes_per_image']:.0f} bytes ({100 * (pa['ideal_bytes_per_image'] / v2['ideal_bytes_per_image'] - 1):+.2f} %), "
              f"{pa['groups_per_image']:.0f} groups ({100 * (pa['groups_per_image'] / v2['groups_per_image'] - 1):+.1f} %)")
    sys.path.insert(0, str(ROOT / "scripts"))
    from provenance import provenance

    from wavelatent.io.files import atomic_write_bytes

    result["provenance"] = provenance("python benchmarks/paired_buckets.py", 1)
    result["seconds"] = time.time() - started
    out = ROOT / "results" / "entropy" / "paired_buckets.json"
    atomic_write_bytes(out, (json.dumps(result, indent=1) + "\n").encode(), force=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
