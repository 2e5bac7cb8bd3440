"""Where a result came from: command, git commit, machine, threads and library versions.

Every results file a command writes carries one of these blocks, so a figure can be traced to
the run, the code and the weights that made it (weights hashes are added by the caller, who
knows which codecs it used).
"""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["provenance", "git_commit", "machine"]

_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_commit() -> dict:
    """``{"git_commit", "git_dirty_src"}`` of the checkout this package runs from; where it runs from a
    copy without git (a remote machine), ``$WAVELATENT_GIT_COMMIT`` if set, else "unknown"."""
    commit = _git("rev-parse", "HEAD")
    if commit == "unknown" and os.environ.get("WAVELATENT_GIT_COMMIT"):  # a copy of the tree without .git
        return {"git_commit": os.environ["WAVELATENT_GIT_COMMIT"], "git_dirty_src": None,
                "git_commit_from": "WAVELATENT_GIT_COMMIT"}
    dirty = bool(_git("status", "--porcelain", "--", "src")) if commit != "unknown" else None
    return {"git_commit": commit, "git_dirty_src": dirty}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """CPU model, architecture, CPU count, platform, 1-minute load average, and the GPU if torch sees one."""
    info = {"cpu": _cpu_model(), "arch": platform.machine(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "load_average_1min": os.getloadavg()[0]}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def provenance(command: str | None = None, threads: int | None = None, **extra) -> dict:
    """A provenance block: ``command`` (default: this process's argv), commit, machine, threads,
    Python/torch versions, UTC time, plus ``extra`` keys (e.g. ``weights_sha256``)."""
    import torch

    return {
        "command": command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        **git_commit(),
        "machine": machine(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
