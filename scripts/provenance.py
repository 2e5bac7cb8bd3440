"""Add a ``provenance`` block to a results JSON file (or print one): the command that made it,
machine, CPU count, torch threads, load average, git commit and the sha256 of every shipped weights file.

    python scripts/provenance.py RESULTS.json --command "..." --threads N [--started UNIX_TIME]

Used by ``scripts/regenerate_figures.sh`` after each measurement, so that every README figure
points at a file that says how, where and with which weights it was produced.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance(command: str, threads: int | None) -> dict:
    import torch

    weights = sorted((ROOT / "src" / "wavelatent" / "weights").glob("*.safetensors"))
    return {
        "command": command,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_src": bool(_git("status", "--porcelain", "--", "src")),
        "machine": {"cpu": _cpu_model(), "arch": platform.machine(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform(), "load_average_1min_at_end": os.getloadavg()[0]},
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "weights_sha256": {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in weights},
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path)
    p.add_argument("--command", required=True)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    doc = json.loads(a.results.read_text())
    doc["provenance"] = provenance(a.command, a.threads)
    tmp = a.results.with_name(a.results.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, a.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
