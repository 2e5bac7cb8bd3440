"""Bjontegaard delta rate and delta PSNR between two rate-distortion curves.

Two interpolations, both over the interval where the curves overlap:

* ``"cubic"`` (default): the original method of G. Bjontegaard, VCEG-M33 (2001): a least-squares
  polynomial of degree 3 (fewer when a curve has fewer than 4 points: ``min(3, n - 1)``) of
  log-rate as a function of distortion (BD-rate) or of distortion as a function of log-rate
  (BD-PSNR), integrated exactly.
* ``"pchip"``: piecewise cubic Hermite interpolation (Fritsch-Carlson monotone slopes, as in
  SciPy's ``PchipInterpolator``), the variant of VCEG-AL22 / JVET common test conditions; it goes
  through every point, so it never overshoots between them.

``bd_rate`` is the average rate difference of ``test`` against ``anchor`` in percent at equal
quality (negative = the test codec needs fewer bits); ``bd_psnr`` the average quality difference in
the distortion's unit (dB for PSNR) at equal rate. Curves that do not overlap give ``nan``.
Distortion may be any "higher is better" measure (PSNR, MS-SSIM in dB).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import InputError

METHODS = ("cubic", "pchip")


def _prepare(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points sorted by ``x``, duplicate ``x`` averaged."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"a rate-distortion curve needs two equal-length lists, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ux, inverse = np.unique(x, return_inverse=True)
    uy = np.bincount(inverse, weights=y) / np.bincount(inverse)
    return ux, uy


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """The integral over ``[lo, hi]`` of the interpolant of ``y(x)``."""
    if method == "cubic":
        deg = min(3, len(x) - 1)
        # Centre x for a well-conditioned fit; the integral is exact for the fitted polynomial.
        c = x.mean()
        P = np.polynomial.Polynomial(np.polynomial.polynomial.polyfit(x - c, y, deg)).integ()
        return float(P(hi - c) - P(lo - c))
    if method == "pchip":
        return _pchip_integral(x, y, lo, hi)
    raise InputError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0: float, h1: float, d0: float, d1: float) -> float:
        s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(s) != np.sign(d0):
            return 0.0
        if np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
            return 3 * d0
        return s

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        y0, y1, d0, d1 = y[k], y[k + 1], d[k] * h, d[k + 1] * h
        # p(t) = c3 t^3 + c2 t^2 + c1 t + c0 on t = (x - x_k) / h in [0, 1] (cubic Hermite).
        c3 = 2 * y0 + d0 - 2 * y1 + d1
        c2 = -3 * y0 - 2 * d0 + 3 * y1 - d1
        c1, c0 = d0, y0

        def F(t: float) -> float:
            return ((c3 / 4 * t + c2 / 3) * t + c1 / 2) * t * t + c0 * t

        total += h * (F((b - x[k]) / h) - F((a - x[k]) / h))
    return total


def _delta(xa, ya, xt, yt, method: str) -> float:
    """Average of ``yt(x) - ya(x)`` over the overlap of the two curves' ``x`` ranges."""
    xa, ya = _prepare(xa, ya)
    xt, yt = _prepare(xt, yt)
    if len(xa) < 2 or len(xt) < 2:
        return math.nan
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if not hi > lo:
        return math.nan
    return float((_integral(xt, yt, lo, hi, method) - _integral(xa, ya, lo, hi, method)) / (hi - lo))


def bd_rate(
    rate_anchor: Sequence[float],
    dist_anchor: Sequence[float],
    rate_test: Sequence[float],
    dist_test: Sequence[float],
    *,
    method: str = "cubic",
) -> float:
    """Bjontegaard delta rate of ``test`` vs ``anchor`` in percent (negative = fewer bits)."""
    ra, rt = np.asarray(rate_anchor, float), np.asarray(rate_test, float)
    if (ra <= 0).any() or (rt <= 0).any():
        raise InputError("rates must be positive for a BD-rate")
    avg = _delta(dist_anchor, np.log(ra), dist_test, np.log(rt), method)
    return math.nan if math.isnan(avg) else (math.exp(avg) - 1.0) * 100.0


def bd_psnr(
    rate_anchor: Sequence[float],
    dist_anchor: Sequence[float],
    rate_test: Sequence[float],
    dist_test: Sequence[float],
    *,
    method: str = "cubic",
) -> float:
    """Bjontegaard delta distortion (dB for PSNR) of ``test`` vs ``anchor`` at equal rate."""
    ra, rt = np.asarray(rate_anchor, float), np.asarray(rate_test, float)
    if (ra <= 0).any() or (rt <= 0).any():
        raise InputError("rates must be positive for a BD-PSNR")
    return float(_delta(np.log(ra), dist_anchor, np.log(rt), dist_test, method))


def ms_ssim_db(values: Sequence[float]) -> list[float]:
    """MS-SSIM on a dB scale, ``-10 log10(1 - ms_ssim)``, where BD measures are meaningful."""
    out = []
    for v in values:
        v = float(v) if v is not None else math.nan
        out.append(math.inf if v >= 1 else (-10 * math.log10(1 - v) if v == v else math.nan))
    return out


def bd_table(curves: dict[str, dict[str, list[float]]], anchor: str, *, method: str = "cubic") -> list[dict]:
    """BD measures of every curve against ``anchor``.

    ``curves``: codec name -> CompressAI-style results (``bpp``, ``psnr-rgb``, ``psnr-y``,
    ``ms-ssim-rgb``). Rows: ``codec``, ``bd_rate_psnr_rgb`` (%), ``bd_psnr_rgb`` (dB),
    ``bd_rate_psnr_y`` (%), ``bd_rate_ms_ssim`` (%, on MS-SSIM in dB), ``bd_ms_ssim_db`` (dB).
    """
    if anchor not in curves:
        raise InputError(f"anchor {anchor!r} is not among the evaluated codecs ({', '.join(curves)})")
    if method not in METHODS:
        raise InputError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    a = curves[anchor]
    rows = []
    for name, c in curves.items():
        row: dict = {"codec": name, "anchor": anchor, "method": method}
        for key, metric, fn, transform in (
            ("bd_rate_psnr_rgb", "psnr-rgb", bd_rate, None),
            ("bd_psnr_rgb", "psnr-rgb", bd_psnr, None),
            ("bd_rate_psnr_y", "psnr-y", bd_rate, None),
            ("bd_rate_ms_ssim", "ms-ssim-rgb", bd_rate, ms_ssim_db),
            ("bd_ms_ssim_db", "ms-ssim-rgb", bd_psnr, ms_ssim_db),
        ):
            if metric not in c or metric not in a:
                row[key] = math.nan
                continue
            da, dt = a[metric], c[metric]
            if transform is not None:
                da, dt = transform(da), transform(dt)
            da = [math.nan if v is None else v for v in da]
            dt = [math.nan if v is None else v for v in dt]
            row[key] = fn(a["bpp"], da, c["bpp"], dt, method=method)
        rows.append(row)
    return rows
