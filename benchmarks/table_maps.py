"""What the grid model's map from contexts to tables trades: rANS calls against bytes (not shipped).

    python benchmarks/table_maps.py            # ~3 min; writes results/entropy/table_maps.json

The grid model (``entropy/grid.py``) codes one rANS call per (pass, channel, table) group, and a call
costs about as much as coding a hundred symbols, so fewer tables make faster coding. The shipped
``image-rgb-16x`` symbols at its default quality are mapped to tables in three ways:

* ``version 2`` (shipped): :func:`wavelatent.entropy.grid.context_map` of version 2: 40 buckets, and a
  second table for predictions near an integer in buckets 7-12; 46 tables;
* ``paired``: shifted buckets ``2m`` and ``2m + 1`` share a table, and the pairs 3-6 (buckets 6-13)
  take the near-integer second table; 24 tables;
* ``merged``: version 2's tables merged greedily, one merge at a time (two neighbouring buckets, two
  neighbouring near-integer tables, or a near-integer table into its bucket's), each time the merge
  that adds the fewest bytes per group saved. The merges are chosen on a validation split of the fit
  images (every 5th), with tables fitted on the rest; every map is then scored with tables fitted on
  all fit images, so neither scored set takes part in a choice. The map reported is the first whose
  validation groups are 40 % fewer than version 2's; the whole path is in the output.

Every map takes the shifts the shipped encoder picks, and tables fitted alike (every training photo
but every 5th; residual histograms per table with 0.5 symbols of uniform prior each). Bytes are
ideal code lengths on the photos left out and on Kodak, with groups per image (= rANS calls per
file). Speed: the stage that depends on the map (the grouping sort and one constriction call per
group, with 24-bit integer tables from the fitted ones) over 12 Kodak latents, the maps interleaved
pass by pass, the fastest of ``--passes`` passes; its streams' bytes are reported beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PRESET = "image-rgb-16x"
GROUP_CUT = 0.6
"""The merged map reported: the first whose validation groups are at most this share of version 2's."""


def atom_maps() -> dict[str, np.ndarray]:
    """Version 2's and the paired map as maps of atoms (``near * BUCKETS + shifted bucket``, ``near``:
    the prediction lies within a quarter of an integer, fraction quarters 1 and 2) to tables."""
    from wavelatent.entropy.grid import BUCKETS, FRACTION_BUCKETS, context_map

    v2 = context_map(2).astype(np.int64)[[0, 1]].ravel()  # quarter 0: far, quarter 1: near
    paired = np.tile(np.arange(BUCKETS) // 2, 2)
    lo, hi = FRACTION_BUCKETS[0] // 2, (FRACTION_BUCKETS[1] + 1) // 2  # the pairs 3-6 (buckets 6-13)
    paired[BUCKETS + 2 * lo : BUCKETS + 2 * hi] = BUCKETS // 2 + np.arange(2 * lo, 2 * hi) // 2 - lo
    return {"version 2": v2, "paired": paired}


def coded(codec, quality: int, images: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: (step, atom, residual index) of every symbol (see :func:`atom_maps`), with the shifts
    the shipped encoder picks."""
    from wavelatent.entropy import grid
    from wavelatent.pixels import encode_image_symbols

    t = codec.grid_tables(quality)
    C, Q = t.check()
    out = []
    for im in images:
        step, k, b, quarter, r = grid.coded_symbols(encode_image_symbols(codec, im, quality), t)
        shifts = grid.choose_shifts(k, b, r, C, t.code_lengths(), Q, quarter=quarter, version=t.version)
        near = (quarter == 1) | (quarter == 2)
        atom = near * grid.BUCKETS + np.clip(b + shifts[k], 0, grid.BUCKETS - 1)
        out.append((step.astype(np.int64), atom.astype(np.int64), r.astype(np.int64) + 2 * Q))
    return out


class Set:
    """A set of images as every map's score needs: residual counts per atom, and per image the
    (step, atom) pairs that occur."""

    def __init__(self, items: list, N: int, A: int) -> None:
        self.images = len(items)
        self.counts = np.zeros((A, N))
        for _, a, r in items:
            self.counts += np.bincount(a * N + r, minlength=A * N).reshape(A, N)
        self.pairs = []
        for step, a, _ in items:
            key = np.unique(step * A + a)
            self.pairs.append((key // A, key % A))

    def groups(self, table_map: np.ndarray) -> float:
        """(step, table) groups per image: rANS calls per file."""
        T = int(table_map.max()) + 1
        return float(np.mean([len(np.unique(step * T + table_map[a])) for step, a in self.pairs]))

    def ideal_bytes(self, table_map: np.ndarray, p: np.ndarray) -> float:
        """Ideal bytes per image under table probabilities ``p [T, N]``."""
        counts = np.zeros(p.shape)
        np.add.at(counts, table_map, self.counts)
        return float(-(counts * np.log2(p)).sum() / 8 / self.images)


def fitted(fit: Set, table_map: np.ndarray) -> np.ndarray:
    """Probabilities ``[T, N]`` of each table of ``table_map``, fitted on ``fit``."""
    counts = np.zeros((int(table_map.max()) + 1, fit.counts.shape[1]))
    np.add.at(counts, table_map, fit.counts)
    p = counts + 0.5 / counts.shape[1]
    return p / p.sum(1, keepdims=True)


def candidates(table_map: np.ndarray, buckets: int) -> set[tuple[int, int]]:
    """Merges of two tables of neighbouring atoms: buckets ``b, b + 1`` (far from or near an integer
    alike), and far / near of one bucket."""
    grid = table_map.reshape(2, buckets)
    pairs = [(grid[g, b], grid[g, b + 1]) for g in range(2) for b in range(buckets - 1)]
    pairs += [(grid[0, b], grid[1, b]) for b in range(buckets)]
    return {(int(min(x, y)), int(max(x, y))) for x, y in pairs if x != y}


def merged(train: Set, val: Set, start: np.ndarray, buckets: int, cut: float) -> tuple[list[np.ndarray], int]:
    """The greedy path of merged maps from ``start``, chosen on ``val`` with tables fitted on ``train``:
    each step the merge with the fewest validation bytes added per group saved, until a few merges past
    the first map with at most ``cut`` of the validation groups; and that map's index in the path."""
    table_map, groups0 = start, val.groups(start)
    current = (val.ideal_bytes(start, fitted(train, start)), groups0)
    path, chosen = [], None
    while table_map.max() > 0 and (chosen is None or len(path) < chosen + 5):
        best = None
        for keep, drop in sorted(candidates(table_map, buckets)):
            m = np.unique(np.where(table_map == drop, keep, table_map), return_inverse=True)[1]
            b, g = val.ideal_bytes(m, fitted(train, m)), val.groups(m)
            cost = (b - current[0]) / max(current[1] - g, 1e-9)
            if best is None or cost < best[0]:
                best = (cost, m, (b, g))
        _, table_map, current = best
        path.append(table_map)
        if chosen is None and current[1] <= cut * groups0:
            chosen = len(path) - 1
    return path, chosen


def streams(items: list, table_map: np.ndarray, models: list, rows: int):
    """A function coding image ``i``'s residuals grouped by (step, table) as the grid encoder does."""
    import constriction

    keys = [step * rows + table_map[a] for step, a, _ in items]
    dtype = np.int16 if max(int(k.max()) for k in keys) < 1 << 15 else np.int32  # a radix sort, as there
    prepared = [(k.astype(dtype), r.astype(np.int32)) for k, (*_, r) in zip(keys, items)]

    def code(i: int) -> int:
        key, r = prepared[i]
        order = np.argsort(key, kind="stable")
        sym = r.take(order)
        counts = np.bincount(key)
        used = counts.nonzero()[0]
        ends = np.cumsum(counts[used]).tolist()
        coder = constriction.stream.stack.AnsCoder()
        push = coder.encode_reverse
        for s0, s1, j in zip(([0] + ends[:-1])[::-1], ends[::-1], (used % rows)[::-1].tolist()):
            push(sym[s0:s1], models[j])
        return 4 * coder.num_words()

    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=21, help="timed passes per map (the fastest counts)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "entropy" / "table_maps.json")
    args = parser.parse_args(argv)
    import torch

    from entropy_coding import fastest_passes  # this folder: the same interleaved timing

    from wavelatent.data import list_images, load_images
    from wavelatent.entropy.grid import BUCKETS
    from wavelatent.entropy.rans import categorical_models
    from wavelatent.entropy.tables import quantize_pmf
    from wavelatent.models import load_codec
    from wavelatent.train.grid import HOLDOUT, fit_files

    torch.set_num_threads(1)
    started = time.time()
    codec = load_codec(PRESET)
    quality = codec.config.default_quality
    N = 4 * codec.config.max_symbol(quality) + 1
    A = 2 * BUCKETS
    train_files = list_images(DATA / "images" / "train")
    fit_items = coded(codec, quality, load_images(fit_files(train_files, HOLDOUT), 3))
    kodak_items = coded(codec, quality, load_images(list_images(DATA / "images" / "kodak"), 3))
    fit = Set(fit_items, N, A)
    scored = {"held-out photos": Set(coded(codec, quality, load_images(train_files[::HOLDOUT], 3)), N, A),
              "kodak": Set(kodak_items, N, A)}
    maps = atom_maps()
    print(f"{len(fit_items)} fit images; merges chosen on every {HOLDOUT}th of them, tables fitted on the rest")
    path, chosen = merged(Set([x for i, x in enumerate(fit_items) if i % HOLDOUT], N, A),
                          Set(fit_items[::HOLDOUT], N, A), maps["version 2"], BUCKETS, GROUP_CUT)
    maps["merged"] = path[chosen]

    def report(table_map: np.ndarray) -> dict:
        p = fitted(fit, table_map)
        return {"tables": int(table_map.max()) + 1,
                **{name: {"ideal_bytes_per_image": s.ideal_bytes(table_map, p), "groups_per_image": s.groups(table_map)}
                   for name, s in scored.items()}}

    rows = {name: report(m) for name, m in maps.items()}
    curve = [{**report(m), "map": m.tolist()} for m in path]
    for row in [*rows.values(), *curve]:
        for name in scored:
            base = rows["version 2"][name]
            row[name]["bytes_vs_version_2"] = row[name]["ideal_bytes_per_image"] / base["ideal_bytes_per_image"]
            row[name]["groups_vs_version_2"] = row[name]["groups_per_image"] / base["groups_per_image"]

    # the map-dependent stage of the encoder, on 12 Kodak latents, maps interleaved pass by pass
    timed = kodak_items[:12]
    coders = {}
    for name, m in maps.items():
        tables = quantize_pmf(fitted(fit, m), 24).astype(np.int64)
        coders[name] = streams(timed, m, categorical_models(tables, 24), int(m.max()) + 1)
    sizes = {name: sum(code(i) for i in range(len(timed))) for name, code in coders.items()}
    best = fastest_passes({name: (code, range(len(timed))) for name, code in coders.items()}, args.passes)
    for name in maps:
        rows[name]["kodak"]["grouping_and_rans_ms_per_image"] = 1e3 * best[name] / len(timed)
        rows[name]["kodak"]["stream_bytes_per_image"] = sizes[name] / len(timed)
        r, k = rows[name], rows[name]["kodak"]
        h = r["held-out photos"]
        print(f"{name:10s} {r['tables']:2d} tables: held-out {100 * (h['bytes_vs_version_2'] - 1):+.2f} % bytes, "
              f"{100 * (h['groups_vs_version_2'] - 1):+.1f} % groups; Kodak {100 * (k['bytes_vs_version_2'] - 1):+.2f} % bytes, "
              f"{k['groups_per_image']:.0f} groups, grouping + rANS {k['grouping_and_rans_ms_per_image']:.3f} ms per image")
    result = {"preset": PRESET, "quality": quality, "fit_images": len(fit_items),
              "timing": f"fastest of {args.passes} passes over {len(timed)} Kodak latents, maps interleaved",
              "atoms": "near * 40 + shifted bucket (near: fraction quarter 1 or 2)",
              "maps": {name: {**row, "map": maps[name].tolist()} for name, row in rows.items()},
              "merged_is_step": chosen + 1, "merge_path": curve}
    sys.path.insert(0, str(ROOT / "scripts"))
    from provenance import provenance

    from wavelatent.io.files import atomic_write_bytes

    result["provenance"] = provenance("python benchmarks/table_maps.py", 1)
    result["seconds"] = time.time() - started
    atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode(), force=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
