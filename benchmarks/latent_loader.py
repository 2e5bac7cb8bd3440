"""Throughput of LatentDataset through a torch DataLoader (samples per second).

    python benchmarks/latent_loader.py CACHE [--workers 2] [--batch-size 256] [--epochs 5] [--crop 16] [--flip] [--json OUT]

Reads a cache made by ``wavelatent cache``; every epoch visits every sample once in random order.
The first epoch (worker start-up, shard loading) is reported apart from the steady state.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch.utils.data import DataLoader

from wavelatent.data import LatentDataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cache")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--crop", type=int, default=None, help="random latent crop (positions); default none")
    p.add_argument("--flip", action="store_true", help="random horizontal flips in latent space")
    p.add_argument("--output", default="latents", choices=("latents", "symbols"))
    p.add_argument("--weights", help="weights file for coded caches of unshipped weights")
    p.add_argument("--json", help="also write the measurement to this JSON file")
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = LatentDataset(a.cache, output=a.output, crop=a.crop, random_crop=a.crop is not None, flip=a.flip,
                       weights=a.weights)
    loader = DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                        persistent_workers=a.workers > 0, generator=torch.Generator().manual_seed(0))
    times = []
    for epoch in range(a.epochs):
        t = time.perf_counter()
        n = 0
        for x, _ in loader:
            n += x.shape[0]
        times.append(time.perf_counter() - t)
        print(f"epoch {epoch + 1}: {n} samples of {tuple(x.shape[1:])} {x.dtype} in {times[-1]:.2f} s "
              f"= {n / times[-1]:,.0f} samples/s")
    steady = times[1:] or times
    rate = len(ds) * len(steady) / sum(steady)
    print(f"{ds.index['storage']} cache, {a.workers} workers, batch {a.batch_size}: "
          f"{rate:,.0f} samples/s steady (first epoch {len(ds) / times[0]:,.0f})")
    if a.json:
        doc = {"cache": os.path.abspath(a.cache), "storage": ds.index["storage"], "samples": len(ds),
               "sample_shape": list(x.shape[1:]), "dtype": str(x.dtype), "workers": a.workers,
               "batch_size": a.batch_size, "crop": a.crop, "flip": a.flip, "output": a.output,
               "epoch_seconds": times, "samples_per_s_steady": rate, "samples_per_s_first_epoch": len(ds) / times[0]}
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
