"""Peak resident memory of one codec, measured in a fresh process.

The parent runs ``python -m wavelatent.bench.memory`` with a JSON spec on stdin: the codec, ``.npy``
images and the torch thread count. The child loads the codec and the images, then codes every image
once (compress, then decompress) and prints ``{"baseline_mb", "peak_mb", "source"}``:
``peak_mb`` is the high-water mark of the whole process (interpreter, libraries, model, images,
coding) and ``peak_mb - baseline_mb`` what coding added on top of the resident set before it.

On Linux the high-water mark is ``VmHWM`` of ``/proc/self/status``, reset before coding by writing
``5`` to ``/proc/self/clear_refs``; ``resource.getrusage().ru_maxrss`` is not used there because
Linux carries it over from the parent across ``fork``/``exec`` (a child of a process that imported
torch would report the parent's peak). Elsewhere ``ru_maxrss`` is the fallback. The child imports
torch only for wavelatent codecs, so Pillow baselines are not charged for it.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

METHOD = ("peak RSS (Linux VmHWM) of a fresh subprocess per codec that codes every image once; peak = whole "
          "process (Python, libraries, model, images), coding = growth of the peak over the resident set before coding")


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(spec: dict, *, timeout: float = 600) -> dict:
    """Run the child on ``spec`` and return its result (``{"error": ...}`` if it failed)."""
    src = str(Path(__file__).resolve().parents[2])  # the folder holding the wavelatent package
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    threads = str(spec.get("threads", 1))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    try:
        proc = subprocess.run([sys.executable, "-m", "wavelatent.bench.memory"], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0]}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no result from the child process"}


def _child() -> None:
    import numpy as np

    spec = json.loads(sys.stdin.read())
    c = spec["codec"]
    if c["kind"] == "wavelatent":
        import torch

        torch.set_num_threads(int(spec.get("threads", 1)))
        from wavelatent.evaluate.codecs import WavelatentCodec

        codec = WavelatentCodec(c["source"])
    elif c["kind"] == "taef2":
        import torch

        torch.set_num_threads(int(spec.get("threads", 1)))
        from wavelatent.evaluate.taef2 import TAEF2Codec

        codec = TAEF2Codec(c["variant"], c["weights_dir"], name=c["name"])
    else:
        from wavelatent.evaluate.codecs import PillowCodec

        codec = PillowCodec(c["name"], c["format"], (c["quality"],), tuple(tuple(o) for o in c["options"]))
    images = [np.load(p) for p in spec["images"]]
    load_peak = _status_mb("VmHWM")
    if load_peak is not None:
        reset = _reset_peak()
        baseline = _status_mb("VmRSS")
        for img in images:
            codec.decompress(codec.compress(img, c["quality"]))
        peak = _status_mb("VmHWM")
        if not reset:  # the mark still holds the loading peak: coding added at most this much
            baseline = load_peak
        result = {"baseline_mb": baseline, "peak_mb": max(peak, load_peak), "coding_peak_mb": peak,
                  "source": "VmHWM" + (" (reset before coding)" if reset else "")}
    else:
        baseline = _maxrss_mb()
        for img in images:
            codec.decompress(codec.compress(img, c["quality"]))
        peak = _maxrss_mb()
        result = {"baseline_mb": baseline, "peak_mb": peak, "coding_peak_mb": peak, "source": "ru_maxrss"}
    print(json.dumps(result))


if __name__ == "__main__":
    _child()
