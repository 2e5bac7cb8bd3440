"""The grid context model (entropy/grid.py): exact round trips, edges, fitting, bad input, old files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavelatent.entropy import grid
from wavelatent.errors import EntropyCodingError
from wavelatent.train.grid import fit, fit_version2

LEGACY = Path(__file__).resolve().parent / "legacy"


def _symbols(rng, C, shape, Q, smooth=True):
    """Correlated integer latents: a smooth field per channel plus noise, clipped to [-Q, Q]."""
    base = rng.normal(0, 1, (C, *shape))
    if smooth:
        for ax in range(1, base.ndim):
            base = base + np.roll(base, 1, axis=ax) + np.roll(base, -1, axis=ax)
    scale = np.linspace(3, 0.3, C).reshape(C, *([1] * len(shape)))
    return np.clip(np.round(base * scale), -Q, Q).astype(np.int32)


def _fitted(samples: list, Q: int, version: int) -> grid.GridTables:
    t = fit(samples, Q)[0]
    return t if version == 1 else grid.GridTables(t.mu, t.sigma, fit_version2(samples, t)[0], 2)


# every test of a fitted model runs for both versions of the grid model
@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def tables2d(request):
    rng = np.random.default_rng(0)
    return _fitted([_symbols(rng, 4, (24, 32), 20) for _ in range(6)], 20, request.param)


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def tables1d(request):
    rng = np.random.default_rng(1)
    return _fitted([_symbols(rng, 3, (300,), 30) for _ in range(6)], 30, request.param)


def test_fitted_model_codes_below_the_ideal_factorized_rate(tables2d):
    rng = np.random.default_rng(5)
    q = _symbols(rng, 4, (48, 64), 20)
    data = grid.encode(q, tables2d)
    # ideal per-channel static entropy of these very symbols (a lower bound for any factorized table)
    static = 0.0
    for k in range(4):
        _, n = np.unique(q[k], return_counts=True)
        static += -(n * np.log2(n / n.sum())).sum()
    assert 8 * len(data) < 0.9 * static  # the contexts pay: well below the best static table
    assert np.array_equal(grid.decode(data, tables2d, q.shape[1:]), q)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (7, 9), (2, 2), (17, 33)])
def test_round_trip_2d_shapes(tables2d, shape):
    rng = np.random.default_rng(sum(shape))
    q = _symbols(rng, 4, shape, 20)
    assert np.array_equal(grid.decode(grid.encode(q, tables2d), tables2d, shape), q)


@pytest.mark.parametrize("n", [1, 2, 3, 31, 32, 33, 257])
def test_round_trip_1d_lengths(tables1d, n):
    rng = np.random.default_rng(n)
    q = _symbols(rng, 3, (n,), 30)
    assert np.array_equal(grid.decode(grid.encode(q, tables1d), tables1d, (n,)), q)


def test_all_zero_and_extreme_symbols(tables2d):
    Q = tables2d.max_symbol
    zero = np.zeros((4, 16, 16), np.int32)
    data = grid.encode(zero, tables2d)
    assert np.array_equal(grid.decode(data, tables2d, (16, 16)), zero)
    rng = np.random.default_rng(3)
    assert 2 * len(data) < len(grid.encode(_symbols(rng, 4, (16, 16), 20), tables2d))
    extreme = rng.choice([-Q, Q], size=(4, 16, 16)).astype(np.int32)  # residuals up to 2Q
    assert np.array_equal(grid.decode(grid.encode(extreme, tables2d), tables2d, (16, 16)), extreme)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_round_trip_property(tables2d, h, w, seed):
    rng = np.random.default_rng(seed)
    Q = tables2d.max_symbol
    q = rng.integers(-Q, Q + 1, size=(4, h, w)).astype(np.int32) * rng.integers(0, 2, size=(4, h, w))
    assert np.array_equal(grid.decode(grid.encode(q, tables2d), tables2d, (h, w)), q.astype(np.int32))


def test_decoding_is_independent_of_float_summation_order(tables2d):
    """Weights and features are integers whose sums stay below 2**53: reordering the features
    (another BLAS kernel) cannot change a prediction."""
    rng = np.random.default_rng(9)
    nb = rng.integers(-20, 21, (8, 1, 500)).astype(np.float64)  # [offsets, channels, n]
    cur = rng.integers(-20, 21, (4, 500)).astype(np.float64)
    w = tables2d.mu[5, 3:4]  # channel 3's weights, [1, Fm]
    a = grid.predict(w, nb, cur, 20)
    perm = rng.permutation(8)
    w2 = w.copy()
    w2[:, :8] = w[:, :8][:, perm]
    assert np.array_equal(a, grid.predict(w2, nb[perm], cur, 20))


def _in_dtype(t: grid.GridTables, dtype) -> grid.GridTables:
    """The same model, forced to compute in ``dtype``."""
    u = grid.GridTables(t.mu, t.sigma, t.freqs, t.version)
    u._cache["dtype"] = dtype
    return u


@pytest.mark.parametrize("dims", [1, 2])
def test_float32_work_is_exact(tables2d, tables1d, dims):
    """When no sum can reach 2**24 the coders compute in float32: the same bytes and symbols as float64,
    extreme symbols (the largest sums) included; a model whose bound reaches 2**24 computes in float64."""
    t = tables2d if dims == 2 else tables1d
    assert t.work_dtype() is np.float32 and t.sum_bound() < 1 << 24
    rng = np.random.default_rng(11)
    C, Q = t.check()
    shape = (40, 56) if dims == 2 else (700,)
    for q in (_symbols(rng, C, shape, Q), rng.choice([-Q, Q], size=(C, *shape)).astype(np.int32)):
        data = grid.encode(q, t)
        assert data == grid.encode(q, _in_dtype(t, np.float64))
        assert np.array_equal(grid.decode(data, t, shape), q)
        assert np.array_equal(grid.decode_many([data, data], t, shape)[1], q)
    heavy = grid.GridTables(t.mu, np.minimum(t.sigma.astype(np.int64) * 8192, grid.MAX_SIGMA_WEIGHT).astype(np.int32),
                            t.freqs, t.version)
    assert heavy.sum_bound() >= 1 << 24 and heavy.work_dtype() is np.float64
    q = _symbols(rng, C, shape, Q)
    assert np.array_equal(grid.decode(grid.encode(q, heavy), heavy, shape), q)


def test_corrupt_streams_raise_or_differ(tables2d):
    rng = np.random.default_rng(11)
    q = _symbols(rng, 4, (20, 20), 20)
    data = bytearray(grid.encode(q, tables2d))
    for i in range(0, len(data), max(1, len(data) // 16)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        try:
            out = grid.decode(bytes(bad), tables2d, (20, 20))
        except EntropyCodingError:
            continue
        assert out.shape == q.shape  # garbage may decode; the container's CRC catches it
    with pytest.raises(EntropyCodingError):
        grid.decode(bytes(data[:-4]), tables2d, (20, 20))
    with pytest.raises(EntropyCodingError):
        grid.decode(bytes(data) + b"\0\0\0", tables2d, (20, 20))
    with pytest.raises(EntropyCodingError):
        grid.decode(bytes(data), tables2d, (20, 21))  # wrong latent size


@pytest.mark.parametrize("shape", [(7, 9), (1, 1), (17, 33)])
def test_decode_many_equals_one_by_one(tables2d, tables1d, shape):
    rng = np.random.default_rng(sum(shape))
    qs = [_symbols(rng, 4, shape, 20, smooth=j % 2 == 0) for j in range(5)] + [np.zeros((4, *shape), np.int32)]
    got = grid.decode_many([grid.encode(q, tables2d) for q in qs], tables2d, shape)
    assert got.dtype == np.int32 and np.array_equal(got, np.stack(qs))
    q1 = [_symbols(rng, 3, (shape[1] * 8,), 30) for _ in range(3)]
    assert np.array_equal(grid.decode_many([grid.encode(q, tables1d) for q in q1], tables1d, (shape[1] * 8,)), np.stack(q1))
    assert grid.decode_many([], tables2d, shape).shape == (0, 4, *shape)


def test_decode_many_of_very_many_tiny_latents(tables2d):
    """Over 819 latents: each (latent, bucket) group keyed past int16; every latent still decodes to
    its own symbols."""
    rng = np.random.default_rng(13)
    qs = [_symbols(rng, 4, (2, 3), 20, smooth=False) for _ in range(830)]
    got = grid.decode_many([grid.encode(q, tables2d) for q in qs], tables2d, (2, 3))
    assert np.array_equal(got, np.stack(qs))


def test_corrupt_streams_that_decode_out_of_range_symbols_raise(tables2d):
    """The range check runs once per pass: a symbol out of range anywhere in it still raises."""
    rng = np.random.default_rng(14)
    data = grid.encode(_symbols(rng, 4, (16, 16), 20), tables2d)
    out_of_range = 0
    for _ in range(200):
        bad = bytearray(data)
        bad[int(rng.integers(len(bad)))] ^= int(rng.integers(1, 256))
        try:
            grid.decode(bytes(bad), tables2d, (16, 16))
        except EntropyCodingError as exc:
            out_of_range += "out of range" in str(exc)
    assert out_of_range


def test_decode_many_refuses_a_bad_stream_among_good_ones(tables2d):
    rng = np.random.default_rng(12)
    datas = [grid.encode(_symbols(rng, 4, (12, 12), 20), tables2d) for _ in range(4)]
    with pytest.raises(EntropyCodingError):
        grid.decode_many(datas[:2] + [datas[2][:-4]] + datas[3:], tables2d, (12, 12))
    with pytest.raises(EntropyCodingError):
        grid.decode_many(datas[:3] + [datas[3] + b"\0\0\0\0"], tables2d, (12, 12))  # left over in one coder


def test_bad_tables_are_refused(tables2d):
    t = tables2d
    v = t.version
    with pytest.raises(EntropyCodingError, match="not decoded yet"):
        mu = t.mu.copy()
        mu[3, 0, grid.max_offsets(2) + 2] = 5  # channel 0 reading channel 2 of the same pass
        grid.GridTables(mu, t.sigma, t.freqs, v).check()
    with pytest.raises(EntropyCodingError, match="sigma weights"):
        grid.GridTables(t.mu, -np.abs(t.sigma) - 1, t.freqs, v).check()
    with pytest.raises(EntropyCodingError):
        grid.GridTables(t.mu, t.sigma, t.freqs[:, :-1], v).check()
    with pytest.raises(EntropyCodingError):
        f = t.freqs.copy()
        f[0, 0] += 1  # a row no longer sums to 2**24
        grid.GridTables(t.mu, t.sigma, f, v).check()
    with pytest.raises(EntropyCodingError, match="version"):  # the tables of the other version
        other = grid.laplace_tables(t.max_symbol, version=3 - v)
        grid.GridTables(t.mu, t.sigma, other, v).check()
    with pytest.raises(EntropyCodingError, match="version"):
        grid.GridTables(t.mu, t.sigma, t.freqs, 3).check()
    with pytest.raises(EntropyCodingError):
        grid.encode(np.full((4, 3, 3), t.max_symbol + 1, np.int32), t)
    with pytest.raises(EntropyCodingError):
        grid.decode(b"", t, (1 << 20, 1 << 20))  # never allocates this


def test_shifts_are_chosen_per_file(tables2d):
    """A file whose channels are all quieter than the fit data picks negative shifts and is smaller
    than with shift 0."""
    rng = np.random.default_rng(2)
    t = tables2d
    q = (_symbols(rng, 4, (32, 32), 20) // 3).astype(np.int32)
    parts = grid.residuals(q, t)
    r = np.concatenate([x.ravel() for x, _ in parts])
    b = grid.unshifted_buckets(np.concatenate([s.ravel() for _, s in parts]))
    k = np.concatenate([np.repeat(np.arange(4), x.shape[1]) for x, _ in parts])
    _, k2, b2, quarter, r2 = grid.coded_symbols(q, t)  # the same symbols, flat
    assert np.array_equal(k, k2) and np.array_equal(b, b2) and np.array_equal(r, r2)
    quarter = np.zeros_like(b) if quarter is None else quarter
    logf = -np.log2(t.freqs / 2.0**24)
    shifts = grid.choose_shifts(k, b, r, 4, t.code_lengths(), t.max_symbol,
                                quarter=quarter if t.version == 2 else None, version=t.version)
    table = lambda s: grid.context_map(t.version)[quarter, np.clip(b + s[k], 0, grid.BUCKETS - 1)]  # noqa: E731
    cost = lambda s: logf[table(s), r + 2 * t.max_symbol].sum()  # noqa: E731
    assert cost(shifts) <= cost(np.zeros(4, np.int64))
    assert (shifts < 0).all()


@pytest.mark.parametrize("dims", [1, 2])
def test_version2_folds_by_the_fraction_of_the_prediction(tables2d, tables1d, dims):
    """Version 2 codes ``r = q - mu`` negated when the prediction ``raw / 256`` lies above ``mu``,
    and takes its tables by the quarter ``((raw + 128) mod 256) // 64``: checked against the integer
    prediction of :func:`grid.predict_raw` (int64), pass by pass."""
    t = tables2d if dims == 2 else tables1d
    if t.version != 2:
        pytest.skip("version 2 only")
    C, Q = t.check()
    rng = np.random.default_rng(4)
    shape = (19, 27) if dims == 2 else (333,)
    q = _symbols(rng, C, shape, Q)
    lat = grid.Lattices(C, shape, dims, np.float64)
    lat.q[lat.interior()] = q
    coded, quarters = [], []
    for i, p in enumerate(grid.passes(dims)):
        n = int(np.prod(lat.counts(p)))
        if n == 0:
            continue
        nb = grid.pass_features(lat, p)[0]
        cur = lat.q[lat.index(p)].reshape(C, n)
        raw = grid.predict_raw(t.mu[i], nb, cur).astype(np.int64) + 128
        mu = np.clip(raw >> 8, -Q, Q)
        quarter = (raw & 255) >> 6
        r = cur.astype(np.int64) - mu
        coded.append(np.where(quarter >= 2, -r, r).ravel())
        quarters.append(quarter.ravel())
    _, _, _, quarter, r = grid.coded_symbols(q, t)
    assert np.array_equal(r, np.concatenate(coded)) and np.array_equal(quarter, np.concatenate(quarters))
    assert 0 < np.count_nonzero(np.concatenate(quarters) >= 2) < r.size  # both signs occur


@pytest.mark.parametrize("version", [1, 2])
def test_choose_shifts_matches_brute_force(version):
    """The histogram shortcut (residuals beyond the window counted one by one) picks exactly the
    shifts an exhaustive search over every shift and symbol picks, tails (the first one beyond the
    window included) and ties included; in version 2 with the tables of each fraction quarter."""
    rng = np.random.default_rng(5)
    C, Q = 5, 60
    freqs = grid.laplace_tables(Q, version=version)
    lengths = grid.code_lengths(freqs)
    n = 4000
    k = rng.integers(0, C, n)
    b = rng.integers(0, grid.BUCKETS, n)
    r = np.round(rng.laplace(0, 1 + 6 * k, n)).astype(np.int64).clip(-2 * Q, 2 * Q)
    r[:10] = 2 * Q  # extreme residuals: beyond any window
    r[10:20] = -2 * Q
    wide = k == 0  # a channel whose residuals are all large: only they decide its shift
    r[wide] = rng.integers(30, 2 * Q, wide.sum()) * rng.choice([-1, 1], wide.sum())
    edge = k == 1  # residuals just beyond the window (|r| = 25): its first overflow bin
    r[edge] = 25 * rng.choice([-1, 1], edge.sum())
    quarter = rng.integers(0, 4, n) if version == 2 else np.zeros(n, np.int64)
    table = grid.context_map(version)
    lo, hi = grid.SHIFTS
    brute = np.array([
        lo + int(np.argmin([lengths[table[quarter[k == c], np.clip(b[k == c] + d, 0, grid.BUCKETS - 1)],
                                    r[k == c] + 2 * Q].sum()
                            for d in range(lo, hi + 1)]))
        for c in range(C)
    ])
    assert (np.abs(r) > 24).sum() > 20
    got = grid.choose_shifts(k, b, r, C, lengths, Q, quarter=quarter if version == 2 else None, version=version)
    assert np.array_equal(got, brute)


# --- files -------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["image-rgb-16x", "image-rgb-4x", "image-gray-16x", "test-image"])
def test_image_presets_write_grid_files(preset, image):
    import wavelatent as wl
    from wavelatent import container
    from wavelatent.models import load_codec

    codec = load_codec(preset)
    img = image if codec.config.channels == 3 else image[:, :, 0]
    data = wl.compress(img, codec)
    h = container.read_header(data)
    assert h["entropy"] == codec.config.context in ("grid", "grid2") and len(h["weights_sha256"]) == 16
    assert wl.decompress(data, codec).shape == img.shape


def test_unknown_entropy_model_is_a_header_error(image):
    import wavelatent as wl
    from wavelatent import container
    from wavelatent.errors import HeaderError

    data = wl.compress(image)
    c = container.unpack(data)
    for name in ("grid3", "checkerboard", 7):
        header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version")}
        header["entropy"] = name
        with pytest.raises(HeaderError, match="entropy model"):
            wl.decompress(container.pack(header, c.streams))


def _legacy_entries():
    return sorted(p.name for p in LEGACY.glob("*.wlt"))


def test_legacy_files_are_there():
    """One file of each shipped preset before the grid model (committed with -f: *.wlt is ignored)."""
    assert len(_legacy_entries()) == 6


@pytest.mark.parametrize("name", _legacy_entries())
def test_files_written_by_the_previous_presets_still_decode(name):
    """``.wlt`` files written by the v2 presets (before the grid model) decode with the shipped
    weights, which keep their tables and declare their hash (``also_decodes``), within 1 LSB of the
    recorded output (``image-rgb-4x``'s re-recorded for its v4 decoder: within 2 LSB of v3's)."""
    import wavelatent as wl
    from wavelatent import container
    from wavelatent.audio import decompress_audio

    data = (LEGACY / name).read_bytes()
    header = container.read_header(data)
    assert len(header["weights_sha256"]) == 64 and header.get("entropy", "none") != "grid"
    stem = name[: -len(".wlt")]
    if header["modality"] == "audio":
        out = decompress_audio(data, noise_fill=False)[0]  # the MSE output they were recorded with
        got = np.clip(np.round(out.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
        expected = np.load(LEGACY / f"{stem}.decoded.npy", allow_pickle=False)
    else:
        from PIL import Image

        got = wl.decompress(data)
        expected = np.asarray(Image.open(LEGACY / f"{stem}.decoded.png"))
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size


@pytest.mark.parametrize("name", sorted(p.name for p in (LEGACY / "grid-v1").glob("*.wlt")))
def test_grid_version_1_files_still_decode(name):
    """``.wlt`` files written by the grid model's version 1 (``image-rgb-16x`` v3, ``image-gray-16x``
    v2) decode with the shipped "grid2" weights, which keep version 1's tables and declare the old
    hashes, within 1 LSB of what the old weights decoded."""
    import wavelatent as wl
    from PIL import Image
    from wavelatent import container
    from wavelatent.models import load_codec

    data = (LEGACY / "grid-v1" / name).read_bytes()
    header = container.read_header(data)
    assert header["entropy"] == "grid" and load_codec(header["preset"]).config.context == "grid2"
    got = wl.decompress(data)
    expected = np.asarray(Image.open(LEGACY / "grid-v1" / name.replace(".wlt", ".decoded.png")))
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert len(list((LEGACY / "grid-v1").glob("*.wlt"))) == 2
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size


def test_edited_weights_do_not_inherit_old_hashes():
    """``also_decodes`` holds only while the weights are the released ones."""
    import torch

    from wavelatent import container
    from wavelatent.headers import checked_codec
    from wavelatent.errors import WeightsMismatchError
    from wavelatent.models import load_codec

    name = "image-rgb-16x-q2.wlt"
    header = container.read_header((LEGACY / name).read_bytes())
    codec = load_codec("image-rgb-16x")
    assert checked_codec(header, codec) is codec
    with torch.no_grad():
        codec.decoder.head.weight.add_(1e-3) if hasattr(codec.decoder, "head") else next(codec.decoder.parameters()).add_(1e-3)
    with pytest.raises(WeightsMismatchError):
        checked_codec(header, codec)


def test_shipped_weights_record_their_grid_fit():
    from wavelatent.models import load_codec
    from wavelatent.registry import list_presets
    from wavelatent.weights import has_shipped_weights, read_metadata, shipped_path

    for preset in list_presets():
        if not has_shipped_weights(preset):
            continue
        meta = read_metadata(shipped_path(preset).read_bytes())
        fit_info = json.loads(meta["grid_fit"])
        assert fit_info["model_version"] in (1, 2)
        for rep in fit_info["per_quality"].values():
            assert rep["bits_per_symbol"] < rep["factorized_bits_per_symbol"]
        if load_codec(preset).config.context == "grid2":  # version 2's tables: fitted, and better on the fit data
            fit2 = json.loads(meta["grid2_fit"])
            assert fit2["model_version"] == 2
            for q, rep in fit2["per_quality"].items():
                assert rep["version2_bits_per_symbol"] < fit_info["per_quality"][q]["bits_per_symbol"]
        else:
            assert "grid2_fit" not in meta


def test_grid_tables_are_kept_until_their_buffers_change():
    import torch

    from wavelatent.models import load_codec

    codec = load_codec("test-image")
    t = codec.grid_tables(2)
    assert codec.grid_tables(2) is t and codec.grid_tables(1) is not t
    v1 = codec.grid_tables(2, version=1)  # a grid2 codec also holds version 1's tables, kept apart
    assert (t.version, v1.version) == (2, 1) and codec.grid_tables(2, version=1) is v1
    assert np.array_equal(v1.mu, t.mu) and v1.freqs.shape[0] < t.freqs.shape[0]
    with torch.no_grad():
        codec.grid_mu_2[0, 0, 0] += 0  # an in-place write: the version counter moves
    assert codec.grid_tables(2) is not t
    import copy  # the cache lives outside the module: codecs still copy (and serialize) as before

    assert copy.deepcopy(codec).grid_tables(2).check() == t.check()


def test_upgrading_to_a_model_the_weights_have_is_a_typed_error(tmp_path):
    """``fit-entropy --model grid2`` on weights that already code with it (or an unknown model) is an
    InputError before any data is read: the CLI exits non-zero with the message, no traceback."""
    from wavelatent.cli.main import main
    from wavelatent.errors import InputError
    from wavelatent.train.grid import upgrade

    for model in ("grid2", "grid", "grid9"):
        with pytest.raises(InputError):
            upgrade("test-image", tmp_path / "no-data", tmp_path / "out.safetensors", model=model)
    assert main(["fit-entropy", "test-image", "-o", str(tmp_path / "o.safetensors"), "--data", str(tmp_path),
                 "--model", "grid2"]) != 0
    assert not (tmp_path / "o.safetensors").exists()
