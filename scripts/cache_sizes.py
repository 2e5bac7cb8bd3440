"""Bytes of the entropy-coded latent caches behind the README's cache figures, from the shards written.

    python scripts/cache_sizes.py [--out results/learn/cache_sizes.json]

Builds, in a temporary folder, the coded caches of the Imagenette training split (``image-rgb-16x``,
default quality, 128 px: the README's "N x smaller than the JPEGs") and of the spoken digits
(``audio-mono-2x``, 8,192 samples per clip), and writes each one's shard bytes, bytes per sample,
the source files' bytes and the ratio, with provenance.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "learn" / "cache_sizes.json")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    from wavelatent.data.cache import build_cache

    jobs = [
        ("imagenette-train", DATA / "imagenette" / "train", "image-rgb-16x", {"labels": "from-folders"}),
        ("fsdd", DATA / "audio" / "fsdd", "audio-mono-2x", {"labels": "from-prefix", "size": 8192}),
    ]
    out: dict = {"caches": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, src, preset, opts in jobs:
            t0 = time.perf_counter()
            result = build_cache(src, Path(tmp) / name, preset, storage="coded", jobs=a.jobs, progress=False, **opts)
            seconds = time.perf_counter() - t0
            shard_bytes = sum(s["bytes"] for s in result.index["shards"])
            count = result.index["samples"]
            source_bytes = sum(s["bytes"] for s in result.index["sources"])
            row = {"name": name, "preset": preset, "quality": result.index["quality"], "samples": count,
                   "shard_bytes": shard_bytes, "bytes_per_sample": shard_bytes / count,
                   "source_bytes": source_bytes, "source_over_cache": source_bytes / shard_bytes,
                   "seconds": seconds, "jobs": a.jobs, **{k: v for k, v in opts.items()}}
            out["caches"].append(row)
            print(f"{name}: {count} samples, {shard_bytes:,} bytes ({shard_bytes / count:.0f} per sample), "
                  f"sources {source_bytes:,} bytes: {source_bytes / shard_bytes:.1f}x smaller, {seconds:.1f} s")
    sys.path.insert(0, str(ROOT / "scripts"))
    from provenance import provenance

    out["provenance"] = provenance(f"python scripts/cache_sizes.py --jobs {a.jobs}", 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
