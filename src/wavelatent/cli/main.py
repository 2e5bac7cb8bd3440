"""Argument parsing and output formatting for ``wavelatent``; every command is ``main(argv) -> int``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from ..config import GRID_MODELS
from . import demo, evaluate, learning, walloc

EPILOG = """examples:
  wavelatent demo                                        # the shipped sample image and clip, offline
  wavelatent compress photo.png -o photo.wlt            # default preset for the image's mode
  wavelatent decompress photo.wlt -o photo_hat.png --reference photo.png
  wavelatent compress photos/ -o coded/ --quality 4      # a whole tree, mirrored
  wavelatent info photo.wlt                              # the file's header
  wavelatent list                                        # presets and their shipped weights
  wavelatent compress song.flac -o song.wlt              # audio: WAV/FLAC/OGG/Opus/MP3 in
  wavelatent decompress song.wlt -o song.wav             # WAV or FLAC out, same rate/channels/length
"""


def _err(msg: str) -> None:
    print(f"wavelatent: error: {msg}", file=sys.stderr)


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wavelatent",
        description="Wavelet learned lossy compression: a near-free encoder, small entropy-coded latents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compress", help="image or audio file(s) -> .wlt", description=(
        "Compress images (PNG/JPEG/WebP/TIFF/BMP...) or audio (WAV/FLAC/OGG/Opus/MP3) to .wlt files. A folder is compressed recursively into "
        "a mirrored tree; finished outputs are skipped on a rerun unless --force. '-' reads stdin / writes stdout."))
    c.add_argument("input", help="image file, folder, or - for stdin")
    c.add_argument("-o", "--output", help="output .wlt file or folder (default: input with .wlt suffix; - = stdout)")
    c.add_argument("-p", "--preset", help="preset name (see `wavelatent list`); default: by image mode")
    c.add_argument("-w", "--weights", help="a .safetensors weights file instead of a shipped preset")
    c.add_argument("-q", "--quality", type=int, help="quality level, 1 = smallest files (default: the preset's)")
    c.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    c.add_argument("--quiet", action="store_true", help="print nothing but errors")

    d = sub.add_parser("decompress", help=".wlt file(s) -> PNG or WAV/FLAC", description=(
        "Decompress .wlt files to PNG (or .tif/.bmp/.ppm/lossless .webp by suffix), audio to WAV or FLAC. A folder is decompressed "
        "recursively into a mirrored tree. '-' reads stdin / writes stdout (PNG)."))
    d.add_argument("input", help=".wlt file, folder, or - for stdin")
    d.add_argument("-o", "--output", help="output image or folder (default: input with .png suffix; - = stdout)")
    d.add_argument("-w", "--weights", help="weights file the .wlt was written with (default: its preset)")
    d.add_argument("-r", "--reference", help="original image (or audio): print the PSNR (SNR) of the result against it")
    d.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    d.add_argument("--no-noise-fill", dest="noise_fill", action="store_false",
                   help="audio: decode latents that quantized to zero as zero (the MSE output, for measuring SNR) "
                        "instead of filling them with noise (the default, for listening: no spectral holes)")
    d.add_argument("--quiet", action="store_true", help="print nothing but errors")

    i = sub.add_parser("info", help="show a .wlt header or a preset's config", description=(
        "Show the header of a .wlt file (with its real bits per pixel), or the config and weights of a preset "
        "or a .safetensors weights file."))
    i.add_argument("target", help=".wlt file, preset name, or weights file")
    i.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("list", help="list presets", description="List the registered presets and whether weights ship.")

    t = sub.add_parser("train", help="train a preset on a folder of images or audio", description=(
        "Train a codec on random crops of a folder of images (loss = lambda * 255^2 * MSE + bits per pixel) or on "
        "random excerpts of a folder of audio files for audio presets (loss = MSE + lambda * bits per sample), the "
        "rate coming from the same entropy model that codes files. Checkpoints go to OUT/last.safetensors "
        "every few minutes, on Ctrl-C/SIGTERM and at the end; the same command with --resume continues exactly. "
        "Multi-process: torchrun --nproc_per_node=N -m wavelatent train ..."))
    t.add_argument("data", help="folder of training images (audio presets: audio files)")
    t.add_argument("-o", "--out", required=True, help="run folder (checkpoint and log)")
    t.add_argument("-p", "--preset", help="preset to train")
    t.add_argument("--config", dest="config_file", help="JSON codec config instead of a preset")
    t.add_argument("--val", help="folder of validation images (default: hold out --val-count training images)")
    t.add_argument("--val-count", type=int, default=6)
    t.add_argument("--val-every", type=int, default=1000, help="validate every N steps (real bytes and PSNR)")
    t.add_argument("--steps", type=int, default=20_000, help="total steps of the schedule")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=200)
    t.add_argument("--lmbda", type=float, default=None, help="rate-distortion weight; images: loss = lmbda * 255^2 * "
                   "MSE + bpp (CompressAI convention, default 0.0067); audio: loss = MSE + lmbda * bits per sample "
                   "(default 1e-4)")
    t.add_argument("--excerpt", type=int, default=None, help="audio: samples per training excerpt "
                   "(default 256 latent positions)")
    t.add_argument("--val-seconds", type=float, default=10.0, help="audio: validate on at most this much of each file")
    t.add_argument("--ema", type=float, default=0.0, help="EMA decay of the weights, e.g. 0.999 (0 = off)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-pca-init", dest="pca_init", action="store_false", help="random instead of PCA init")
    t.add_argument("--init", default=None, help="fine-tune: start from these weights (preset name, .safetensors "
                   "release weights or a training checkpoint; same architecture) instead of PCA")
    t.add_argument("--prune-details", action="store_true", help="images: train with the encoder's weights on the "
                   "level-1 detail bands held at zero, so that encoding computes only the approximation's subtree")
    t.add_argument("--decoder-only", action="store_true", help="train only the decoder of the --init release "
                   "weights (a preset or .safetensors): encoder, quantizer and entropy tables stay, so every file "
                   "keeps its bytes and decodes better; each sample is coded at a drawn quality exactly as files "
                   "are; `export` writes the result with the old weights in its also_decodes")
    t.add_argument("--quality-weights", default=None, help="with --decoder-only: how often each quality is drawn, "
                   "comma-separated, one per quality (default: equally often)")
    t.add_argument("--checkpoint-minutes", type=float, default=5.0)
    t.add_argument("--max-minutes", type=float, default=None, help="stop with a checkpoint after this long")
    t.add_argument("--stop-at", type=int, default=None, help="stop with a checkpoint at this step (resume later)")
    t.add_argument("--resume", action="store_true", help="continue the run in OUT exactly where it stopped")
    t.add_argument("-f", "--force", action="store_true", help="start over although OUT holds a run")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    t.add_argument("--no-progress", dest="progress", action="store_false")

    e = sub.add_parser("export", help="checkpoint -> release weights", description=(
        "Write the release weights of a training checkpoint: EMA weights if present, entropy tables frozen, "
        "config and version in the metadata. The result is what --weights accepts and what ships in the package. "
        "A --decoder-only run exports into the weights it started from: only the decoder changes, the version "
        "goes up and files written with the old weights keep decoding."))
    e.add_argument("checkpoint", help="a run's last.safetensors")
    e.add_argument("-o", "--output", required=True, help="output .safetensors")
    e.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw weights, not the EMA")
    e.add_argument("--default-quality", type=int, default=None,
                   help="quality used when compress is given none (default: the config's)")
    e.add_argument("--prune-details", dest="prune", action="store_true", help="image codecs: zero the encoder's "
                   "weights on the level-1 detail bands, so that encoding computes only the approximation's "
                   "subtree (~3x faster analysis); check rate and PSNR after")
    e.add_argument("--quality-steps", default=None, help="comma-separated quantization steps, coarsest first, "
                   "replacing the trained config's (stay within the range it was trained on)")
    e.add_argument("--context-data", default=None, help="code files with the grid context model (25-45%% fewer "
                   "bytes), fitted on the images or audio of this folder (never the test set); without it the "
                   "per-channel tables (run `wavelatent fit-entropy` later)")
    e.add_argument("-f", "--force", action="store_true")
    g = sub.add_parser("fit-entropy", help="weights -> same weights coding with the grid context model", description=(
        "Fit the grid context model (entropy/grid.py: coarse-to-fine lattices, integer prediction from decoded "
        "neighbours and earlier channels, scale buckets, per-file shifts) of a trained codec on a folder of "
        "images or audio (never the test set; every --holdout-th file is left out to measure on) and write the "
        "upgraded weights: same encoder, decoder and quantizer, the preset's version in the registry (or + 1); "
        "files written with the input weights keep decoding with the output."))
    g.add_argument("source", help="a preset name or a .safetensors weights file")
    g.add_argument("-o", "--output", required=True, help="output .safetensors")
    g.add_argument("--data", required=True, help="folder of training images or audio files")
    g.add_argument("--holdout", type=int, default=5, help="leave out every Nth file (sorted), 0 = fit on all")
    g.add_argument("--model", choices=tuple(GRID_MODELS), default="grid",
                   help="grid (version 1) or grid2 (version 2: residuals sign-folded by the prediction's fraction, "
                        "near-integer tables; from a grid codec only its tables are fitted, its weights kept)")
    g.add_argument("-f", "--force", action="store_true")
    for module in (demo, evaluate, walloc, learning):  # each adds its subcommands, returns their handlers
        COMMANDS.update(module.add_parsers(sub))
    return p


def _default_output(src: str, suffix: str) -> str:
    if src == "-":
        return "-"
    return str(Path(src).with_suffix(suffix))


def _report(r, quiet: bool) -> None:
    info = r.info
    if not info:
        return
    if info.get("modality") == "audio":
        msg = (f"{r.source} -> {r.output}: {info.get('frames')} frames x {info.get('channels')} ch at "
               f"{info.get('sample_rate')} Hz ({info.get('duration_s', 0):.2f} s), {info['file_bytes']:,} bytes, "
               f"{info.get('kbps', 0):.2f} kbps, {info.get('compression_ratio', 0):.1f}:1, "
               f"{info.get('preset')} q{info.get('quality')}, {info['seconds'] * 1000:.0f} ms")
        if len(info.get("groups") or []) > 1:
            msg += f", {info.get('coding')}"
        if "snr" in info:
            msg += f", SNR {info['snr']:.2f} dB"
        _say(msg, quiet)
        return
    h, w = info.get("height"), info.get("width")
    kind = (f"{info.get('bands')} bands {info.get('dtype')}" if info.get("modality") == "multiband"
            else info.get("mode"))
    msg = (f"{r.source} -> {r.output}: {w}x{h} {kind}, {info['file_bytes']:,} bytes, "
           f"{info.get('bpp', 0):.4f} bpp, {info.get('compression_ratio', 0):.1f}:1, "
           f"{info.get('preset')} q{info.get('quality')}, {info['seconds'] * 1000:.0f} ms")
    if "psnr" in info:
        msg += f", PSNR {info['psnr']:.2f} dB"
    _say(msg, quiet)


def _finish_batch(results, quiet: bool) -> int:
    failed = [r for r in results if not r.ok]
    skipped = sum(r.skipped for r in results)
    for r in results:
        if r.ok and not r.skipped:
            _report(r, quiet)
    for r in failed:
        _err(f"{r.source}: {r.error}")
    _say(f"{len(results) - len(failed) - skipped} done, {skipped} skipped (exist; --force to redo), "
         f"{len(failed)} failed", quiet)
    return 1 if failed else 0


def cmd_compress(a) -> int:
    from ..data import IMAGE_SUFFIXES
    from ..io.audio import AUDIO_SUFFIXES
    from ..jobs import WLT_SUFFIX, compress_file, run_tree, tree_pairs

    preset = a.weights or a.preset
    if a.weights and a.preset:
        raise _usage("give --preset or --weights, not both")
    if a.input != "-" and os.path.isdir(a.input):
        if not a.output:
            raise _usage("compressing a folder needs -o OUTPUT_FOLDER")
        pairs = tree_pairs(Path(a.input), Path(a.output), lambda p: p.suffix.lower() in IMAGE_SUFFIXES + (".npy",) + AUDIO_SUFFIXES,
                           WLT_SUFFIX)
        results = run_tree(pairs, lambda s, d: compress_file(s, d, preset=preset, quality=a.quality, force=a.force),
                           force=a.force, progress=not a.quiet)
        return _finish_batch(results, a.quiet)
    out = a.output or _default_output(a.input, WLT_SUFFIX)
    _report(compress_file(a.input, out, preset=preset, quality=a.quality, force=a.force), a.quiet)
    return 0


def cmd_decompress(a) -> int:
    from ..jobs import WLT_SUFFIX, decompress_file, run_tree, tree_pairs

    if a.input != "-" and os.path.isdir(a.input):
        if not a.output:
            raise _usage("decompressing a folder needs -o OUTPUT_FOLDER")
        if a.reference:
            raise _usage("--reference applies to a single file")
        pairs = tree_pairs(Path(a.input), Path(a.output), lambda p: p.suffix == WLT_SUFFIX, ".png")
        pairs = ((s, d.with_suffix(_decoded_suffix(s))) for s, d in pairs)  # audio -> .wav
        results = run_tree(pairs, lambda s, d: decompress_file(s, d, weights=a.weights, force=a.force,
                                                           noise_fill=a.noise_fill),
                           force=a.force, progress=not a.quiet)
        return _finish_batch(results, a.quiet)
    out = a.output or _default_output(a.input, _decoded_suffix(a.input))
    _report(decompress_file(a.input, out, weights=a.weights, force=a.force, reference=a.reference,
                            noise_fill=a.noise_fill), a.quiet)
    return 0


def _decoded_suffix(path) -> str:
    """``.wav`` for an audio .wlt file, else ``.png`` (also for unreadable files: the job says why)."""
    from ..container import read_header
    from ..errors import WavelatentError

    if str(path) == "-":
        return ".png"
    try:
        return ".wav" if read_header(Path(path).read_bytes()).get("modality") == "audio" else ".png"
    except (OSError, WavelatentError):
        return ".png"


def cmd_info(a) -> int:
    from ..registry import list_presets

    target = a.target
    if target in list_presets() or target.endswith(".safetensors"):
        info = _weights_info(target)
    else:
        from ..api import read_info
        from ..io import read_input_bytes

        info = read_info(read_input_bytes(target))
    if a.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        for k in sorted(info):
            v = info[k]
            print(f"{k:>20}: {json.dumps(v) if isinstance(v, (list, dict)) else v}")
    return 0


def _weights_info(target: str) -> dict:
    from ..models import load_codec
    from ..registry import get_config, list_presets
    from ..weights import has_shipped_weights, weights_file

    if target in list_presets() and not has_shipped_weights(target):
        cfg = get_config(target)
        return {**cfg.to_dict(), "reduction": cfg.reduction, "weights": "none shipped", **_audio_notes(cfg)}
    codec = load_codec(target)
    cfg = codec.config
    from safetensors import safe_open

    path = weights_file(target)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return {
        **cfg.to_dict(),
        "reduction": cfg.reduction,
        "weights": str(path),
        "weights_sha256": codec.weights_sha256,
        "parameters": sum(p.numel() for p in codec.parameters()),
        "encoder_parameters": sum(p.numel() for p in codec.encoder.parameters()),
        # an int, or a release's own account of several runs ("3000 + 15000 + 8000")
        **{k: int(meta[k]) if meta[k].isdigit() else meta[k] for k in ("trained_steps", "decoder_steps") if k in meta},
        "wavelatent_version": meta.get("wavelatent_version"),
        **_audio_notes(cfg),
    }


def _audio_notes(cfg) -> dict:
    if cfg.modality != "audio":
        return {}
    return {"multichannel": f"other channel counts are coded in groups of {cfg.channels} (an incomplete last group "
                            f"repeats its last channel); other rates are resampled to {cfg.sample_rate} Hz and back"}


def cmd_list(a) -> int:
    from ..registry import get_config, list_presets
    from ..weights import has_shipped_weights

    print(f"{'preset':<16} {'signal':<7} {'ch':>3} {'J':>2} {'latent':>6} {'reduction':>9} {'qualities':>9}  weights")
    for name in list_presets():
        c = get_config(name)
        print(f"{name:<16} {c.modality:<7} {c.channels:>3} {c.levels:>2} {c.latent_channels:>6} "
              f"{c.reduction:>8.0f}x {c.qualities:>9}  {'shipped' if has_shipped_weights(name) else '-'}")
    return 0


def cmd_train(a) -> int:
    from ..train import TrainOptions, train

    keys = TrainOptions.__dataclass_fields__
    opts = TrainOptions(**{k: v for k, v in vars(a).items() if k in keys})
    path = train(opts)
    print(f"checkpoint: {path}", file=sys.stderr)
    return 0


def cmd_export(a) -> int:
    from ..errors import OutputExistsError
    from ..train import export_checkpoint

    if Path(a.output).exists() and not a.force:
        raise OutputExistsError(f"{a.output} exists; use --force to overwrite")
    steps = None
    if a.quality_steps:
        try:
            steps = tuple(float(v) for v in a.quality_steps.split(","))
        except ValueError:
            raise _usage(f"--quality-steps must be comma-separated numbers, got {a.quality_steps!r}") from None
    sha = export_checkpoint(a.checkpoint, a.output, use_ema=a.ema, default_quality=a.default_quality, prune=a.prune,
                            quality_steps=steps, context_data=a.context_data, progress=True)
    print(f"wrote {a.output} (sha256 {sha})", file=sys.stderr)
    return 0


def cmd_fit_entropy(a) -> int:
    from ..errors import OutputExistsError
    from ..train.grid import upgrade

    if Path(a.output).exists() and not a.force:
        raise OutputExistsError(f"{a.output} exists; use --force to overwrite")
    sha, _ = upgrade(a.source, a.data, a.output, model=a.model, holdout=a.holdout, progress=True)
    print(f"wrote {a.output} (sha256 {sha})", file=sys.stderr)
    return 0


class _UsageError(Exception):
    pass


def _usage(msg: str) -> _UsageError:
    return _UsageError(msg)


COMMANDS = {
    "compress": cmd_compress,
    "decompress": cmd_decompress,
    "info": cmd_info,
    "list": cmd_list,
    "train": cmd_train,
    "export": cmd_export,
    "fit-entropy": cmd_fit_entropy,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    if a.version:
        from .. import __version__

        print(__version__)
        return 0
    if not a.command:
        parser.print_help(sys.stderr)
        return 1
    from ..errors import WavelatentError

    try:
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        return COMMANDS[a.command](a)
    except _UsageError as e:
        _err(str(e))
        return 2
    except WavelatentError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except MemoryError:
        _err("out of memory")
        return 1
    except Exception as e:  # a bug: say so briefly; WAVELATENT_DEBUG=1 shows the traceback
        if os.environ.get("WAVELATENT_DEBUG"):
            raise
        _err(f"internal error ({type(e).__name__}: {e}); rerun with WAVELATENT_DEBUG=1 for a traceback and report it")
        return 1
