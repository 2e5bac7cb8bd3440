"""One table of an evaluation: per codec and point, dimensionality reduction, bpp, PSNR, MS-SSIM and
encode/decode throughput, as Markdown (``summary.md``, printed by ``wavelatent evaluate``)."""
from __future__ import annotations

import math
from pathlib import Path


def summary_rows(curves: dict[str, dict], rows: list[dict]) -> list[dict]:
    """Per codec (in order) and point: ``codec``, ``point``, ``reduction`` (signal values per latent
    value, ``None`` for codecs without latents), means over images of ``bpp``, ``psnr_rgb`` and
    ``ms_ssim`` (from the JSON curves), and ``encode_mps`` / ``decode_mps`` = total megapixels /
    total seconds over all images (wall clock on this machine, as measured by the evaluation)."""
    out = []
    for name, doc in curves.items():
        res = doc["results"]
        for i, p in enumerate(doc["meta"]["points"]):
            rs = [r for r in rows if r["codec"] == name and r["param"] == p]
            mp = sum(r["width"] * r["height"] for r in rs) / 1e6
            enc, dec = sum(r["encode_s"] for r in rs), sum(r["decode_s"] for r in rs)
            out.append({"codec": name, "point": p, "reduction": doc.get("reduction"), "bpp": res["bpp"][i],
                        "psnr_rgb": res["psnr-rgb"][i], "ms_ssim": res["ms-ssim-rgb"][i],
                        "encode_mps": mp / enc if enc > 0 else None, "decode_mps": mp / dec if dec > 0 else None})
    return out


def _f(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def format_summary(table: list[dict]) -> str:
    """:func:`summary_rows` as a Markdown table."""
    lines = ["| codec | point | reduction | bpp | PSNR-RGB dB | MS-SSIM | enc MP/s | dec MP/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table:
        red = f"{r['reduction']:g}x" if r["reduction"] else "n/a"
        lines.append(f"| {r['codec']} | {r['point']} | {red} | {_f(r['bpp'], '.3f')} | {_f(r['psnr_rgb'], '.2f')} | "
                     f"{_f(r['ms_ssim'], '.4f')} | {_f(r['encode_mps'], '.2f')} | {_f(r['decode_mps'], '.2f')} |")
    return "\n".join(lines)


def write_summary(path: Path, curves: dict[str, dict], rows: list[dict]) -> Path:
    path.write_text(format_summary(summary_rows(curves, rows)) + "\n")
    return path
