"""Fit the grid context model (entropy/grid.py) of a trained codec on training signals.

Pass by pass, channel by channel (the coding order): the prediction weights are a least-squares
fit of each symbol on its own channel at the decoded neighbours and on the earlier channels at its
position; the scale weights a non-negative least-squares fit of ``|residual|`` on the scale
features; both rounded to the model's fixed point. The shared tables are the histograms of the
residuals per scale bucket (with the per-file shift the encoder would choose), smoothed with a
discretized Laplace of the bucket's scale so rare buckets stay sensible.
"""
from __future__ import annotations

import numpy as np

from ..entropy import grid
from ..entropy.tables import ideal_bits

MAX_ROWS = 100_000  # rows per least-squares fit (evenly subsampled beyond)
SMOOTHING = 0.5  # weight of the Laplace prior, in symbols per bucket


def _rows(n: int) -> np.ndarray:
    return np.arange(n) if n <= MAX_ROWS else np.linspace(0, n - 1, MAX_ROWS).astype(np.int64)


def _lstsq(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    if X.shape[1] == 0:
        return np.zeros(0)
    X, y = X.astype(np.float64), y.astype(np.float64)
    G = X.T @ X + 1e-6 * np.eye(X.shape[1])
    return np.linalg.solve(G, X.T @ y)


def _nnls(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares through the Cholesky factor of the Gram matrix (F x F, not rows x F)."""
    from scipy.optimize import nnls

    A, y = A.astype(np.float64), y.astype(np.float64)
    scale = np.maximum(np.sqrt((A**2).mean(0)), 1e-9)  # column scaling conditions the problem
    As = A / scale
    G = As.T @ As
    L = np.linalg.cholesky(G + 1e-9 * np.trace(G) / len(G) * np.eye(len(G)))
    v, _ = nnls(L.T, np.linalg.solve(L, As.T @ y), maxiter=50 * A.shape[1])
    return v / scale


def fit(samples: list[np.ndarray], max_symbol: int, *, progress: bool = False) -> tuple[grid.GridTables, dict]:
    """The grid model of signed symbols ``samples`` (each ``[C, *spatial]``, same C and rank) at one
    quality (``|q| <= max_symbol``); returns it and a report with the ideal bits per symbol."""
    from tqdm import tqdm

    C, dims, Q = samples[0].shape[0], samples[0].ndim - 1, int(max_symbol)
    plan = grid.passes(dims)
    O, near = grid.max_offsets(dims), grid.max_near(dims)
    mu_w = np.zeros((len(plan), C, grid.mu_features_count(dims, C)), dtype=np.int64)
    sig_w = np.zeros((len(plan), C, grid.sigma_features_count(dims, C)), dtype=np.int64)
    lats = []
    for q in samples:
        lat = grid.Lattices(C, q.shape[1:], dims)
        lat.q[lat.interior()] = q
        lats.append(lat)
    coded: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in samples]  # per sample (k, bucket, r)
    for i, p in enumerate(tqdm(plan, desc="grid passes", disable=not progress, leave=False)):
        parts = []
        for lat in lats:
            n = int(np.prod(lat.counts(p)))
            parts.append((lat.q[lat.index(p)].reshape(C, n), *grid.pass_features(lat, p)) if n else None)
        live = [(j, x) for j, x in enumerate(parts) if x is not None]
        if not live:
            continue
        cat = [np.concatenate([x[m] for _, x in live], axis=-1) for m in range(5)]
        cur, nb, spread, rr, rsum = cat
        no = len(p.offsets)
        sel = _rows(cur.shape[1])
        for k in range(C):  # prediction: own channel at the neighbours, earlier channels here
            X = np.concatenate([nb[:, k, sel].T, cur[:k, sel].T], axis=1)
            w = np.clip(np.round(_lstsq(X, cur[k, sel]) * 256), -grid.MAX_WEIGHT, grid.MAX_WEIGHT)
            mu_w[i, k, :no] = w[:no]
            mu_w[i, k, O : O + k] = w[no:]
        r = cur.astype(np.int64) - grid.predict(mu_w[i], nb, cur, Q)
        absr = np.abs(r).astype(np.float64)
        absq = np.abs(cur)
        for k in range(C):  # scale: spread, |r| around, earlier channels' |q| and |r| here
            A = np.concatenate([np.ones((len(sel), 1)), spread[:, k, sel].T, rr[:, k, sel].T, rsum[sel, None],
                                absq[:k, sel].T, absr[:k, sel].T], axis=1)
            v = np.clip(np.round(_nnls(A, absr[k, sel]) * 256), 0, grid.MAX_SIGMA_WEIGHT).astype(np.int64)
            pn, nn = spread.shape[0], rr.shape[0]
            sig_w[i, k, 0] = v[0]
            sig_w[i, k, 1 : 1 + pn] = v[1 : 1 + pn]
            sig_w[i, k, 1 + near : 1 + near + nn] = v[1 + pn : 1 + pn + nn]
            sig_w[i, k, 1 + near + O] = v[1 + pn + nn]
            sig_w[i, k, -2 * C : -2 * C + k] = v[2 + pn + nn : 2 + pn + nn + k]
            sig_w[i, k, -C : -C + k] = v[2 + pn + nn + k :]
        sigma = grid.scale(sig_w[i], spread, rr, rsum, absq, absr, near, O)
        start = 0
        for j, x in live:  # hand the residuals back to each sample's lattices
            n = x[0].shape[1]
            lat = lats[j]
            idx = lat.index(p)
            lat.r[idx] = absr[:, start : start + n].reshape(lat.r[idx].shape)
            part = (slice(None), slice(start, start + n))
            b = grid.unshifted_buckets(sigma[part]).astype(np.int64)
            coded[j].append((np.repeat(np.arange(C), n), b.ravel(), r[part].ravel()))
            start += n
    coded = [tuple(np.concatenate(a) for a in zip(*items)) for items in coded if items]
    freqs, report = _fit_tables([(k, b, None, r) for k, b, r in coded], C, Q, 1, sum(q.size for q in samples))
    tables = grid.GridTables(mu_w.astype(np.int32), sig_w.astype(np.int32), freqs)
    tables.check()
    return tables, report


def fit_version2(samples: list[np.ndarray], tables: grid.GridTables) -> tuple[np.ndarray, dict]:
    """Version 2 tables ``[table_rows(2), 4Q + 1]`` for the prediction and scale weights of ``tables``
    (a fitted version 1 model; unchanged, so its files still decode) from signed symbols ``samples``:
    histograms of the sign-folded residuals per table, fitted as in :func:`fit`; and a report with the
    ideal bits per symbol."""
    C, Q = tables.check()
    start = grid.GridTables(tables.mu, tables.sigma, grid.laplace_tables(Q, version=2), version=2)
    coded = [grid.coded_symbols(q, start)[1:] for q in samples if q.size]  # (k, b, quarter, r)
    return _fit_tables(coded, C, Q, 2, sum(q.size for q in samples))


def _fit_tables(coded: list, C: int, Q: int, version: int, n_symbols: int) -> tuple[np.ndarray, dict]:
    """Tables of ``version`` from every sample's ``(channel, unshifted bucket, quarter or None, coded
    residual)`` arrays: residual histograms per table with the per-file shifts the encoder would pick
    under the tables (twice refitted), smoothed with the Laplace prior; and the ideal-bits report."""
    counts = _counts(coded, Q, None, version)
    freqs = grid.laplace_tables(Q, counts, SMOOTHING, version=version)
    for _ in range(2):  # the encoder shifts buckets per file: count what it would pick
        lengths = grid.code_lengths(freqs)
        shifts = [grid.choose_shifts(k, b, r, C, lengths, Q, quarter=quarter, version=version)
                  for k, b, quarter, r in coded]
        counts = _counts(coded, Q, shifts, version)
        freqs = grid.laplace_tables(Q, counts, SMOOTHING, version=version)
    bits = float(-(counts * np.log2(freqs / float(1 << grid.PRECISION))).sum())
    return freqs, {"symbols": int(n_symbols), "bits_per_symbol": bits / max(n_symbols, 1), "alphabet": 4 * Q + 1}


def _counts(coded: list, Q: int, shifts: list | None, version: int) -> np.ndarray:
    """Residual counts ``[table_rows(version), 4Q + 1]`` of :func:`_fit_tables`' samples (shifts None: 0)."""
    N, rows = 4 * Q + 1, grid.table_rows(version)
    counts = np.zeros(rows * N)
    for j, (k, b, quarter, r) in enumerate(coded):
        table = grid.symbol_tables(np.zeros(int(k.max(initial=0)) + 1, np.int64) if shifts is None else shifts[j], k, b,
                                   quarter, version).astype(np.int64)
        counts += np.bincount(table * N + (r + 2 * Q), minlength=rows * N)
    return counts.reshape(rows, N)


HOLDOUT = 5
"""Fitting skips every HOLDOUT-th file (sorted by path, from the first), kept to measure on."""


def fit_files(files: list, holdout: int = HOLDOUT) -> list:
    """The files the model is fitted on: all but every ``holdout``-th (0 = all)."""
    return [f for i, f in enumerate(files) if holdout <= 0 or i % holdout]


def image_latents(codec, folder, *, holdout: int = HOLDOUT, progress: bool = False) -> list:
    """Float latents ``[K, h, w]`` of the images of ``folder`` (whole images, uint8 path as ``compress``)."""
    from ..data import list_images, load_images
    from ..pixels import encode_latent

    images = load_images(fit_files(list_images(folder), holdout), codec.config.channels, progress=progress)
    return [encode_latent(codec, im) for im in images]


def audio_latents(codec, folder, *, holdout: int = HOLDOUT, segment: int = 1 << 16, progress: bool = False) -> list:
    """Float latents ``[K, n]`` of the audio files of ``folder``, resampled to the codec's rate, in
    segments of ``segment`` samples (a multiple of any block; files cut to whole blocks)."""
    import torch
    from tqdm import tqdm

    from ..data.audio import list_audio, read_clip

    cfg = codec.config
    out = []
    device = next(codec.parameters()).device
    for path in tqdm(fit_files(list_audio(folder), holdout), desc="audio", disable=not progress, leave=False):
        x = read_clip(path, cfg.sample_rate, cfg.channels)  # [n, channels]
        usable = len(x) - len(x) % cfg.block
        for start in range(0, usable, segment):
            part = x[start : min(start + segment, usable)]
            xt = torch.from_numpy(np.ascontiguousarray(part.T)).unsqueeze(0).to(device)
            with torch.inference_mode():
                out.append(codec.encode(xt)[0].cpu().numpy())
    return out


def upgrade(source, data, output, *, model: str = "grid", holdout: int = HOLDOUT,
            progress: bool = False) -> tuple[str, dict]:
    """Write ``source``'s weights (a preset or weights file) with the grid context model ``model``
    (``"grid"`` or ``"grid2"``) fitted on the signals of ``data`` (never the test set) to ``output``:
    same encoder, decoder, quantizer and older tables, so files written before still decode
    (``also_decodes``); the registry's version for a registered preset, else version + 1. From a
    ``"grid"`` codec, ``"grid2"`` fits only version 2's tables (its weights are version 1's).
    Returns the new file's sha256 and the fit report."""
    from ..codec import WaveletCodec
    from ..config import GRID_MODELS
    from ..errors import InputError, WeightsError
    from ..registry import get_config, list_presets
    from ..weights import deserialize, save_weights, successor_metadata, weights_file

    path = weights_file(source)
    raw = path.read_bytes()
    old = deserialize(raw, source=str(path))
    cfg = old.config
    if model not in GRID_MODELS:
        raise InputError(f"unknown grid model {model!r}: one of {', '.join(GRID_MODELS)}")
    if cfg.grid_version >= GRID_MODELS[model]:
        raise InputError(f"{cfg.name} already codes with the {cfg.context} model")
    legacy = cfg.legacy_context if cfg.context in ("none", "grid") else cfg.context
    # a registered preset takes the registry's version (the one that names this model); others + 1
    registered = get_config(cfg.name) if cfg.name in list_presets() else None
    version = registered.version if registered is not None and registered.context == model else cfg.version + 1
    new_cfg = cfg.replace(context=model, legacy_context=legacy, version=max(version, cfg.version))
    codec = WaveletCodec(new_cfg).eval()
    missing, unexpected = codec.load_state_dict(old.state_dict(), strict=False)
    if unexpected or any(not k.startswith(("grid_", "grid2_")) for k in missing):
        raise WeightsError(f"weights do not carry over: {missing + unexpected}")
    weights = cfg.grid_version == 0  # a grid codec keeps its prediction and scale weights
    fit_info = fit_codec(codec, data, holdout=holdout, progress=progress, weights=weights)
    extra = {**successor_metadata(raw), **fit_metadata(fit_info, weights=weights, version2=model == "grid2")}
    return save_weights(codec, output, extra=extra), fit_info["per_quality"]


def fit_metadata(fit_info: dict, *, weights: bool, version2: bool) -> dict[str, str]:
    """The weights metadata of a :func:`fit_codec` report: ``grid_fit`` when the weights and version 1's
    tables were fitted (a grid codec upgraded to "grid2" keeps its own), ``grid2_fit`` when version 2's
    tables were."""
    import json

    text = json.dumps(fit_info, sort_keys=True)
    return {**({"grid_fit": text} if weights else {}), **({"grid2_fit": text} if version2 else {})}


def fit_codec(codec, data, *, holdout: int = HOLDOUT, progress: bool = False, weights: bool = True) -> dict:
    """Fit ``codec``'s grid model (config ``context="grid"`` or ``"grid2"``) in place, every quality, on
    the images or audio of ``data``; returns the report :func:`fit_metadata` stores in the weights.
    ``weights=False``: keep the prediction and scale weights and version 1's tables (fitted before)
    and fit only version 2's tables."""
    import torch

    from ..codec import grid_tables_buffer

    cfg = codec.config
    latents = (image_latents if cfg.modality == "image" else audio_latents)(codec, data, holdout=holdout,
                                                                           progress=progress)
    if not latents:
        from ..errors import InputError

        raise InputError(f"no signals to fit the entropy model on in {data}")
    report = {}
    for quality in range(1, cfg.qualities + 1):
        Q = cfg.max_symbol(quality)
        with torch.inference_mode():
            symbols = [codec.quantize(torch.from_numpy(y), quality).numpy() for y in latents]
        if weights:
            tables, rep = fit(symbols, Q, progress=progress)
            getattr(codec, f"grid_mu_{quality}").copy_(torch.from_numpy(tables.mu))
            getattr(codec, f"grid_sigma_{quality}").copy_(torch.from_numpy(tables.sigma))
            getattr(codec, grid_tables_buffer(1, quality)).copy_(torch.from_numpy(tables.freqs.astype(np.int32)))
        else:
            tables, rep = codec.grid_tables(quality, version=1), {}
        if cfg.grid_version == 2:
            freqs, rep2 = fit_version2(symbols, tables)
            getattr(codec, grid_tables_buffer(2, quality)).copy_(torch.from_numpy(freqs.astype(np.int32)))
            rep = {**rep, "version2_bits_per_symbol": rep2["bits_per_symbol"], "symbols": rep2["symbols"]}
        idx = np.concatenate([s.reshape(s.shape[0], -1) + Q for s in symbols], axis=1)
        rep["factorized_bits_per_symbol"] = ideal_bits(idx, codec.tables(quality)) / idx.size
        report[quality] = rep
        if progress:
            best = rep.get("version2_bits_per_symbol", rep.get("bits_per_symbol"))
            print(f"quality {quality}: {best:.4f} bits/symbol (factorized tables "
                  f"{rep['factorized_bits_per_symbol']:.4f})")
    return {"data": str(data), "holdout": f"every {holdout}th file (sorted) left out" if holdout > 0 else "none",
            "signals": len(latents), "model_version": cfg.grid_version, "per_quality": report}
