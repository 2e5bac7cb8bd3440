"""Evaluation outputs: CompressAI-schema JSON per codec, CSV, RD plots, BD table, HTML report."""
from __future__ import annotations

import csv
import html
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError

# CompressAI's result keys (results/image/kodak/*.json) plus psnr-y.
RESULT_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "psnr-y", "encoding_time", "decoding_time")
_ROW_KEYS = {"bpp": "bpp", "psnr-rgb": "psnr_rgb", "ms-ssim-rgb": "ms_ssim", "psnr-y": "psnr_y",
             "encoding_time": "encode_s", "decoding_time": "decode_s"}


def finite(v: Any) -> Any:
    """JSON has no inf/nan: write null instead."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def summarize(codec, rows: list[dict], n_images: int, max_size: int | None = None) -> dict:
    """One codec's JSON document: per point, the mean over images of every metric (PSNR averaged
    in dB per image, as CompressAI does; MS-SSIM ignoring images it is undefined for)."""
    points = codec.points()
    results: dict[str, list] = {k: [] for k in RESULT_KEYS}
    scales = []
    for p in points:
        rs = [r for r in rows if r["codec"] == codec.name and r["param"] == p]
        for key in RESULT_KEYS:
            vals = np.array([r[_ROW_KEYS[key]] for r in rs], dtype=np.float64)
            if key == "ms-ssim-rgb":
                vals = vals[np.isfinite(vals)]
            results[key].append(finite(float(vals.mean())) if len(vals) else None)
        scales += [r["ms_ssim_scales"] for r in rs]
    reduction = getattr(codec, "reduction", None)  # signal values per latent value; None: not a latent codec
    return {
        "name": codec.name,
        "description": codec.description,
        "reduction": float(reduction) if reduction else None,
        "results": results,
        "meta": {
            "points": list(points),
            "images": n_images,
            "max_size": max_size,
            "ms_ssim_min_scales": min(scales) if scales else None,
            "timing": "seconds per image, this machine, wall clock",
        },
    }


def write_json(out: Path, curves: dict[str, dict]) -> dict[str, Path]:
    files = {}
    for name, doc in curves.items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        files[f"json:{name}"] = path
    return files


def write_csv(path: Path, rows: list[dict], columns) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def write_bd(path: Path, bd: list[dict]) -> Path:
    path.write_text(json.dumps([{k: finite(v) for k, v in r.items()} for r in bd], indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- references
def load_references(folder: str | os.PathLike, *, log: Callable[[str], None] | None = None) -> list[dict]:
    """CompressAI-schema ``*.json`` files in ``folder`` (not recursive), each with ``source`` set
    to its path; files that do not fit the schema are skipped with a message."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--reference {folder}: no such folder")
    refs = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            res = doc["results"]
            bpp = [float(v) for v in res["bpp"]]
            if not bpp or any(len(res[k]) != len(bpp) for k in res if isinstance(res[k], list)):
                raise ValueError("lists of different lengths")
        except (OSError, ValueError, KeyError, TypeError) as e:
            if log is not None:
                log(f"skipping reference {path}: not a CompressAI results file ({e})")
            continue
        refs.append({"name": str(doc.get("name", path.stem)), "description": str(doc.get("description", "")),
                     "results": res, "source": str(path)})
    if not refs and log is not None:
        log(f"--reference {folder}: no CompressAI results files (*.json) found")
    return refs


# --------------------------------------------------------------------------- plots
_PLOTS = {
    "psnr": ("psnr-rgb", "PSNR (RGB) [dB]", None),
    "msssim": ("ms-ssim-rgb", "MS-SSIM (RGB) [dB] = -10 log10(1 - MS-SSIM)", "db"),
}
_MARKERS = "osD^v<>pXh*P"


def _values(res: dict, key: str, transform: str | None) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([math.nan if v is None else v for v in res.get("bpp", [])], dtype=np.float64)
    y = np.array([math.nan if v is None else v for v in res.get(key, [])], dtype=np.float64)
    if len(y) != len(x):
        return np.array([]), np.array([])
    if transform == "db":
        with np.errstate(divide="ignore", invalid="ignore"):
            y = -10 * np.log10(1 - y)
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep])
    return x[keep][order], y[keep][order]


def plot_rd(out: Path, curves: dict[str, dict], refs: list[dict], *, kinds: dict[str, str] | None = None,
            subtitle: str = "") -> dict[str, Path]:
    """``rd_psnr`` and ``rd_msssim`` as PNG and SVG. Own codecs solid (wavelatent ones thicker and
    on top), references dashed and named with their file. Axes fit the own codecs' points."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas

    kinds = kinds or {}
    files = {}
    for stem, (key, ylabel, transform) in _PLOTS.items():
        fig = Figure(figsize=(10, 6.2), dpi=110, layout="constrained")
        ax = fig.add_subplot()
        own_x, own_y = [], []
        colors = _colors(len(curves))
        for i, (name, doc) in enumerate(curves.items()):
            x, y = _values(doc["results"], key, transform)
            if not len(x):
                continue
            own_x += list(x)
            own_y += list(y)
            wl = kinds.get(name) == "wavelatent"
            ax.plot(x, y, marker=_MARKERS[i % len(_MARKERS)], color=colors[i], linewidth=2.4 if wl else 1.5,
                    markersize=6 if wl else 4.5, label=name, zorder=4 if wl else 3)
        ref_colors = _colors(len(refs), cmap="Dark2")
        for j, ref in enumerate(refs):
            x, y = _values(ref["results"], key, transform)
            if not len(x):
                continue
            ax.plot(x, y, linestyle="--", linewidth=1.2, marker=".", markersize=4, color=ref_colors[j], alpha=0.75,
                    label=f"{ref['name']} (ref: {Path(ref['source']).name})", zorder=2)
        if own_x:
            xmax = max(own_x)
            ax.set_xlim(0, xmax * 1.06 + 1e-9)
            lo, hi = min(own_y), max(own_y)
            pad = max(0.5, 0.05 * (hi - lo))
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("bits per pixel (from the bytes written)")
        ax.set_ylabel(ylabel)
        fig.suptitle(f"Rate-distortion: {ylabel.split(' [')[0]}" + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        for ext in ("png", "svg"):
            path = out / f"rd_{stem}.{ext}"
            fig.savefig(path)
            files[f"plot:{stem}:{ext}"] = path
    return files


def _colors(n: int, cmap: str = "tab10") -> list:
    from matplotlib import colormaps

    if n <= 10 and cmap == "tab10":
        return [colormaps["tab10"](i) for i in range(n)]
    cm = colormaps["tab20" if cmap == "tab10" else cmap]
    return [cm(i % cm.N) for i in range(n)]


# --------------------------------------------------------------------------- HTML
def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def write_html(path: Path, curves: dict[str, dict], bd: list[dict], crops: list[dict], refs: list[dict],
               settings: dict[str, str], notes: list[str], files: dict[str, Path]) -> Path:
    e = html.escape
    parts = _page_head("wavelatent evaluation", settings, notes,
                       ".crops{display:flex;flex-wrap:wrap;gap:12px}.crops figure{margin:0}"
                       ".crops img{width:384px;image-rendering:pixelated}figcaption{font-size:0.85em}")
    parts.append("<h2>Rate-distortion</h2>")
    for stem in _PLOTS:
        if f"plot:{stem}:svg" in files:
            parts.append(f"<p><img src='rd_{stem}.svg' alt='RD plot {stem}' style='max-width:100%'>"
                         f"<br><a href='rd_{stem}.png'>PNG</a></p>")
    for anchor in dict.fromkeys(r["anchor"] for r in bd):
        rows = [r for r in bd if r["anchor"] == anchor]
        parts.append(f"<h2>Bjontegaard deltas against {e(anchor)} ({e(rows[0]['method'])})</h2>"
                     "<p>BD-rate: average bit-rate change at equal quality (negative = fewer bits); BD-PSNR: "
                     "average quality change at equal rate. MS-SSIM measures on its dB scale.</p><table><tr>"
                     "<th>codec</th><th>BD-rate PSNR-RGB %</th><th>BD-PSNR RGB dB</th><th>BD-rate PSNR-Y %</th>"
                     "<th>BD-rate MS-SSIM %</th><th>BD MS-SSIM dB</th></tr>")
        for r in rows:
            parts.append(f"<tr><td>{e(r['codec'])}</td><td>{_fmt(r['bd_rate_psnr_rgb'], 1)}</td>"
                         f"<td>{_fmt(r['bd_psnr_rgb'], 2)}</td><td>{_fmt(r['bd_rate_psnr_y'], 1)}</td>"
                         f"<td>{_fmt(r['bd_rate_ms_ssim'], 1)}</td><td>{_fmt(r['bd_ms_ssim_db'], 2)}</td></tr>")
        parts.append("</table>")
    if bd:
        parts.append("<p><a href='bd.json'>bd.json</a></p>")
    if crops:
        parts.append("<h2>Side by side (centre crop, shown 2x)</h2><div class='crops'>")
        parts += [f"<figure><img src='{e(c['file'])}' alt='{e(c['label'])}'><figcaption>{e(c['label'])}"
                  "</figcaption></figure>" for c in crops]
        parts.append("</div>")
    parts.append("<h2>Codecs (means over images)</h2>")
    for name, doc in curves.items():
        res = doc["results"]
        parts.append(f"<h3>{e(name)}</h3><p>{e(doc['description'])} — <a href='{e(name)}.json'>{e(name)}.json</a>"
                     "</p><table><tr><th>point</th><th>reduction</th><th>bpp</th><th>PSNR-RGB</th><th>PSNR-Y</th>"
                     "<th>MS-SSIM</th><th>encode ms</th><th>decode ms</th></tr>")
        for i, p in enumerate(doc["meta"]["points"]):
            enc, dec = res["encoding_time"][i], res["decoding_time"][i]
            red = doc.get("reduction")
            parts.append(f"<tr><td>{e(str(p))}</td><td>{e(f'{red:g}x' if red else 'n/a')}</td>"
                         f"<td>{_fmt(res['bpp'][i], 4)}</td><td>{_fmt(res['psnr-rgb'][i], 2)}"
                         f"</td><td>{_fmt(res['psnr-y'][i], 2)}</td><td>{_fmt(res['ms-ssim-rgb'][i], 4)}</td>"
                         f"<td>{_fmt(None if enc is None else enc * 1000, 1)}</td>"
                         f"<td>{_fmt(None if dec is None else dec * 1000, 1)}</td></tr>")
        parts.append("</table>")
    if refs:
        parts.append("<h2>Reference curves (dashed; published results on other images/settings and machines)</h2><ul>")
        parts += [f"<li>{e(r['name'])}: {e(r['description'])} — <code>{e(r['source'])}</code></li>" for r in refs]
        parts.append("</ul>")
    parts.append("<p>Every per-image measurement: <a href='results.csv'>results.csv</a>.</p></body></html>\n")
    path.write_text("\n".join(parts))
    return path


# --------------------------------------------------------------------------- machine perceptual quality
def plot_accuracy(out: Path, curves: dict[str, dict], clean_top1: float, rate_key: str = "bpp",
                  subtitle: str = "") -> dict[str, Path]:
    """``accuracy.png`` / ``.svg``: top-1 of the frozen classifier against the rate (log axis) for
    every codec, the clean top-1 and the 1- and 5-point bands as horizontal lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(len(curves))
    for i, (name, doc) in enumerate(curves.items()):
        r = doc["results"]
        pts = sorted((x, 100 * t) for x, t in zip(r[rate_key], r["top1"]) if x is not None and x > 0)
        if not pts:
            continue
        wl = doc.get("kind") == "wavelatent"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=_MARKERS[i % len(_MARKERS)], color=colors[i],
                linewidth=2.4 if wl else 1.3, markersize=6 if wl else 4.5, label=name, zorder=4 if wl else 3,
                linestyle="-" if doc.get("kind") != "no-codec" else ":")
    for d, style in ((0, "-"), (1, "--"), (5, ":")):
        ax.axhline(100 * clean_top1 - d, color="black", linestyle=style, linewidth=0.9, alpha=0.7,
                   label="clean top-1" if d == 0 else f"clean - {d} pt")
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (from the bytes written)" if rate_key == "bpp" else "kbps (from the bytes written)")
    ax.set_ylabel("top-1 of the frozen classifier (%)")
    fig.suptitle("Machine perceptual quality: accuracy on decoded inputs" + (f"\n{subtitle}" if subtitle else ""),
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    files = {}
    for ext in ("png", "svg"):
        path = out / f"accuracy.{ext}"
        fig.savefig(path)
        files[f"plot:accuracy:{ext}"] = path
    return files


def mpq_section(curves: dict[str, dict], clean_top1: float, corr: dict, thresholds: list[dict],
                rate_key: str = "bpp") -> str:
    """The HTML section of a machine-perceptual-quality run: plot, rate thresholds, rank
    correlations and every codec point."""
    e = html.escape
    u = rate_key
    parts = [f"<h2>Machine perceptual quality (clean top-1 {100 * clean_top1:.2f} %)</h2>",
             "<p><img src='accuracy.svg' alt='top-1 against rate' style='max-width:100%'><br>"
             "<a href='accuracy.png'>PNG</a></p>",
             f"<h3>Lowest {e(u)} keeping top-1 within 1 / 5 points of clean</h3><p>measured: a point of the sweep "
             "from which on every higher-rate point stays within; interpolated: log-linear crossing.</p><table><tr>"
             f"<th>codec</th><th>within 1 pt measured</th><th>interpolated</th><th>within 5 pt measured</th>"
             f"<th>interpolated</th><th>best top-1 %</th></tr>"]
    for t in thresholds:
        parts.append(f"<tr><td>{e(t['codec'])}</td><td>{_fmt(t['within1_measured'], 3)}</td>"
                     f"<td>{_fmt(t['within1_interp'], 3)}</td><td>{_fmt(t['within5_measured'], 3)}</td>"
                     f"<td>{_fmt(t['within5_interp'], 3)}</td>"
                     f"<td>{_fmt(None if t['max_top1'] is None else 100 * t['max_top1'], 1)}</td></tr>")
    parts.append("</table><h3>Rank correlation with the top-1 drop (all codec points)</h3><table><tr><th>metric</th>"
                 "<th>Spearman rho</th><th>agreement</th><th>points</th></tr>")
    for v in corr.values():
        parts.append(f"<tr><td>{e(v['label'])}</td><td>{_fmt(v['rho'], 3)}</td><td>{_fmt(v['agreement'], 3)}</td>"
                     f"<td>{v['points']}</td></tr>")
    parts.append("</table><p>agreement = rho with the metric's sign flipped where higher means better (PSNR, "
                 "MS-SSIM, SNR): 1 = ranks the points exactly as the accuracy drop does.</p>")
    for name, doc in curves.items():
        r = doc["results"]
        keys = [k for k in r if k not in ("bytes", "failures")]
        parts.append(f"<h3>{e(name)}</h3><p>{e(doc['description'])} — <a href='{e(name)}.json'>{e(name)}.json</a>"
                     "</p><table><tr><th>point</th>" + "".join(f"<th>{e(k)}</th>" for k in keys)
                     + "<th>failed</th></tr>")
        for i, p in enumerate(doc["meta"]["points"]):
            cells = "".join(f"<td>{_fmt(r[k][i], 4)}</td>" for k in keys)
            parts.append(f"<tr><td>{e(str(p))}</td>{cells}<td>{r['failures'][i]}</td></tr>")
        parts.append("</table>")
        for f in doc["meta"].get("failed_items", [])[:5]:
            parts.append(f"<p>failed: {e(str(f['param']))} on {e(f['item'])}: {e(f['error'])}</p>")
    return "\n".join(parts)


def _page_head(title: str, settings: dict[str, str], notes: list[str], css: str = "") -> list[str]:
    """The opening of a report page: style, title, time, a settings table and the notes."""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}" + css,
        f"</style></head><body><h1>{e(title)}</h1>",
        f"<p>{e(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p><table>",
    ]
    parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in settings.items()]
    parts.append("</table>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return parts


def write_mpq_html(path: Path, curves: dict[str, dict], clean_top1: float, corr: dict, thresholds: list[dict],
                   rate_key: str, settings: dict[str, str], notes: list[str]) -> Path:
    """``report.html`` of ``evaluate --task classify``: settings, notes and :func:`mpq_section`."""
    from ..io.files import atomic_write_bytes

    parts = _page_head("wavelatent evaluation: machine perceptual quality", settings, notes)
    parts.append(mpq_section(curves, clean_top1, corr, thresholds, rate_key))
    parts.append("<p>One row per codec point: <a href='results.csv'>results.csv</a>; analysis: "
                 "<a href='correlation.json'>correlation.json</a>.</p></body></html>\n")
    atomic_write_bytes(path, "\n".join(parts).encode(), force=True)
    return path
