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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def provenance(command: str, threads: int | None) -> dict:
    """wavelatent's provenance block (:func:`wavelatent.provenance.provenance`) plus the sha256 of
    every shipped weights file, the load average taken at the end."""
    from wavelatent.provenance import provenance as block

    weights = sorted((ROOT / "src" / "wavelatent" / "weights").glob("*.safetensors"))
    doc = block(command, threads, weights_sha256={p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in weights})
    doc["machine"]["load_average_1min_at_end"] = doc["machine"].pop("load_average_1min")
    return doc


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
