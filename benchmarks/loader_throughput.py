"""Loader throughput per CPU core: samples per second delivered into a float batch tensor by a
torch ``DataLoader``, latents against the usual pixel pipelines, all measured in the same run.

    python benchmarks/loader_throughput.py --quick                  # 512 images, under a minute
    python benchmarks/loader_throughput.py --json results/learning/loader_throughput.json   # 4,000

Pipelines (every one yields ``(float32 tensor, label)`` per sample, batches of ``--batch-size``,
shuffled, random crop and horizontal flip as in ``wavelatent learn``'s training):

``latents-raw`` / ``latents-coded``
    :class:`~wavelatent.data.LatentDataset` on a raw (tar of ``.npy``) and on a coded (rANS ``.wlt``
    shards) cache of ``image-rgb-16x`` latents of the images at 144 px (``[12, 18, 18]``), random
    16x16 latent crop (128 px) and the cache's fitted latent flip. ``preload=True``: the main
    process reads (decodes) every shard once when the dataset is made, inside the first epoch's
    time, and the forked workers share the symbols.
``latents-coded-per-worker``
    The same without ``preload``: each worker decodes a shard the first time it samples from it
    and keeps it, so with shuffling every worker decodes every shard in its first epoch.
``jpeg``
    The torchvision-style pipeline written with Pillow/numpy: decode the original Imagenette JPEG,
    resize its short side to 144 (bilinear, antialiased), random 128x128 crop, flip, to float CHW
    in [0, 1] (no normalization for any pipeline).
``thumbnail``
    Pre-shrunk JPEG thumbnails (quality 90) of the 144 px images box-shrunk 4x to 36 px, i.e. the
    ``pixels-32`` input of ``wavelatent learn`` (which ties with the 16x latents in accuracy):
    decode, random 32x32 crop, flip, to float.
``memmap``
    uint8 ``[N, 144, 144, 3]`` in one ``.npy`` read through a numpy memory map: random 128x128 crop,
    flip, to float (a whole batch per read, like ``LatentDataset``).

Per core: every configuration runs with 1 and with 2 worker processes (``--workers``), and its
samples/s are divided by the number of workers. The main process is not counted as a core: it only
receives the collated batches through shared memory (its CPU seconds are reported as
``main_cpu_s``, the workers' as ``workers_cpu_s``, and ``samples_per_cpu_s`` counts both); with 0
workers the main process is the one core. Each configuration runs ``--epochs`` epochs on fresh
workers: the first (worker start-up, codec loading, shard decoding) is reported apart from the
warm ones (the first includes making the dataset: a coded cache's codec is loaded there, once,
and forked workers share it), and the headline figure is a training run of ``--run-epochs`` (12, as ``wavelatent learn``)
projected from them: ``run_epochs * N / (t_first + (run_epochs - 1) * t_warm)``. One-off imports
(torch's on the first codec load, Pillow's) are paid in the main process before anything is timed.

The last line reads ``ratio_vs_jpeg=X ratio_vs_thumbnail=Y``: ``latents-coded`` per core over
``jpeg`` and over ``thumbnail``, at the headline worker count (1: a worker then has a core to
itself), projected ``--run-epochs`` run. The scratch folder (``--scratch``) keeps the subset, both
caches, the thumbnails and the memory map, and a rerun reuses them. The machine's load average is
printed with every row: other jobs on the machine lower every figure (the ratios less).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PIPELINES = ("latents-raw", "latents-coded", "latents-coded-per-worker", "jpeg", "thumbnail", "memmap")
SIZE, CROP, SHRINK = 144, 128, 4  # stored image side, model window, thumbnail shrink (36 px, crop 32)
THUMB_QUALITY = 90


# --- pixel pipelines ---------------------------------------------------------------------------
def _to_float(a: np.ndarray) -> torch.Tensor:
    """uint8 ``[..., H, W, C]`` -> float32 ``[..., C, H, W]`` in [0, 1] (torchvision's ToTensor)."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.movedim(-1, -3).contiguous().to(torch.float32).div_(255)


def _window(h: int, w: int, crop: int) -> tuple[int, int]:
    """A random crop's top-left corner (torch's generator: a DataLoader seeds it per worker)."""
    return int(torch.randint(h - crop + 1, ())), int(torch.randint(w - crop + 1, ()))


class PillowImages(Dataset):
    """Image files decoded with Pillow: short side to ``resize`` (None: as stored), random
    ``crop x crop`` window, horizontal flip with probability 1/2, float CHW."""

    def __init__(self, paths: Sequence[str | os.PathLike], labels: Sequence[int], crop: int,
                 resize: int | None = None) -> None:
        self.paths, self.labels, self.crop, self.resize = [str(p) for p in paths], list(labels), crop, resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        if self.resize is not None:
            w, h = img.size
            s = self.resize / min(w, h)
            img = img.resize((max(self.resize, round(w * s)), max(self.resize, round(h * s))), Image.BILINEAR)
        top, left = _window(img.height, img.width, self.crop)
        a = np.array(img.crop((left, top, left + self.crop, top + self.crop)))  # a copy, as torchvision's
        if bool(torch.rand(()) < 0.5):
            a = a[:, ::-1]
        return _to_float(a), self.labels[i]


class MemmapImages(Dataset):
    """uint8 images ``[N, H, W, C]`` in a ``.npy`` file through a memory map (opened per process):
    random ``crop`` window and flip per sample, a batch read at once."""

    def __init__(self, path: str | os.PathLike, labels: Sequence[int], crop: int) -> None:
        self.path, self.labels, self.crop = str(path), list(labels), crop
        self._arr: np.ndarray | None = None

    def _array(self) -> np.ndarray:
        if self._arr is None:
            self._arr = np.load(self.path, mmap_mode="r")
        return self._arr

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        arr = self._array()
        c = self.crop
        out = np.empty((len(indices), c, c, arr.shape[3]), np.uint8)
        for j, i in enumerate(indices):
            top, left = _window(arr.shape[1], arr.shape[2], c)
            win = arr[int(i), top : top + c, left : left + c]
            out[j] = win[:, ::-1] if bool(torch.rand(()) < 0.5) else win
        xs = _to_float(out).unbind(0)
        return [(x, self.labels[int(i)]) for x, i in zip(xs, indices)]


# --- the scratch folder: subset, caches, thumbnails, memory map -------------------------------
def pick_sources(src: Path, n: int | None) -> tuple[list[Path], list[int], list[str]]:
    """``n`` images spread evenly over the sorted files of ``src/<class>/`` (all when None)."""
    from wavelatent.data.cache import list_sources

    paths, labels, classes = list_sources(src, "from-folders")
    if n is not None and n < len(paths):
        keep = np.linspace(0, len(paths) - 1, n).round().astype(int)
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    return paths, [int(v) for v in labels], classes


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def prepare(src: Path, scratch: Path, n: int | None, *, preset: str = "image-rgb-16x", jobs: int = 1,
            log: Callable[[str], None] = print) -> dict:
    """Everything the pipelines read, built under ``scratch`` once (a rerun reuses it): a folder of
    links to the chosen originals, raw and coded latent caches, 36 px JPEG thumbnails and the
    144 px memory map. Returns their paths, labels and bytes per sample."""
    from PIL import Image

    from wavelatent.data.cache import build_cache, prepare_image, read_index
    from wavelatent.models import load_codec

    paths, labels, classes = pick_sources(src, n)
    root = scratch / f"{src.name}-{len(paths)}"
    subset = root / "originals"
    links = []
    for p in paths:
        link = subset / p.parent.name / p.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(p.resolve())
        links.append(link)
    out = {"root": str(root), "originals": [str(p) for p in links], "labels": labels, "classes": classes}
    codec = None
    for storage in ("raw", "coded"):
        cache = root / f"{preset}-{storage}"
        try:
            done = read_index(cache).get("complete") and read_index(cache)["samples"] == len(links)
        except Exception:
            done = False
        if not done:
            t = time.perf_counter()
            codec = codec or load_codec(preset)
            build_cache(subset, cache, codec, size=SIZE, storage=storage, jobs=jobs, progress=False,
                        flip_images=min(64, len(links)))  # the fitted flip costs the same however fitted
            log(f"built the {storage} cache of {len(links)} images in {time.perf_counter() - t:.1f} s: {cache}")
        out[f"cache-{storage}"] = str(cache)
    thumbs = root / f"thumbnails-{SIZE // SHRINK}-q{THUMB_QUALITY}"
    memmap = root / f"pixels-{SIZE}.npy"
    thumb_paths = [thumbs / p.parent.name / (p.stem + ".jpg") for p in links]
    if not (thumbs / "complete").exists() or not memmap.exists():
        t = time.perf_counter()
        pixels = np.lib.format.open_memmap(str(memmap) + ".tmp.npy", "w+", np.uint8, (len(links), SIZE, SIZE, 3))
        for i, (p, tp) in enumerate(zip(links, thumb_paths)):
            a = prepare_image(p, SIZE, 3)  # the cache's own resize: short side 144 (bicubic), centre crop
            pixels[i] = a
            tp.parent.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(a).reduce(SHRINK)  # box filter, as wavelatent learn's pixels-32 input
            tmp = tp.with_name(tp.name + ".tmp")
            img.save(tmp, "JPEG", quality=THUMB_QUALITY)
            os.replace(tmp, tp)
        pixels.flush()
        del pixels
        os.replace(str(memmap) + ".tmp.npy", memmap)
        _atomic_bytes(thumbs / "complete", b"")
        log(f"built {len(links)} thumbnails and the memory map in {time.perf_counter() - t:.1f} s: {root}")
    out["thumbnails"] = [str(p) for p in thumb_paths]
    out["memmap"] = str(memmap)
    n_ = len(links)
    out["bytes_per_sample"] = {
        "latents-raw": sum(s["bytes"] for s in read_index(out["cache-raw"])["shards"]) / n_,
        "latents-coded": sum(s["bytes"] for s in read_index(out["cache-coded"])["shards"]) / n_,
        "latents-coded-per-worker": sum(s["bytes"] for s in read_index(out["cache-coded"])["shards"]) / n_,
        "jpeg": sum(p.stat().st_size for p in links) / n_,
        "thumbnail": sum(p.stat().st_size for p in thumb_paths) / n_,
        "memmap": SIZE * SIZE * 3,
    }
    return out


def make_dataset(name: str, prep: dict) -> Dataset:
    """The dataset of pipeline ``name`` (see the module docstring) over what :func:`prepare` built."""
    from wavelatent.data import LatentDataset

    if name.startswith("latents-"):
        return LatentDataset(prep[f"cache-{name.split('-')[1]}"], crop=CROP // 8, random_crop=True, flip=True,
                             preload=name != "latents-coded-per-worker")
    if name == "jpeg":
        return PillowImages(prep["originals"], prep["labels"], CROP, resize=SIZE)
    if name == "thumbnail":
        return PillowImages(prep["thumbnails"], prep["labels"], CROP // SHRINK)
    if name == "memmap":
        return MemmapImages(prep["memmap"], prep["labels"], CROP)
    raise ValueError(f"unknown pipeline {name!r} (known: {', '.join(PIPELINES)})")


# --- measuring ---------------------------------------------------------------------------------
def warm_up(prep: dict) -> None:
    """Pay one-off imports in the main process before any timing (forked workers inherit them): a
    first codec load (torch imports ~2 s of modules on its first meta-device op) and a first decode
    of each pipeline, outside every measurement."""
    for name in PIPELINES:
        ds = make_dataset(name, prep)
        ds[0]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(make: Callable[[], Dataset], workers: int, *, batch_size: int = 256, epochs: int = 3,
            run_epochs: int = 12, seed: int = 0) -> dict:
    """Epochs over the dataset ``make()`` builds, through a fresh DataLoader (persistent workers);
    the first epoch's time includes making the dataset and starting the workers. Wall and CPU
    seconds, samples/s first, warm (median of the later epochs), projected ``run_epochs`` run, per core."""
    if epochs < 2:
        raise ValueError("epochs must be at least 2 (one cold, one warm)")
    load = os.getloadavg()[0]
    gc.collect()
    cpu_main, cpu_children = time.process_time(), _children_cpu()
    start = time.perf_counter()
    ds = make()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))
    times, shape = [], None
    for epoch in range(epochs):
        t, n = start if epoch == 0 else time.perf_counter(), 0
        for x, _y in loader:
            if x.dtype != torch.float32:
                raise TypeError(f"a pipeline gave {x.dtype}, not float32")
            n += x.shape[0]
            shape = list(x.shape[1:])
        times.append(time.perf_counter() - t)
        if n != len(ds):
            raise RuntimeError(f"an epoch gave {n} samples of {len(ds)}")
    main_cpu = time.process_time() - cpu_main
    N, cores = len(ds), max(workers, 1)
    del loader, ds, x, _y
    gc.collect()  # the iterator's finalizer stops and joins the workers: their CPU time is then counted
    workers_cpu = _children_cpu() - cpu_children
    warm = statistics.median(times[1:])
    run = run_epochs * N / (times[0] + (run_epochs - 1) * warm)
    return {
        "workers": workers, "cores": cores, "samples": N, "sample_shape": shape, "epochs": epochs,
        "epoch_s": times, "samples_per_s_first": N / times[0], "samples_per_s_warm": N / warm,
        "samples_per_s_run": run, "per_core_first": N / times[0] / cores, "per_core_warm": N / warm / cores,
        "per_core_run": run / cores, "main_cpu_s": main_cpu, "workers_cpu_s": workers_cpu,
        "samples_per_cpu_s": N * epochs / max(main_cpu + workers_cpu, 1e-9),
        "load_average_1min": [load, os.getloadavg()[0]],
    }


def run_benchmark(prep: dict, *, workers: Sequence[int] = (1, 2), pipelines: Sequence[str] = PIPELINES,
                  batch_size: int = 256, epochs: int = 3, run_epochs: int = 12, headline_workers: int | None = None,
                  log: Callable[[str], None] = print) -> dict:
    """Every pipeline at every worker count (worker count outermost, so the pipelines compared at one
    count ran close together); returns rows, ratios and the ``ratio_vs_jpeg=...`` line (at
    ``headline_workers``: 1 when measured, else the first count)."""
    if headline_workers is None:
        headline_workers = 1 if 1 in workers else workers[0]
    torch.set_num_threads(1)
    warm_up(prep)
    rows = []
    log(f"{'pipeline':24s} {'workers':>7s} {'first/s':>9s} {'warm/s':>9s} {'run/s':>9s} {'run/s/core':>10s} "
        f"{'/cpu-s':>8s} {'B/sample':>9s}  load")
    for w in workers:
        for name in pipelines:
            r = {"pipeline": name, **measure(partial(make_dataset, name, prep), w, batch_size=batch_size,
                                             epochs=epochs, run_epochs=run_epochs)}
            r["bytes_per_sample"] = prep["bytes_per_sample"][name]
            rows.append(r)
            log(f"{name:24s} {w:7d} {r['samples_per_s_first']:9,.0f} {r['samples_per_s_warm']:9,.0f} "
                f"{r['samples_per_s_run']:9,.0f} {r['per_core_run']:10,.0f} {r['samples_per_cpu_s']:8,.0f} "
                f"{r['bytes_per_sample']:9,.0f}  {r['load_average_1min'][0]:.2f}->{r['load_average_1min'][1]:.2f}")
    ratios: dict[str, dict] = {}
    for w in workers:
        by = {r["pipeline"]: r for r in rows if r["workers"] == w}
        if "latents-coded" not in by:
            continue
        ratios[str(w)] = {
            f"{key}_vs_{peer}": by["latents-coded"][f"per_core_{key}"] / by[peer][f"per_core_{key}"]
            for peer in ("jpeg", "thumbnail") if peer in by for key in ("run", "first", "warm")
        }
    for w, r in ratios.items():
        log(f"latents-coded per core, {w} worker(s): " + ", ".join(f"{k} {v:.2f}x" for k, v in r.items()))
    head = ratios.get(str(headline_workers), {})
    line = (f"ratio_vs_jpeg={head.get('run_vs_jpeg', float('nan')):.2f} "
            f"ratio_vs_thumbnail={head.get('run_vs_thumbnail', float('nan')):.2f}")
    return {"rows": rows, "ratios": ratios, "headline": {
        "workers": headline_workers, "measure": f"per core, projected {run_epochs}-epoch run",
        "ratio_vs_jpeg": head.get("run_vs_jpeg"), "ratio_vs_thumbnail": head.get("run_vs_thumbnail")},
        "line": line}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="512 images, 3 epochs per configuration (under a minute)")
    p.add_argument("--src", type=Path, default=DATA / "imagenette" / "train", help="SRC/<class>/<image> (Imagenette train)")
    p.add_argument("--samples", type=int, help="images used, spread over SRC (all; --quick: 512)")
    p.add_argument("--scratch", type=Path, default=Path("/tmp/wavelatent-loader-throughput"),
                   help="where the caches, thumbnails and memory map are built and reused")
    p.add_argument("--workers", default="1,2", help="DataLoader worker counts, comma-separated (1,2)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, help="epochs per configuration, the first cold (4; --quick: 3)")
    p.add_argument("--run-epochs", type=int, default=12, help="training run the headline is projected to (12)")
    p.add_argument("--jobs", type=int, default=1, help="processes that build the caches (1)")
    p.add_argument("--json", type=Path, help="write every figure plus provenance to this file")
    a = p.parse_args(argv)
    n = a.samples if a.samples is not None else 512 if a.quick else None
    epochs = a.epochs if a.epochs is not None else 3 if a.quick else 4
    workers = [int(v) for v in a.workers.split(",")]
    t0 = time.perf_counter()
    prep = prepare(a.src, a.scratch, n, jobs=a.jobs)
    print(f"{len(prep['labels'])} images of {a.src}, batch {a.batch_size}, {epochs} epochs per configuration, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    result = run_benchmark(prep, workers=workers, batch_size=a.batch_size, epochs=epochs, run_epochs=a.run_epochs)
    if a.json:
        sys.path.insert(0, str(ROOT / "scripts"))
        from provenance import provenance

        doc = {"src": str(a.src), "samples": len(prep["labels"]), "batch_size": a.batch_size, "epochs": epochs,
               "run_epochs": a.run_epochs, "workers": workers, "pipelines": list(PIPELINES),
               "bytes_per_sample": prep["bytes_per_sample"], **{k: result[k] for k in ("rows", "ratios", "headline")},
               "seconds": time.perf_counter() - t0,
               "provenance": provenance("python benchmarks/loader_throughput.py " + " ".join(
                   sys.argv[1:] if argv is None else argv), 1)}
        a.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.json.with_name(a.json.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, a.json)
        print(f"wrote {a.json}")
    print(f"headline: latents-coded over each peer, per core, {result['headline']['workers']} worker(s), "
          f"{result['headline']['measure']} ({time.perf_counter() - t0:.0f} s in all)")
    print(result["line"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
