"""``wavelatent cache`` and ``wavelatent learn``: argument parsing and calls into the library.

``add_parsers(sub)`` adds both subcommands to the main parser's subparsers and returns their
handlers keyed by command name; each handler takes the parsed namespace and returns an exit code.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

CACHE_EPILOG = """examples:
  wavelatent cache ../shared/data/imagenette/train -o cache/in-train --preset image-rgb-16x --format coded
  wavelatent cache photos/ -o cache/photos --weights w.safetensors --labels none --size 144 --jobs 2
  wavelatent cache photos/ -o cache/photos --preset image-rgb-16x --engine ray --jobs 8
  wavelatent cache ../shared/data/audio/fsdd -o cache/digits --preset audio-mono-2x --labels from-prefix --size 8192
"""

LEARN_EPILOG = """examples:
  wavelatent --threads 2 learn ../shared/data/imagenette -o runs/learn   # the five inputs, 12 epochs
  wavelatent learn ../shared/data/imagenette -o runs/quick --inputs latents-16x,pixels-32 --epochs 3
  wavelatent learn DATA -o OUT --inputs latents:w.safetensors,pixels:32 --plugin my_inputs
  wavelatent --threads 2 learn ../shared/data/audio/fsdd -o runs/digits   # spoken digits: 2x latents vs 4 kHz
  wavelatent learn ../shared/data/imagenette -o runs/pareto --seeds 3 \
      --inputs latents-16x,jpeg:32@75,webp:64@50,jpeg:128@10,png:128   # accuracy per byte: OUT/pareto.{json,png}
"""


def add_parsers(sub) -> dict[str, Callable]:
    """Add ``cache`` and ``learn`` to ``sub`` (an argparse subparsers action)."""
    import argparse

    fmt = argparse.RawDescriptionHelpFormatter
    c = sub.add_parser("cache", help="encode a folder of images or audio into a sharded latent cache",
                       epilog=CACHE_EPILOG, formatter_class=fmt, description=(
        "Encode every image under SRC (resized: short side to --size, centre crop --size x --size) -- or, with "
        "an audio preset, every audio file (resampled to the preset's rate, centred in --size samples) -- into "
        "shards of integer latent symbols plus CACHE/index.json: raw WebDataset-style tar shards (key.npy + "
        "key.cls) or entropy-coded .wlt shards. Finished shards are skipped on a rerun; a cache folder made "
        "with other weights or settings is refused."))
    c.add_argument("src", help="folder of images or audio files (recursive); with --labels from-folders: "
                   "SRC/<class>/<file>")
    c.add_argument("-o", "--out", required=True, help="cache folder")
    c.add_argument("-p", "--preset", help="preset name (see `wavelatent list`)")
    c.add_argument("-w", "--weights", help="a .safetensors weights file instead of a shipped preset")
    c.add_argument("-q", "--quality", type=int, help="quality level (default: the preset's)")
    c.add_argument("--labels", default="from-folders", choices=("from-folders", "from-prefix", "none"),
                   help="class labels from the first folder level (default), from the file name up to its first "
                   "'_' (from-prefix: 7_jackson_32.wav is class 7), or none")
    c.add_argument("--format", dest="storage", default="raw", choices=("raw", "coded"),
                   help="raw int8/int16 symbols in tar shards (fast) or rANS-coded .wlt shards (small)")
    c.add_argument("--size", type=int, help="images are resized/centre-cropped to SIZE x SIZE (128); audio is "
                   "centred in SIZE samples (default: one second)")
    c.add_argument("--shard-size", type=int, default=256, help="samples per shard (256)")
    c.add_argument("-j", "--jobs", type=int, default=1, help="worker processes, or Ray actors with --engine ray")
    c.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local process pool, or Ray Data (pip install 'wavelatent[scale]')")
    c.add_argument("--limit", type=int, help="only the first N images")
    c.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    lp = sub.add_parser("learn", help="train one small CNN on latents and on pixels, compare", epilog=LEARN_EPILOG,
                        formatter_class=fmt, description=(
        "Classification on DATA/{train,val}/<class>/* images, or on the Free Spoken Digit recordings "
        "(DATA/{digit}_{speaker}_{n}.wav, n 0-4 tested): the same small CNN (1-D for audio), epochs, optimizer "
        "and augmentation (random crops on an 8 px / 32 sample grid, horizontal flips for images) for each input "
        "type; writes OUT/results.json, OUT/results.md and OUT/results.png. Finished inputs are skipped on a rerun."))
    lp.add_argument("data", help="folder with train/ and val/ class folders, or of spoken-digit .wav files")
    lp.add_argument("-o", "--out", required=True, help="output folder (image cache, per-input results, plot)")
    lp.add_argument("--inputs", help="comma-separated input types (default for images: latents-16x,pixels-32,"
                    "pixels-128,latents-4x,pixels-64; also pixels:N, latents:PRESET_OR_WEIGHTS[@Q], and stored "
                    "files the model sees decoded: jpeg:N@Q, webp:N@Q, png:N; for spoken digits: latents-2x,"
                    "samples-4k,samples-8k,samples-2k; also samples:RATE (bytes: FLAC), opus:RATE@LEVEL)")
    lp.add_argument("--task", default="classify", choices=("classify", "colorize"),
                    help="classify (default), or colorize: predict colour from grayscale, image-gray-16x latents -> "
                    "image-rgb-16x latents against 32 px gray -> 32 px colour thumbnails (writes OUT/colorize.*)")
    lp.add_argument("--plugin", action="append", default=[],
                    help="import this module first (it may register input types); repeatable")
    lp.add_argument("--epochs", type=int, default=12, help="training epochs for every input (12)")
    lp.add_argument("--batch-size", type=int, default=64, help="samples per step (64)")
    lp.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (2e-3; one warmup epoch, "
                    "then cosine)")
    lp.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (0.05)")
    lp.add_argument("--width", type=int, default=32, help="CNN width at the latent resolution (doubles twice after)")
    lp.add_argument("--stem-layers", type=int, default=None, help="conv layers in every input's stem (default: "
                    "as few as the input needs: log2(input size / body size) stride-2 layers, or one stride-1 layer)")
    lp.add_argument("--size", type=int, help="stored image size (short side resize + centre crop; 144), or "
                    "samples per stored clip (8192)")
    lp.add_argument("--crop", type=int, help="model window in pixels of the stored images (128) or in samples "
                    "(7680); the CNN body runs at crop/8 positions (crop/32 for audio), and every input's window "
                    "must be that times a power of two, or smaller")
    lp.add_argument("--grid", type=int, help="random crop offsets are multiples of this many pixels (8) or samples (32)")
    lp.add_argument("--seed", type=int, default=0, help="seed of the network and of the crop/flip draws (0)")
    lp.add_argument("--seeds", type=int, default=1, help="train every input this many times (seeds SEED, SEED+1, "
                    "...) and report top-1 as mean ± standard deviation (1)")
    lp.add_argument("--stem", default="wide", choices=("wide", "resnet", "thin"),
                    help="stem of larger inputs: wide (every stem layer as wide as the body; default), resnet (wide "
                    "plus a residual block at each resolution above the body's), thin (16 channels at first)")
    lp.add_argument("--device", default="auto", help="torch device for training: auto (CUDA where present, else "
                    "CPU), cpu, cuda, cuda:1, ...")
    lp.add_argument("--limit-per-class", type=int, help="only the first N images of each class (quick runs)")
    lp.add_argument("-f", "--force", action="store_true", help="redo inputs whose results exist")
    lp.add_argument("--collect", action="store_true", help="train nothing: gather the finished runs in OUT/runs "
                    "(all, or those of --inputs) into OUT/results.* and OUT/pareto.* (for runs made by several "
                    "learn processes into one OUT)")
    lp.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars or per-epoch log lines")

    tc = sub.add_parser("train-classifier", help="train the frozen classifier of `evaluate --task classify`",
                        epilog=TRAIN_CLASSIFIER_EPILOG, formatter_class=fmt, description=(
        "Train a small CNN once on clean data -- DATA/{train,val}/<class>/* images (pixels: short side 144, "
        "random 128 px crops, flips) or the spoken-digit recordings (8 kHz samples) -- with `learn`'s recipe, and "
        "write it as safetensors with its config and input convention in the metadata (no pickle). Its own "
        "validation top-1 is recorded; `evaluate --task classify` reports it as the clean ceiling."))
    tc.add_argument("data", help="folder with train/ and val/ class folders, or of spoken-digit .wav files")
    tc.add_argument("-o", "--out", required=True, help="output .safetensors")
    tc.add_argument("--epochs", type=int, default=16, help="training epochs (16)")
    tc.add_argument("--width", type=int, default=32, help="CNN width after the stem (32; doubles twice after)")
    tc.add_argument("--batch-size", type=int, default=64, help="samples per step (64)")
    tc.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (2e-3)")
    tc.add_argument("--seed", type=int, default=0, help="seed (0)")
    tc.add_argument("--stem", default="thin", choices=("thin", "wide", "resnet"),
                    help="the network's stem (see `learn --stem`; thin, as the stored classifiers have)")
    tc.add_argument("--limit-per-class", type=int, help="only the first N samples of each class (quick runs)")
    tc.add_argument("--work", help="folder for the decoded splits (default: beside OUT)")
    tc.add_argument("--no-progress", dest="progress", action="store_false", help="no progress or epoch lines")
    return {"cache": cmd_cache, "learn": cmd_learn, "train-classifier": cmd_train_classifier}


TRAIN_CLASSIFIER_EPILOG = """examples:
  wavelatent --threads 1 train-classifier ../shared/data/imagenette -o results/mpq/imagenette/classifier.safetensors
  wavelatent --threads 1 train-classifier ../shared/data/audio/fsdd -o results/mpq/fsdd/classifier.safetensors --width 48 --epochs 18
"""


def cmd_train_classifier(a) -> int:
    from ..errors import InputError
    from ..evaluate.classifier import train_classifier

    if not Path(a.data).is_dir():
        raise InputError(f"{a.data}: no such folder")
    for key in ("epochs", "width", "batch_size"):
        if getattr(a, key) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be positive")
    clf = train_classifier(a.data, a.out, epochs=a.epochs, width=a.width, batch_size=a.batch_size, lr=a.lr,
                           seed=a.seed, stem=a.stem, limit_per_class=a.limit_per_class, work=a.work, progress=a.progress)
    cfg = clf.config
    print(f"{a.out}: {cfg.modality} classifier, {len(cfg.classes)} classes, val top-1 {100 * cfg.val_top1:.2f} % "
          f"({cfg.val_samples} samples), sha256 {clf.sha256[:12]}")
    return 0


def cmd_cache(a) -> int:
    from ..data.cache import build_cache
    from ..errors import InputError

    if bool(a.preset) == bool(a.weights):
        raise InputError("give --preset or --weights (one of them)")
    if not Path(a.src).is_dir():
        raise InputError(f"{a.src}: no such folder")
    r = build_cache(a.src, a.out, a.weights or a.preset, quality=a.quality, size=a.size,
                    labels=None if a.labels == "none" else a.labels, storage=a.storage, shard_size=a.shard_size,
                    jobs=a.jobs, engine=a.engine, progress=a.progress, limit=a.limit)
    idx = r.index
    n = idx["samples"]
    print(f"{a.out}: {n} samples of {'x'.join(map(str, idx['latent_shape']))} {idx['preset']} q{idx['quality']} "
          f"symbols in {len(idx['shards'])} {idx['storage']} shards ({r.written} written, {r.skipped} skipped), "
          f"{r.cache_bytes:,} bytes = {r.cache_bytes / n:,.0f} per sample; source files {r.source_bytes:,} bytes "
          f"({r.source_bytes / max(r.cache_bytes, 1):.1f}x larger); {r.seconds:.1f} s", file=sys.stderr)
    return 0


def cmd_learn(a) -> int:
    import importlib

    from ..learn import LearnOptions, learn
    from ..learn.experiment import results_table

    for module in a.plugin:
        importlib.import_module(module)
    inputs = tuple(s.strip() for s in a.inputs.split(",") if s.strip()) if a.inputs else None
    if a.collect:
        from ..learn import collect

        doc = collect(a.out, inputs, progress=a.progress)
        print(results_table(doc))
        print(f"results: {Path(a.out) / 'results.json'}, {Path(a.out) / 'pareto.json'}", file=sys.stderr)
        return 0
    opts = LearnOptions(
        data=a.data, out=a.out, inputs=inputs, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
        weight_decay=a.weight_decay, width=a.width, stem_layers=a.stem_layers, size=a.size, crop=a.crop,
        grid=a.grid, seed=a.seed, seeds=a.seeds, stem=a.stem, device=a.device, limit_per_class=a.limit_per_class, force=a.force, progress=a.progress, task=a.task,
    )
    doc = learn(opts)
    if a.task == "colorize":
        from ..learn.colorize import colorize_table

        print(colorize_table(doc))
        print(f"results: {Path(a.out) / 'colorize.json'}", file=sys.stderr)
        return 0
    print(results_table(doc))
    print(f"results: {Path(a.out) / 'results.json'}", file=sys.stderr)
    return 0
