"""Integer tables and rANS coding: exact tables, round trips, honest rate, typed errors."""
from __future__ import annotations

import ast
import time
from pathlib import Path

import constriction
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavelatent.entropy import PRECISION, decode, encode, ideal_bits, quantize_pmf
from wavelatent.errors import EntropyCodingError

TOTAL = 1 << PRECISION


def laplace_pmf(n_symbols: int = 64, scale: float = 2.0) -> np.ndarray:
    x = np.arange(n_symbols) - n_symbols // 2
    return np.exp(-np.abs(x) / scale)


def sample(freqs: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``[C, n]`` symbols drawn from each row's table."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(freqs.shape[1], size=n, p=row / TOTAL) for row in freqs.astype(np.float64)])


def random_tables(channels: int, n_symbols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return quantize_pmf(rng.random((channels, n_symbols)) ** rng.uniform(0.5, 8.0, size=(channels, 1)))


# --- quantize_pmf -------------------------------------------------------------
@pytest.mark.parametrize("n_symbols", [1, 2, 3, 4, 64, 255, 4096, TOTAL // 2])
def test_quantize_pmf_sums_exactly_and_is_positive(n_symbols):
    rng = np.random.default_rng(n_symbols)
    pmf = rng.random((3, n_symbols)) ** 6
    pmf[1] *= 1e-200  # rows need not be normalized
    pmf[2, : n_symbols // 2] = 0.0
    f = quantize_pmf(pmf)
    assert f.dtype == np.uint32 and f.shape == pmf.shape
    assert f.min() >= 1
    assert np.all(f.astype(np.int64).sum(axis=-1) == TOTAL)


def test_quantize_pmf_is_close_to_the_pmf():
    pmf = laplace_pmf(255, 8.0)[None] + np.random.default_rng(0).random((4, 255)) * 1e-3
    q = pmf / pmf.sum(-1, keepdims=True)
    f = quantize_pmf(pmf) / TOTAL
    assert np.abs(f - q).max() <= 2.0 / TOTAL
    kl = (q * np.log2(q / f)).sum(-1)  # bits per symbol lost to quantization
    assert kl.max() < 1e-3


def test_quantize_pmf_is_deterministic_and_row_independent():
    pmf = np.random.default_rng(1).random((8, 100)) ** 3
    f = quantize_pmf(pmf)
    assert np.array_equal(f, quantize_pmf(pmf.copy()))
    assert np.array_equal(f[3], quantize_pmf(pmf[3]))
    assert np.array_equal(f.reshape(2, 4, 100), quantize_pmf(pmf.reshape(2, 4, 100)))
    assert np.array_equal(f, quantize_pmf(pmf * 4.0))  # exact rescaling changes nothing


def test_quantize_pmf_golden_values():
    # Pinned outputs: a change here changes every bitstream.
    assert quantize_pmf(np.array([0.2, 0.4, 0.1, 0.3])).tolist() == [13107, 26214, 6554, 19661]
    assert quantize_pmf(np.ones(3)).tolist() == [21846, 21845, 21845]
    assert quantize_pmf(np.array([1.0, 0.0, 0.0, 0.0])).tolist() == [65533, 1, 1, 1]


def test_quantize_pmf_extremes():
    one_hot = np.zeros((2, 4096))
    one_hot[0, 7] = 1.0
    one_hot[1, -1] = 1e-300
    f = quantize_pmf(one_hot)
    assert f[0, 7] == TOTAL - 4095 and f[1, -1] == TOTAL - 4095
    assert np.count_nonzero(f == 1) == 2 * 4095
    assert np.all(quantize_pmf(np.ones((1, 4096))) == 16)
    assert quantize_pmf(np.array([1.0, 1.0])).tolist() == [TOTAL // 2, TOTAL // 2]
    assert quantize_pmf(np.array([1.0, 1e-30])).tolist() == [TOTAL - 1, 1]
    assert quantize_pmf(np.array([[5.0]])).tolist() == [[TOTAL]]
    assert quantize_pmf(np.ones((0, 5))).shape == (0, 5)


@pytest.mark.parametrize(
    "pmf",
    [
        np.array([1.0, np.nan]),
        np.array([1.0, np.inf]),
        np.array([1.0, -0.1]),
        np.zeros(4),
        np.ones(TOTAL // 2 + 1),
        np.float64(1.0),
    ],
)
def test_quantize_pmf_rejects_invalid(pmf):
    with pytest.raises(ValueError):
        quantize_pmf(pmf)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 600),
    st.floats(0.0, 0.99),
    st.floats(0.0, 40.0),
    st.sampled_from([8, 12, 16]),
)
def test_quantize_pmf_property(seed, n_symbols, zero_fraction, exponent, precision):
    n_symbols = min(n_symbols, (1 << precision) // 2)
    rng = np.random.default_rng(seed)
    pmf = rng.random((2, n_symbols)) ** exponent * np.array([[1.0], [1e-250]])  # tiny rows are fine too
    pmf[rng.random(pmf.shape) < zero_fraction] = 0.0
    pmf[:, rng.integers(n_symbols)] += 1e-300  # keep every row's sum positive
    f = quantize_pmf(pmf, precision)
    assert f.min() >= 1 and np.all(f.astype(np.int64).sum(axis=-1) == 1 << precision)
    q = pmf / pmf.sum(axis=-1, keepdims=True)
    assert np.all(np.abs(f / (1 << precision) - q) <= n_symbols / (1 << precision) + 1e-12)


# --- rANS round trips -----------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3, 12])
@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000])
def test_rans_round_trip(channels, n):
    freqs = random_tables(channels, 37, seed=channels * 1000 + n)
    q = sample(freqs, n, seed=n)
    data = encode(q, freqs)
    assert len(data) % 4 == 0
    out = decode(data, freqs, n)
    assert out.dtype == np.int32 and out.shape == (channels, n)
    assert np.array_equal(out, q)


def test_rans_round_trip_accepts_stored_table_dtypes_and_extreme_symbols():
    freqs = quantize_pmf(laplace_pmf(255)[None].repeat(2, axis=0))
    q = np.array([[0, 254, 127, 0, 254], [254, 254, 0, 1, 253]], dtype=np.int16)  # tail symbols of freq 1
    for table in (freqs, freqs.astype(np.int32), freqs.astype(np.int64)):
        assert np.array_equal(decode(encode(q, table), table, 5), q)


def test_rans_one_symbol_tables_cost_nothing():
    freqs = quantize_pmf(np.ones((2, 1)))
    assert encode(np.zeros((2, 5), dtype=np.int64), freqs) == b""
    assert np.array_equal(decode(b"", freqs, 5), np.zeros((2, 5)))
    with pytest.raises(EntropyCodingError):
        decode(b"\x01\x00\x00\x00", freqs, 5)


def test_channels_are_coded_with_their_own_tables():
    a = quantize_pmf(np.array([[100.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 100.0]]))
    q = np.array([[0] * 500, [3] * 500])
    swapped = a[::-1].copy()
    assert 8 * len(encode(q, a)) < 0.2 * 8 * len(encode(q, swapped))


# --- constriction's fixed-point model is exactly our table ------------------------
def _coder_cdf(model, n_symbols: int) -> np.ndarray:
    """The coder's 24-bit left cumulatives, read back: one symbol on an empty ANS stack
    leaves state == left cumulative (state 0 -> 0 * 2**24 + cum + 0)."""
    out = []
    for symbol in range(n_symbols):
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(np.array([symbol], dtype=np.int32), model)
        words = coder.get_compressed()
        out.append(sum(int(w) << (32 * i) for i, w in enumerate(words)))
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("n_symbols", [2, 64, 255, 4096])
def test_coder_model_reproduces_integer_tables_exactly(n_symbols):
    from wavelatent.entropy.rans import categorical_models

    freqs = random_tables(1, n_symbols, seed=n_symbols).astype(np.int64)
    expected = np.concatenate([[0], np.cumsum(freqs[0])[:-1]]) << 8  # f / 2**16 == (f << 8) / 2**24
    assert np.array_equal(_coder_cdf(categorical_models(freqs)[0], n_symbols), expected)
    if n_symbols >= 64:  # documents why: passing f itself would be close but not exact
        naive = constriction.stream.model.Categorical(freqs[0].astype(np.float64), perfect=False)
        assert not np.array_equal(_coder_cdf(naive, n_symbols), expected)


# --- honest rate ----------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_rate_bound_peaked_distribution(channels):
    n = 20_000
    freqs = quantize_pmf(np.stack([laplace_pmf(64, s) for s in (2.0, 0.7, 6.0)[:channels]]))
    q = sample(freqs, n, seed=7)
    data = encode(q, freqs)
    real = 8 * len(data)
    ideal = ideal_bits(q, freqs)
    assert ideal <= real <= 1.02 * ideal + 64
    assert np.array_equal(decode(data, freqs, n), q)


def test_ideal_bits_matches_definition():
    freqs = quantize_pmf(np.array([[1.0, 3.0], [1.0, 1.0]]))
    q = np.array([[0, 1, 1], [1, 1, 0]])
    expected = -np.log2(freqs[0, [0, 1, 1]] / TOTAL).sum() + 3.0
    assert ideal_bits(q, freqs) == pytest.approx(expected, rel=1e-12)
    assert ideal_bits(np.zeros((2, 0), dtype=int), freqs) == 0.0


# --- errors ---------------------------------------------------------------------------
def test_encode_rejects_bad_input():
    freqs = random_tables(2, 8)
    with pytest.raises(EntropyCodingError, match="range"):
        encode(np.array([[0, 8], [0, 0]]), freqs)
    with pytest.raises(EntropyCodingError, match="range"):
        encode(np.array([[0, -1], [0, 0]]), freqs)
    with pytest.raises(EntropyCodingError, match="shape"):
        encode(np.zeros((3, 4), dtype=int), freqs)
    with pytest.raises(EntropyCodingError, match="shape"):
        encode(np.zeros(4, dtype=int), freqs)
    with pytest.raises(EntropyCodingError, match="integers"):
        encode(np.zeros((2, 4)), freqs)
    bad = freqs.astype(np.int64)
    bad[0, 0] += 1
    with pytest.raises(EntropyCodingError, match="sum"):
        encode(np.zeros((2, 4), dtype=int), bad)
    bad[0, 0] = 0
    with pytest.raises(EntropyCodingError):
        encode(np.zeros((2, 4), dtype=int), bad)


def test_decode_rejects_bad_arguments():
    freqs = random_tables(2, 8)
    data = encode(sample(freqs, 10), freqs)
    with pytest.raises(EntropyCodingError, match="4-byte words"):
        decode(data + b"\x00", freqs, 10)
    for n in (-1, 2**40, True, 1.5):
        with pytest.raises(EntropyCodingError, match="n must"):
            decode(data, freqs, n)
    with pytest.raises(EntropyCodingError, match="no rANS data"):
        decode(data, freqs, 0)
    with pytest.raises(EntropyCodingError):
        decode(b"\x00\x00\x00\x00", freqs, 10)  # ANS data never ends in a zero word


def test_decode_detects_wrong_count_tables_and_truncation():
    freqs = random_tables(3, 64, seed=3)
    q = sample(freqs, 500, seed=3)
    data = encode(q, freqs)
    with pytest.raises(EntropyCodingError, match="not empty"):
        decode(data, freqs, 499)
    with pytest.raises(EntropyCodingError, match="not empty"):
        decode(data, random_tables(3, 64, seed=4), 500)
    for cut in range(0, len(data), 4):
        try:
            out = decode(data[:cut], freqs, 500)
        except EntropyCodingError:
            continue
        assert out.shape == (3, 500)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.binary(max_size=200),
    st.integers(0, 3000),
    st.sampled_from([2, 3, 255, 4096]),
    st.integers(1, 3),
    st.integers(0, 2**32 - 1),
)
def test_decoding_garbage_raises_entropy_coding_error_or_returns(data, n, n_symbols, channels, seed):
    freqs = random_tables(channels, n_symbols, seed=seed)
    for candidate in (data, data[: len(data) // 4 * 4]):
        try:
            out = decode(candidate, freqs, n)
        except EntropyCodingError:
            continue
        assert out.shape == (channels, n) and out.dtype == np.int32
        assert out.size == 0 or (out.min() >= 0 and out.max() < n_symbols)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 300),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_corrupted_streams_raise_entropy_coding_error_or_return(seed, n, flips):
    freqs = random_tables(2, 255, seed=seed)
    data = bytearray(encode(sample(freqs, n, seed=seed), freqs))
    for pos, value in flips:
        if data:
            data[pos % len(data)] ^= value
    try:
        out = decode(bytes(data), freqs, n)
    except EntropyCodingError:
        return
    assert out.shape == (2, n)


# --- speed and hygiene ------------------------------------------------------------------
def test_speed_sanity():
    freqs = random_tables(12, 255, seed=12)
    q = sample(freqs, 6144, seed=12)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        out = decode(encode(q, freqs), freqs, 6144)
        best = min(best, time.perf_counter() - start)
    assert np.array_equal(out, q)
    assert best < 0.05, f"encode+decode of 12 x 6144 symbols took {1000 * best:.1f} ms"


def test_entropy_modules_do_not_import_torch():
    root = Path(__file__).parents[1] / "src" / "wavelatent" / "entropy"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name.split(".")[0] == "torch" for name in names), path


# --------------------------------------------------------------------------- context model
def _context_tables(C: int, N: int, seed: int = 0):
    from wavelatent.entropy import context as cx

    rng = np.random.default_rng(seed)
    th = np.sort(rng.integers(0, 12, (C, 4, cx.THRESHOLDS)), axis=-1)
    lut = rng.integers(0, cx.BUCKETS, (C, cx.LEVELS**3))
    return cx.ContextTables(th, lut, quantize_pmf(rng.random((C, cx.CONTEXTS, N)) ** 3 + 1e-3))


@pytest.mark.parametrize("shape", [(3, 7, 9), (1, 1, 1), (2, 1, 6), (4, 16, 24), (2, 0, 5)])
def test_context_round_trip(shape):
    from wavelatent.entropy import context as cx

    t = _context_tables(shape[0], 21)
    q = np.clip(np.round(np.random.default_rng(1).laplace(0, 2.5, shape)), -10, 10).astype(np.int32)
    data = cx.encode(q, t)
    np.testing.assert_array_equal(cx.decode(data, t, shape[1:]), q)
    if q.size:  # the contexts change the cost: coding with other tables gives other bytes
        assert cx.encode(q, _context_tables(shape[0], 21, seed=5)) != data or q.size < 8


def test_context_coding_beats_factorized_on_clustered_magnitudes():
    """Symbols whose scale varies smoothly in space: the contexts must pay off, real bytes."""
    from wavelatent.entropy import context as cx

    rng = np.random.default_rng(2)
    C, h, w, N = 4, 64, 64, 41
    scale = np.exp(3.0 * np.sin(np.arange(h)[:, None] / 5.0) * np.cos(np.arange(w)[None, :] / 7.0))
    q = np.clip(np.round(rng.laplace(0, 1, (C, h, w)) * scale), -20, 20).astype(np.int64)
    # tables fitted on this very data (an upper bound on what fitting can reach, enough for the test)
    _, a_anchor, a_other, b, c = cx.split_features(q)
    th = np.zeros((C, 4, cx.THRESHOLDS), dtype=np.int64)
    for k in range(C):
        th[k, 0, : cx.ANCHOR_LEVELS - 1] = np.quantile(a_anchor[k], np.arange(1, cx.ANCHOR_LEVELS) / cx.ANCHOR_LEVELS)
        for row, f in ((1, a_other[k]), (2, b), (3, c[k])):
            th[k, row, : cx.LEVELS - 1] = np.quantile(f, np.arange(1, cx.LEVELS) / cx.LEVELS)
    lut = np.zeros((C, cx.LEVELS**3), dtype=np.int64)
    lut[:] = (np.arange(cx.LEVELS**3) % cx.LEVELS**2 // cx.LEVELS) * cx.BUCKETS // cx.LEVELS  # by level of b
    t0 = cx.ContextTables(th, lut, np.ones((C, cx.CONTEXTS, N)))
    ctx = cx.contexts(q, t0)
    counts = np.ones((C, cx.CONTEXTS, N))
    np.add.at(counts, (np.arange(C)[:, None, None], ctx, q + N // 2), 1)
    t = cx.ContextTables(th, lut, quantize_pmf(counts))
    flat = quantize_pmf(np.stack([np.bincount((q[k] + N // 2).ravel(), minlength=N) + 1.0 for k in range(C)]))
    context_bytes = len(cx.encode(q, t))
    factorized_bytes = len(encode((q + N // 2).reshape(C, -1), flat))
    assert context_bytes < 0.92 * factorized_bytes, (context_bytes, factorized_bytes)
    np.testing.assert_array_equal(cx.decode(cx.encode(q, t), t, (h, w)), q)


def test_context_rejects_bad_input_and_corrupt_streams():
    from wavelatent.entropy import context as cx

    t = _context_tables(2, 11)
    q = np.random.default_rng(3).integers(-5, 6, (2, 9, 9)).astype(np.int32)
    data = cx.encode(q, t)
    with pytest.raises(EntropyCodingError):
        cx.encode(q[:1], t)  # wrong channel count
    with pytest.raises(EntropyCodingError):
        cx.encode(q * 3, t)  # out of range
    with pytest.raises(EntropyCodingError):
        cx.encode(q.astype(np.float32), t)
    with pytest.raises(EntropyCodingError):
        cx.decode(data[:-1], t, (9, 9))  # not whole words
    with pytest.raises(EntropyCodingError):
        cx.decode(data, t, (9, 10))  # wrong size: symbols left over or missing
    with pytest.raises(EntropyCodingError):
        cx.decode(data, t, (10**6, 10**6))  # refused before allocating
    with pytest.raises(EntropyCodingError):
        cx.decode(data, cx.ContextTables(t.thresholds, t.lut, t.freqs[:, :3]), (9, 9))
    rng = np.random.default_rng(4)
    for _ in range(20):  # flipped bits: an error or (rarely) other symbols, never another exception
        bad = bytearray(data)
        bad[rng.integers(len(bad))] ^= 1 << int(rng.integers(8))
        try:
            out = cx.decode(bytes(bad), t, (9, 9))
        except EntropyCodingError:
            continue
        assert out.shape == q.shape
