"""Encode and decode speed of this checkout against another git revision, interleaved pass by pass.

    python benchmarks/ab_speed.py --base abad340                     # image-rgb-16x, 12 Kodak images
    python benchmarks/ab_speed.py --base HEAD~3 --preset image-rgb-4x --passes 21
    python benchmarks/ab_speed.py --base abad340 --passes 21 --out results/entropy/ab_speed.json

Whole benchmark runs on these shared cores move by 10 % and more, so a speed change of a few percent
is measured here as an A/B: two worker processes, one importing this checkout's ``src`` and one the
base revision's (``git archive``), each with its codec loaded and images in memory, time one pass over
the images in turn (1 thread for torch and numpy's BLAS), so both see the same machine; each side's
fastest pass counts. The workers also report whether they write the same files (sha256 per image).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def worker(preset: str, images: int) -> None:
    """Serve timed passes on stdin/stdout: 'encode' or 'decode' -> seconds of one pass; 'quit'."""
    import torch

    import wavelatent as wl
    from wavelatent.data import list_images, load_images
    from wavelatent.models import load_codec

    torch.set_num_threads(1)
    ims = load_images(list_images(DATA / "images" / "kodak")[:images], 3)
    codec = load_codec(preset)
    blobs = [wl.compress(im, codec) for im in ims]
    for b in blobs:
        wl.decompress(b, codec)  # warm up
    jobs = {"encode": (lambda im: wl.compress(im, codec), ims), "decode": (lambda b: wl.decompress(b, codec), blobs)}
    print(json.dumps({"files": [hashlib.sha256(b).hexdigest() for b in blobs], "bytes": sum(map(len, blobs)),
                      "megapixels": sum(im.shape[0] * im.shape[1] for im in ims) / 1e6}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        if name == "quit":
            return
        fn, items = jobs[name]
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        print(time.perf_counter() - t0, flush=True)


def start(src: Path, preset: str, images: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, __file__, "--worker", "--preset", preset, "--images", str(images)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="HEAD", help="git revision to compare this checkout with (default HEAD)")
    p.add_argument("--preset", default="image-rgb-16x")
    p.add_argument("--images", type=int, default=12, help="Kodak images per pass")
    p.add_argument("--passes", type=int, default=15, help="timed passes per side and direction (the fastest counts)")
    p.add_argument("--out", type=Path, help="also write the figures here (JSON with provenance)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.preset, a.images)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", a.base, "src"], capture_output=True)
        if got.returncode:
            print(f"ab_speed: cannot read src at {a.base!r}: {got.stderr.decode(errors='replace').strip()}", file=sys.stderr)
            return 2
        archive = got.stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            # our own repository's files; the "data" filter where this Python has it (3.11.4+, 3.10.12+)
            tar.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        sides = {"base": start(Path(tmp) / "src", a.preset, a.images), "this": start(ROOT / "src", a.preset, a.images)}
        first = {name: w.stdout.readline() for name, w in sides.items()}
        if not all(first.values()):  # a worker failed to start (its error went to stderr)
            for w in sides.values():
                w.kill()
            print(f"ab_speed: a worker failed ({', '.join(n for n, line in first.items() if not line)})", file=sys.stderr)
            return 1
        info = {name: json.loads(line) for name, line in first.items()}
        best = {(name, job): float("inf") for name in sides for job in ("encode", "decode")}
        for _ in range(a.passes):
            for job in ("encode", "decode"):
                for name, w in sides.items():
                    w.stdin.write(job + "\n")
                    w.stdin.flush()
                    best[name, job] = min(best[name, job], float(w.stdout.readline()))
        for w in sides.values():
            w.stdin.write("quit\n")
            w.stdin.flush()
            w.wait()
    n = a.images
    same = sum(x == y for x, y in zip(info["base"]["files"], info["this"]["files"]))
    result = {"preset": a.preset, "images": n, "passes": a.passes, "base": a.base, "threads": 1,
              "identical_files": same, "bytes": {name: info[name]["bytes"] for name in sides}}
    print(f"{a.preset}, {n} Kodak images, fastest of {a.passes} interleaved passes, 1 thread; base = {a.base}")
    for job in ("encode", "decode"):
        b, t = best["base", job] / n * 1e3, best["this", job] / n * 1e3
        result[job] = {"base_ms": b, "this_ms": t, "change": t / b - 1}
        print(f"{job}: base {b:.3f} ms, this checkout {t:.3f} ms per image ({100 * (t / b - 1):+.1f} %)")
    print(f"identical files: {same} of {n} (bytes: base {info['base']['bytes']}, this {info['this']['bytes']})")
    if a.out:
        sys.path.insert(0, str(ROOT / "scripts"))
        from provenance import provenance

        from wavelatent.io.files import atomic_write_bytes

        result["provenance"] = provenance("python benchmarks/ab_speed.py " + " ".join(argv or sys.argv[1:]), 1)
        atomic_write_bytes(a.out, (json.dumps(result, indent=1) + "\n").encode(), force=True)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
