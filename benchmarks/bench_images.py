"""Throughput of wavelatent image presets against Pillow JPEG and WebP (quality 75) on Kodak.

Every codec is measured in the same run on the same images, so the ratio columns compare like
with like on this machine; see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "kodak"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default=str(KODAK), help=f"folder or image (default: {KODAK})")
    p.add_argument("--presets", default=None, help="comma-separated presets (default: every shipped RGB preset)")
    p.add_argument("--weights", action="append", default=[], help="extra .safetensors weights (repeatable)")
    p.add_argument("--threads", default="1", help="torch threads, comma-separated (default: 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)

    from wavelatent.bench import bench
    from wavelatent.errors import WavelatentError

    presets = None if a.presets is None else [s for s in a.presets.split(",") if s and s != "none"]
    try:
        result = bench(a.images, presets, [int(t) for t in a.threads.split(",")], a.repeats, a.warmup,
                       weights=a.weights, memory=a.memory, limit=a.limit)
    except WavelatentError as e:
        print(f"bench_images: error: {e}", file=sys.stderr)
        return 1
    print(result.table())
    if a.json:
        Path(a.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
