"""``wavelatent evaluate`` and ``wavelatent bench``: argument parsing and calls into the library.

``add_parsers(sub)`` adds both subcommands to the main parser's subparsers and returns their
handlers keyed by command name; each handler takes the parsed namespace and returns an exit code.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

EVALUATE_EPILOG = """examples:
  wavelatent evaluate ../shared/data/images/kodak -o eval/kodak --reference ../shared/data/reference/kodak
  wavelatent evaluate photos/ -o eval/quick --limit 4 --max-size 256 --baselines jpeg,webp
  wavelatent evaluate photos/ -o eval/mine --presets none --weights runs/rgb16/last.safetensors --jobs 2
"""

BENCH_EPILOG = """examples:
  wavelatent bench ../shared/data/images/kodak --limit 4 --threads 1,2
  wavelatent bench photo.png --presets image-rgb-16x --repeats 3 --json bench.json
"""


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [s.strip() for s in value.split(",") if s.strip()]
    return [] if items == ["none"] else items


def add_parsers(sub) -> dict[str, Callable]:
    """Add ``evaluate`` and ``bench`` to ``sub`` (an argparse subparsers action)."""
    import argparse

    fmt = argparse.RawDescriptionHelpFormatter
    e = sub.add_parser("evaluate", help="rate-distortion evaluation against JPEG/WebP/AVIF", epilog=EVALUATE_EPILOG,
                       formatter_class=fmt, description=(
        "Code every image of a folder with every quality of wavelatent presets/weights and of baseline codecs; "
        "write per-codec JSON (CompressAI schema), a CSV of every measurement, RD plots, a BD table and "
        "report.html to OUT. bpp comes from the bytes each codec returns."))
    e.add_argument("folder", help="folder of images (recursive) or one image")
    e.add_argument("-o", "--out", required=True, help="output folder")
    e.add_argument("-p", "--presets", help="comma-separated presets (default: every shipped RGB preset; 'none')")
    e.add_argument("-w", "--weights", action="append", default=[], help="a .safetensors weights file (repeatable)")
    e.add_argument("--baselines", help="comma-separated: jpeg,webp,avif,jxl or none "
                   "(default: jpeg,webp,avif, plus jxl if pillow-jxl-plugin is installed)")
    e.add_argument("--reference", help="folder of CompressAI-schema *.json results to overlay (dashed)")
    e.add_argument("--anchor", default="jpeg", help="codec the BD table compares against (default: jpeg)")
    e.add_argument("--bd-method", choices=("cubic", "pchip"), default="cubic",
                   help="Bjontegaard interpolation: cubic fit (VCEG-M33) or piecewise cubic (default: cubic)")
    e.add_argument("-j", "--jobs", type=int, default=1, help="worker processes over images (1 torch thread each)")
    e.add_argument("--limit", type=int, help="only the first N images")
    e.add_argument("--max-size", type=int, help="centre-crop images to at most this many pixels per side")
    e.add_argument("-f", "--force", action="store_true", help="overwrite a report already in OUT")
    e.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    b = sub.add_parser("bench", help="encode/decode throughput vs JPEG and WebP", epilog=BENCH_EPILOG,
                       formatter_class=fmt, description=(
        "Encode (array -> bytes) and decode (bytes -> array) throughput in MP/s of wavelatent presets at their "
        "default quality and of Pillow JPEG and WebP at quality 75, measured in the same run, as the median of "
        "--repeats passes after --warmup; with peak memory, parameters and MACs per pixel."))
    b.add_argument("folder", help="folder of images (recursive) or one image")
    b.add_argument("-p", "--presets", help="comma-separated presets (default: every shipped RGB preset; 'none')")
    b.add_argument("-w", "--weights", action="append", default=[], help="a .safetensors weights file (repeatable)")
    b.add_argument("--threads", dest="bench_threads", default="1",
                   help="torch threads, comma-separated to measure several (default: 1)")
    b.add_argument("--repeats", type=int, default=5, help="timed passes; the median is reported (default: 5)")
    b.add_argument("--warmup", type=int, default=1, help="untimed passes first (default: 1)")
    b.add_argument("--limit", type=int, help="only the first N images")
    b.add_argument("--max-size", type=int, help="centre-crop images to at most this many pixels per side")
    b.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    b.add_argument("--json", help="also write the results to this JSON file")
    return {"evaluate": cmd_evaluate, "bench": cmd_bench}


def _check_folder(path: str) -> None:
    from ..errors import InputError

    if not Path(path).exists():
        raise InputError(f"{path}: no such file or folder")


def cmd_evaluate(a) -> int:
    from ..evaluate.run import default_codecs, evaluate

    _check_folder(a.folder)
    codecs = default_codecs(_csv(a.presets), a.weights, _csv(a.baselines))
    result = evaluate(a.folder, a.out, codecs, jobs=a.jobs, progress=a.progress, limit=a.limit,
                      max_size=a.max_size, reference=a.reference, anchor=a.anchor, bd_method=a.bd_method,
                      force=a.force)
    for name, doc in result.curves.items():
        res = doc["results"]
        pts = ", ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(res["bpp"], res["psnr-rgb"])
                        if b is not None and p is not None)
        print(f"{name:<24} bpp/PSNR-RGB: {pts}")
    for r in result.bd:
        if r["codec"] != r["anchor"]:
            rate, dpsnr = r["bd_rate_psnr_rgb"], r["bd_psnr_rgb"]
            print(f"BD vs {r['anchor']}: {r['codec']:<24} BD-rate "
                  + ("n/a" if rate != rate else f"{rate:+.1f} %") + "  BD-PSNR "
                  + ("n/a (no overlap)" if dpsnr != dpsnr else f"{dpsnr:+.2f} dB"))
    print(f"report: {result.files['html']}", file=sys.stderr)
    return 0


def cmd_bench(a) -> int:
    from ..bench import bench
    from ..errors import InputError

    _check_folder(a.folder)
    try:
        threads = [int(t) for t in a.bench_threads.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--threads takes comma-separated integers, got {a.bench_threads!r}") from None
    result = bench(a.folder, _csv(a.presets), threads, a.repeats, a.warmup, weights=a.weights, memory=a.memory,
                   limit=a.limit, max_size=a.max_size)
    print(result.table())
    if a.json:
        Path(a.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {a.json}", file=sys.stderr)
    return 0
