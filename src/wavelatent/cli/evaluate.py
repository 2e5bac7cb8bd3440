"""``wavelatent evaluate`` and ``wavelatent bench``: argument parsing and calls into the library.

``add_parsers(sub)`` adds both subcommands to the main parser's subparsers and returns their
handlers keyed by command name; each handler takes the parsed namespace and returns an exit code.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

EVALUATE_EPILOG = """examples:
  wavelatent evaluate ../shared/data/images/kodak -o eval/kodak --reference ../shared/data/reference/kodak
  wavelatent evaluate photos/ -o eval/quick --limit 4 --max-size 256 --baselines jpeg,webp
  wavelatent evaluate photos/ -o eval/mine --presets none --weights runs/rgb16/last.safetensors --jobs 2
  wavelatent evaluate ../shared/data/images/kodak -o eval/taef2 --baselines jpeg,webp,taef2
  wavelatent --threads 1 evaluate ../shared/data/imagenette/val -o results/mpq/imagenette --task classify \\
      --classifier results/mpq/imagenette/classifier.safetensors   # machine perceptual quality
"""

CLASSIFY_HELP = ("rd (default): rate-distortion; classify: machine perceptual quality -- a frozen classifier "
                 "(--classifier) on the decoded items of every codec point: top-1 and its drop from clean vs rate, "
                 "PSNR/MS-SSIM (SNR/LSD for audio) and penultimate-feature distance, their rank correlation with "
                 "the drop (see wavelatent.evaluate.mpq); FOLDER is then the class-folder split (e.g. imagenette/val)")
CLASSIFIER_HELP = ("with --task classify: a classifier .safetensors (SmallCNN state dict + config in the metadata, "
                   "input convention in wavelatent.evaluate.classifier; made by `wavelatent train-classifier`)")


def _add_classify(parser, audio: bool) -> None:
    parser.add_argument("--task", choices=("rd", "classify"), default="rd", help=CLASSIFY_HELP)
    parser.add_argument("--classifier", help=CLASSIFIER_HELP)
    parser.add_argument("--limit-per-class", type=int, help="with --task classify: only the first N items of each "
                        "class (a documented subset)")
    if audio:
        parser.add_argument("-j", "--jobs", type=int, default=1, help="with --task classify: worker processes")

BENCH_EPILOG = """examples:
  wavelatent bench ../shared/data/images/kodak --limit 4 --threads 1,2
  wavelatent bench photo.png --presets image-rgb-16x --repeats 3 --json bench.json
"""


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [s.strip() for s in value.split(",") if s.strip()]
    return [] if items == ["none"] else items


def add_parsers(sub) -> dict[str, Callable]:
    """Add ``evaluate`` and ``bench`` to ``sub`` (an argparse subparsers action)."""
    import argparse

    fmt = argparse.RawDescriptionHelpFormatter
    e = sub.add_parser("evaluate", help="rate-distortion evaluation against JPEG/WebP/AVIF", epilog=EVALUATE_EPILOG,
                       formatter_class=fmt, description=(
        "Code every image of a folder with every quality of wavelatent presets/weights and of baseline codecs; "
        "write per-codec JSON (CompressAI schema), a CSV of every measurement, RD plots, a BD table and "
        "report.html to OUT. bpp comes from the bytes each codec returns."))
    e.add_argument("folder", help="folder of images (recursive) or one image")
    e.add_argument("-o", "--out", required=True, help="output folder")
    e.add_argument("-p", "--presets", help="comma-separated presets (default: every shipped RGB preset; 'none')")
    e.add_argument("-w", "--weights", action="append", default=[], help="a .safetensors weights file (repeatable)")
    e.add_argument("--baselines", help="comma-separated: jpeg,webp,avif,jxl,taef2 or none "
                   "(default: jpeg,webp,avif, plus jxl if pillow-jxl-plugin is installed; taef2 = the FLUX.2 tiny "
                   "autoencoder, taef2-png8 + taef2-float32, or name taef2-webp8; weights from $WAVELATENT_TAEF2_DIR "
                   "or ../shared/data/reference/taef2)")
    e.add_argument("--reference", help="folder of CompressAI-schema *.json results to overlay (dashed)")
    e.add_argument("--anchor", default="jpeg,webp,avif", help="comma-separated codecs the BD tables compare "
                   "against, those evaluated (default: jpeg,webp,avif)")
    e.add_argument("--bd-method", choices=("cubic", "pchip"), default="cubic",
                   help="Bjontegaard interpolation: cubic fit (VCEG-M33) or piecewise cubic (default: cubic)")
    e.add_argument("-j", "--jobs", type=int, default=1, help="worker processes over images (1 torch thread each)")
    e.add_argument("--limit", type=int, help="only the first N images")
    e.add_argument("--max-size", type=int, help="centre-crop images to at most this many pixels per side")
    e.add_argument("-f", "--force", action="store_true", help="overwrite a report already in OUT")
    e.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _add_classify(e, audio=False)

    b = sub.add_parser("bench", help="encode/decode throughput vs JPEG and WebP", epilog=BENCH_EPILOG,
                       formatter_class=fmt, description=(
        "Encode (array -> bytes) and decode (bytes -> array) throughput in MP/s of wavelatent presets at their "
        "default quality and of Pillow JPEG and WebP at quality 75, measured in the same run, as the median of "
        "--repeats passes after --warmup; with peak memory, parameters and MACs per pixel."))
    b.add_argument("folder", help="folder of images (recursive) or one image")
    b.add_argument("-p", "--presets", help="comma-separated presets (default: every shipped RGB preset; 'none')")
    b.add_argument("-w", "--weights", action="append", default=[], help="a .safetensors weights file (repeatable)")
    b.add_argument("--baselines", default="jpeg,webp",
                   help="comma-separated: jpeg,webp,avif,jxl at quality 75, taef2[-png8|-float32|-webp8], or none "
                   "(default: jpeg,webp)")
    b.add_argument("--threads", dest="bench_threads", default="1",
                   help="torch threads, comma-separated to measure several (default: 1)")
    b.add_argument("--repeats", type=int, default=5, help="timed passes; the median is reported (default: 5)")
    b.add_argument("--warmup", type=int, default=1, help="untimed passes first (default: 1)")
    b.add_argument("--limit", type=int, help="only the first N images")
    b.add_argument("--max-size", type=int, help="centre-crop images to at most this many pixels per side")
    b.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    b.add_argument("--json", help="also write the results to this JSON file")

    a = sub.add_parser("evaluate-audio", help="audio presets vs FLAC/Opus/Vorbis/MP3", formatter_class=fmt,
                       epilog=AUDIO_EPILOG, description=(
        "Code the middle --max-seconds of every audio file of a folder with every quality of wavelatent audio "
        "presets/weights (MSE output and with noise filling) and with soundfile's FLAC, Opus, Vorbis and MP3 at target "
        "bitrates; report "
        "kbps from real bytes, SNR, log-spectral distance, PESQ/STOI for speech (if installed), encode/decode "
        "speed as ratios to Opus in the same run, the SNR gap at matched kbps, RD and spectrogram plots."))
    a.add_argument("folder", help="folder of audio files (recursive) or one file")
    a.add_argument("-o", "--out", required=True, help="output folder")
    a.add_argument("-p", "--presets", help=f"comma-separated audio presets with shipped weights, or none (default: "
                   f"{AUDIO_PRESETS_DEFAULT}; with --task classify: audio-mono-2x)")
    a.add_argument("-w", "--weights", action="append", default=[], help="a .safetensors weights file (repeatable)")
    a.add_argument("--baselines", help=f"comma-separated: flac,opus,vorbis,mp3 or none (default: "
                   f"{AUDIO_BASELINES_DEFAULT}; with --task classify also resample, and by default every one)")
    a.add_argument("--baseline-levels", dest="targets", action="store_false",
                   help="sweep the baselines' compression levels instead of target bitrates (32-128 kbps; Opus from 16)")
    a.add_argument("--noise-fill", choices=("both", "on", "off"), default="both",
                   help="wavelatent decoder output(s) to measure: with noise filling (+nf), the MSE output, or both")
    a.add_argument("--max-seconds", type=float, default=30.0, help="code at most this much from the middle of each file")
    a.add_argument("--limit", type=int, help="only the first N files")
    a.add_argument("-f", "--force", action="store_true", help="overwrite a report already in OUT")
    a.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _add_classify(a, audio=True)
    return {"evaluate": cmd_evaluate, "bench": cmd_bench, "evaluate-audio": cmd_evaluate_audio}


AUDIO_EPILOG = """examples:
  wavelatent --threads 1 evaluate-audio ../shared/data/audio/music -o eval/music --limit 3
  wavelatent evaluate-audio speech/ -o eval/speech --presets audio-mono-2x --max-seconds 5
  wavelatent --threads 1 evaluate-audio ../shared/data/audio/fsdd -o results/mpq/fsdd --task classify \\
      --classifier results/mpq/fsdd/classifier.safetensors   # spoken-digit test split (n 0-4)
"""


def _cmd_classify(a, audio: bool) -> int:
    """``--task classify``: codecs as the options say (defaults: every MPQ codec), then the run."""
    import shlex

    from ..errors import InputError
    from ..evaluate.classifier import load_classifier
    from ..evaluate.mpq import default_audio_codecs, default_image_codecs, evaluate_classify

    if not a.classifier:
        raise InputError("--task classify needs --classifier WEIGHTS (see `wavelatent train-classifier`)")
    clf = load_classifier(a.classifier)
    if clf.config.modality != ("audio" if audio else "image"):
        raise InputError(f"{a.classifier} classifies {clf.config.modality}; use "
                         f"`wavelatent {'evaluate' if clf.config.modality == 'image' else 'evaluate-audio'}`")
    presets, baselines = _csv(a.presets), _csv(a.baselines)  # None: the task's own defaults
    if audio:
        codecs = default_audio_codecs(presets, baselines)
        from ..evaluate.audio import WavelatentAudioCodec

        codecs += [WavelatentAudioCodec(w, name=f"wavelatent-{Path(w).stem}") for w in a.weights]
    else:
        codecs = default_image_codecs(presets, baselines, a.weights)
    import torch

    command = shlex.join(["wavelatent", *sys.argv[1:]])
    r = evaluate_classify(a.folder, a.out, clf, codecs, limit_per_class=a.limit_per_class, jobs=a.jobs,
                          force=a.force, progress=a.progress, command=command)
    print((r.out_dir / "summary.md").read_text().rstrip())
    print(f"report: {r.files['html']} (torch threads {torch.get_num_threads()})", file=sys.stderr)
    return 0


AUDIO_PRESETS_DEFAULT = "audio-stereo-5x,audio-stereo-20x"
AUDIO_BASELINES_DEFAULT = "flac,opus,vorbis,mp3"


def _check_task_options(a, ignored: tuple[str, ...]) -> None:
    """Options that one task would silently ignore are refused instead."""
    from ..errors import InputError

    if a.task != "classify":
        for opt in ("classifier", "limit_per_class"):
            if getattr(a, opt, None) is not None:
                raise InputError(f"--{opt.replace('_', '-')} applies to --task classify only")
        return
    for opt in ignored:
        if getattr(a, opt, None) is not None:
            hint = " (use --limit-per-class)" if opt in ("limit", "max_size") else ""
            raise InputError(f"--{opt.replace('_', '-')} does not apply to --task classify{hint}")


def cmd_evaluate_audio(a) -> int:
    from ..evaluate.audio import WavelatentAudioCodec, evaluate_audio, make_baselines

    _check_folder(a.folder)
    _check_task_options(a, ("limit",))
    if a.task == "classify":
        return _cmd_classify(a, audio=True)
    fills = {"both": (False, True), "on": (True,), "off": (False,)}[a.noise_fill]
    codecs = [WavelatentAudioCodec(p, noise_fill=nf) for p in _csv(a.presets or AUDIO_PRESETS_DEFAULT) for nf in fills]
    codecs += [WavelatentAudioCodec(w, name=f"wavelatent-{Path(w).stem}", noise_fill=nf) for w in a.weights for nf in fills]
    codecs += make_baselines(_csv(a.baselines or AUDIO_BASELINES_DEFAULT), targets=a.targets)
    import torch

    result = evaluate_audio(a.folder, a.out, codecs, max_seconds=a.max_seconds, limit=a.limit,
                            threads=torch.get_num_threads(), force=a.force, progress=a.progress)
    for m in result.matched:
        gaps = ", ".join(f"{k[4:]} {v:.2f}" for k, v in m.items() if k.startswith("snr_") and v == v)
        print(f"{m['codec']:<28} q{m['quality']}: {m['kbps']:7.2f} kbps SNR {m['snr']:6.2f} dB"
              f" | baselines at that kbps: {gaps or '-'} | encode {m.get('encode_vs_opus', float('nan')):.1f}x"
              f" decode {m.get('decode_vs_opus', float('nan')):.1f}x Opus")
    print(f"report: {result.files['md']}", file=sys.stderr)
    return 0


def _check_folder(path: str) -> None:
    from ..errors import InputError

    if not Path(path).exists():
        raise InputError(f"{path}: no such file or folder")


def cmd_evaluate(a) -> int:
    from ..evaluate.run import default_codecs, evaluate

    _check_folder(a.folder)
    _check_task_options(a, ("limit", "max_size", "reference"))
    if a.task == "classify":
        return _cmd_classify(a, audio=False)
    codecs = default_codecs(_csv(a.presets), a.weights, _csv(a.baselines))
    result = evaluate(a.folder, a.out, codecs, jobs=a.jobs, progress=a.progress, limit=a.limit,
                      max_size=a.max_size, reference=a.reference, anchor=_csv(a.anchor) or None, bd_method=a.bd_method,
                      force=a.force)
    for name, doc in result.curves.items():
        res = doc["results"]
        pts = ", ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(res["bpp"], res["psnr-rgb"])
                        if b is not None and p is not None)
        print(f"{name:<24} bpp/PSNR-RGB: {pts}")
    for r in result.bd:
        if r["codec"] != r["anchor"]:
            rate, dpsnr = r["bd_rate_psnr_rgb"], r["bd_psnr_rgb"]
            print(f"BD vs {r['anchor']}: {r['codec']:<24} BD-rate "
                  + ("n/a" if rate != rate else f"{rate:+.1f} %") + "  BD-PSNR "
                  + ("n/a (no overlap)" if dpsnr != dpsnr else f"{dpsnr:+.2f} dB"))
    print(result.files["summary"].read_text().rstrip())
    print(f"report: {result.files['html']}", file=sys.stderr)
    return 0


def cmd_bench(a) -> int:
    from ..bench import bench
    from ..errors import InputError

    _check_folder(a.folder)
    try:
        threads = [int(t) for t in a.bench_threads.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--threads takes comma-separated integers, got {a.bench_threads!r}") from None
    result = bench(a.folder, _csv(a.presets), threads, a.repeats, a.warmup, weights=a.weights, memory=a.memory,
                   limit=a.limit, max_size=a.max_size, baselines=_csv(a.baselines))
    print(result.table())
    if a.json:
        Path(a.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {a.json}", file=sys.stderr)
    return 0
