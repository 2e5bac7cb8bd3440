"""Noise filling: latents that quantized to zero are replaced, on decoding, by noise of the spread
the entropy model and the step imply (as AAC and Opus fill empty bands), so that bands whose
coefficients all fell in the zero bin do not decode as spectral holes.

Everything that decides the noise is an integer or follows from integers, so every machine
draws the same noise (the decoded signal then agrees up to float rounding):

* the spread: per latent channel, from the codec's frozen integer frequency table (the factorized
  prior) and the step: a Laplace density fitted to ``P(q = +-1) / P(q = 0)``, restricted to the zero
  bin ``[-step/2, step/2]``; its standard deviation times :data:`GAIN`;
* the values: a counter-based generator (splitmix64's finalizer) keyed by a 32-bit seed, a row
  (``b * K + k`` for latent channel ``k`` of group/batch item ``b``) and the latent position, so a
  value never depends on how a file is cut into chunks; uniform in ``+-sqrt(3) std``, which stays
  inside the zero bin (a filled latent quantizes to zero again).

Measured on held-out music with ``audio-stereo-5x`` (``results/audio/music/``): the full implied
spread over-fills (the static table ignores local activity and quiet passages); half of it lowers
the log-spectral distance the most, for ~0.3 dB of waveform SNR.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GAIN", "uniform", "zero_bin_std"]

GAIN = 0.5
"""Noise standard deviation as a fraction of the zero bin's implied one."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def zero_bin_std(freqs: np.ndarray, step: float, gain: float = GAIN) -> np.ndarray:
    """Noise std ``[C]`` (float64, latent units) from integer frequencies ``[C, 2Q + 1]`` (symbol ``q`` at
    index ``q + Q``) and the quantization step.

    With ``t = exp(-step / (2 b))`` for a Laplace density of scale ``b``, ``P(1) / P(0) = t (1 + t) / 2``;
    ``t`` follows in closed form, and the variance of the density restricted to ``[-h, h]``
    (``h = step / 2``, ``a = -ln t``) is ``h^2 (2 - (a^2 + 2a + 2) e^-a) / (a^2 (1 - e^-a))``
    (``h^2 / 3``, uniform, as ``a -> 0``, i.e. when ``P(1) >= P(0)``).
    """
    f = np.asarray(freqs, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] % 2 != 1:
        raise ValueError(f"frequencies must be [C, 2Q + 1], got {f.shape}")
    C, n = f.shape
    h = step / 2.0
    if n < 3:
        return np.zeros(C)
    Q = n // 2
    p0 = f[:, Q]
    p1 = (f[:, Q - 1] + f[:, Q + 1]) / 2.0
    ratio = np.minimum(p1 / np.maximum(p0, 1e-300), 1.0)
    t = (np.sqrt(1.0 + 8.0 * ratio) - 1.0) / 2.0  # in [0, 1]
    a = -np.log(np.maximum(t, 1e-300))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(-a)
        var = h * h * (2.0 - (a * a + 2.0 * a + 2.0) * e) / (a * a * (1.0 - e))
    var = np.where(a < 1e-3, h * h / 3.0, var)  # the closed form loses precision near uniform
    var = np.where(t <= 0, 0.0, var)  # P(1) = 0: a point mass at zero
    return gain * np.sqrt(np.clip(var, 0.0, h * h / 3.0))


def uniform(seed: int, rows: int, start: int, count: int, row0: int = 0) -> np.ndarray:
    """Uniform values in ``[-1/2, 1/2)`` ``[rows, count]`` (float64) for rows ``row0 .. row0 + rows - 1`` and
    positions ``start .. start + count - 1`` (``start >= 0``); a pure function of the integers."""
    if start < 0 or count < 0 or rows < 0:
        raise ValueError("positions and rows must be non-negative")
    r = np.arange(row0, row0 + rows, dtype=np.uint64)[:, None]
    p = np.arange(start, start + count, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = ((np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)) | r) * _GOLDEN + p * np.uint64(0xD1B54A32D192ED03)
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 - 0.5
