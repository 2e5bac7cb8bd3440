"""rANS coding of integer symbols with per-channel frequency tables (numpy + constriction).

Bitstream: one ``constriction.stream.stack.AnsCoder`` (64-bit state, 32-bit words,
24-bit model precision) holding all channels; channel 0 decodes first, each row in order.
The bytes are the coder's compressed words as little-endian uint32.

Exact tables: constriction's ``Categorical(probabilities, perfect=False)`` quantizes floats
to 24-bit weights with ``w_i = floor(P_{i+1} * s) - floor(P_i * s) + 1``, where ``P_i`` are
cumulative sums of the floats and ``s = (2**24 - N) / sum``. Passing the integer table
``f`` directly gives ``s = 256 - N / 2**16`` and weights that differ from ``256 * f`` by
up to about ``N / 256`` units. We pass ``256 * f - 1`` instead: then ``sum = 2**24 - N``,
``s = 1.0`` exactly, every product is an exact integer in float64, and the coder's model
is exactly ``256 * f / 2**24 = f / 2**16`` -- the table we store is the model that codes.
``tests/test_entropy.py`` checks this by reading the coder's cumulative table back.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..errors import EntropyCodingError
from .tables import PRECISION, check_indices, check_tables

__all__ = ["CODER_PRECISION", "MAX_SYMBOLS", "categorical_models", "constriction_module", "decode", "encode"]

CODER_PRECISION = 24
"""Fixed-point precision of constriction's default ANS coder models."""

MAX_SYMBOLS = 1 << 28
"""Most symbols (all channels together) that :func:`decode` will allocate for."""



def constriction_module():
    try:
        import constriction
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ImportError("wavelatent's entropy coder needs the 'constriction' package") from exc
    return constriction


@contextmanager
def decoding_errors() -> Iterator[None]:
    """Inside, whatever the coder (or the context code around it) raises on bad data becomes an
    EntropyCodingError; also pyo3's PanicException, which is not an Exception."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, EntropyCodingError):
        raise
    except BaseException as exc:
        raise EntropyCodingError(f"rANS data does not decode: {type(exc).__name__}: {exc}") from exc


def require_empty(coder, what: str) -> None:
    """After decoding ``what``, nothing may be left in the coder (else: corrupt data, wrong tables or size)."""
    if not coder.is_empty():
        raise EntropyCodingError(f"rANS data does not match: {what} decoded but the coder is not empty "
                                 "(corrupt data, wrong tables or wrong latent size)")


def categorical_models(freqs: np.ndarray, precision: int = PRECISION) -> list:
    """One concrete constriction model per row of validated ``freqs [C, N]`` (int64) of ``precision``
    bits (at most the coder's 24): the coder's model is exactly ``freqs / 2**precision``."""
    categorical = constriction_module().stream.model.Categorical
    weights = (freqs * (1 << (CODER_PRECISION - precision)) - 1).astype(np.float64)  # exact: see module docstring
    return [categorical(np.ascontiguousarray(row), perfect=False) for row in weights]


def encode(indices: np.ndarray, freqs: np.ndarray) -> bytes:
    """Entropy-code ``indices [C, n]`` (ints in ``[0, N)``), channel ``c`` with ``freqs[c]``.

    ``freqs [C, N]`` are integer tables from :func:`~wavelatent.entropy.quantize_pmf`.
    Returns little-endian uint32 words. Raises EntropyCodingError for bad shapes, symbols
    out of range or invalid tables.
    """
    f = check_tables(freqs)
    q = check_indices(indices, f.shape[0], f.shape[1])
    if q.size == 0 or f.shape[1] == 1:  # nothing to code: a one-symbol table carries no information
        return b""
    coder = constriction_module().stream.stack.AnsCoder()
    models = categorical_models(f)
    # A stack: push the last channel first so that channel 0 pops first; encode_reverse
    # pushes each row back to front so that it decodes front to back.
    for c in range(q.shape[0] - 1, -1, -1):
        coder.encode_reverse(q[c].astype(np.int32), models[c])
    return coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, freqs: np.ndarray, n: int, *, max_symbols: int = MAX_SYMBOLS) -> np.ndarray:
    """Decode ``n`` symbols per channel from :func:`encode`'s bytes; returns int32 ``[C, n]``.

    Raises EntropyCodingError (and nothing else, whatever the bytes) if the data is not a
    whole number of words, if ``n`` is negative or ``C * n > max_symbols``, or if the
    stream does not decode to exactly ``n`` symbols per channel with nothing left over
    (corrupt data or the wrong tables). Garbage can still decode "successfully" to wrong
    symbols when it happens to end in the empty state; integrity is the container's CRC.
    """
    try:
        view = memoryview(data).cast("B")
    except TypeError:
        raise EntropyCodingError(f"data must be bytes-like, got {type(data).__name__}") from None
    f = check_tables(freqs)
    channels, symbols = f.shape
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise EntropyCodingError(f"n must be an int, got {n!r}")
    n = int(n)
    if n < 0 or channels * n > max_symbols:
        limit = max_symbols // max(channels, 1)
        raise EntropyCodingError(f"n must be in [0, {limit}] for {channels} channels, got {n}")
    if len(view) % 4:
        raise EntropyCodingError(f"rANS data must be a whole number of 4-byte words, got {len(view)} bytes")
    if channels * n == 0 or symbols == 1:
        if len(view):
            raise EntropyCodingError(f"expected no rANS data for {channels} x {n} symbols, found {len(view)} bytes")
        return np.zeros((channels, n), dtype=np.int32)

    words = np.frombuffer(view, dtype="<u4").astype(np.uint32)
    out = np.empty((channels, n), dtype=np.int32)
    with decoding_errors():
        stream = constriction_module().stream
        coder = stream.stack.AnsCoder(words)
        models = categorical_models(f)
        for c in range(channels):
            out[c] = coder.decode(models[c], n)
        leftover = not coder.is_empty()
    if leftover:
        raise EntropyCodingError(
            f"rANS data does not match: {channels} x {n} symbols decoded but the coder is not empty "
            "(corrupt data, wrong tables or wrong symbol count)"
        )
    if out.size and (out.min() < 0 or out.max() >= symbols):  # defensive: constriction guarantees this
        raise EntropyCodingError(f"decoded symbols out of range [0, {symbols})")
    return out
