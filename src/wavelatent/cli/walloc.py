"""``wavelatent import-walloc``: argument parsing and a call into :mod:`wavelatent.walloc_import`.

``add_parsers(sub)`` adds the subcommand to the main parser's subparsers and returns its handler
keyed by command name; the handler takes the parsed namespace and returns an exit code.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

EPILOG = """examples:
  wavelatent import-walloc RGB_16x.pth RGB_16x.json -o walloc-rgb-16x.safetensors
  wavelatent import-walloc RGB_16x.pth RGB_16x.json -o rgb16.safetensors --fit-prior ../shared/data/images/kodak
  wavelatent import-walloc stereo_5x.pth stereo_5x.json -o stereo5.safetensors --sample-rate 44100
  wavelatent compress photo.png -o photo.wlt --weights walloc-rgb-16x.safetensors
"""


def add_parsers(sub) -> dict[str, Callable]:
    """Add ``import-walloc`` to ``sub`` (an argparse subparsers action)."""
    import argparse

    p = sub.add_parser("import-walloc", help="convert a WaLLoC checkpoint (.pth + .json) to a weights file",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Convert a codec of the walloc package (Codec2D for images, Codec1D for audio; a .pth state dict and "
        "its .json config) into a wavelatent weights file that compress, decompress, info, evaluate and the "
        "latent cache accept with --weights. The .pth is read with torch.load(weights_only=True): checkpoints "
        "that need arbitrary unpickling are refused. walloc has no entropy model: the codec gets a wide "
        "per-channel prior, or one fitted to the latents of a folder of images/audio (--fit-prior)."))
    p.add_argument("model", help="walloc checkpoint (.pth): a state dict or a dict with 'model_state_dict'")
    p.add_argument("config", help="walloc config (.json) with channels, J, Nd, latent_dim, latent_bits, ...")
    p.add_argument("-o", "--output", required=True, help="output .safetensors weights file")
    p.add_argument("--name", help="codec name stored in the file (default: walloc-<config file stem>)")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="Codec1D: the sample rate it was trained at (default: 44100, walloc's music codecs)")
    p.add_argument("--fit-prior", metavar="DIR",
                   help="fit the entropy model to the latents of the images (Codec2D) or audio (Codec1D) in DIR")
    p.add_argument("--fit-limit", type=int, default=64, help="at most this many files from DIR (default: 64)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output")
    return {"import-walloc": cmd_import_walloc}


def cmd_import_walloc(a) -> int:
    from ..errors import InputError
    from ..walloc_import import DEFAULT_SAMPLE_RATE, checkpoint_sha256, import_walloc
    from ..weights import save_weights

    out = Path(a.output)
    if out.exists() and not a.force:
        raise InputError(f"{out} exists (use --force to overwrite)")
    if a.fit_limit < 1:
        raise InputError("--fit-limit must be at least 1")
    if a.fit_prior is not None and not Path(a.fit_prior).exists():
        raise InputError(f"{a.fit_prior}: no such file or folder")
    codec, report = import_walloc(a.model, a.config, name=a.name, fit_dir=a.fit_prior, fit_limit=a.fit_limit,
                                  sample_rate=a.sample_rate or DEFAULT_SAMPLE_RATE)
    if a.sample_rate is not None and codec.config.modality == "image":
        raise InputError("--sample-rate is for Codec1D (audio) checkpoints")
    extra = {"imported_from": "walloc", "walloc_checkpoint_sha256": checkpoint_sha256(a.model)}
    sha = save_weights(codec, out, extra=extra)
    cfg = codec.config
    print(f"{a.model} -> {out}: {report['walloc_class']} as {cfg.name!r} ({cfg.modality}, "
          f"{cfg.packet_channels} -> {cfg.latent_channels} channels, {cfg.reduction:.3g}x, "
          f"{report['parameters']:,} parameters), sha256 {sha[:16]}")
    if "bits_fitted_prior" in report:
        print(f"prior fitted on {report['fit_latents']:,} latents: {report['bits_fitted_prior']:.3f} bits/latent "
              f"(wide prior: {report['bits_wide_prior']:.3f})")
    else:
        print("prior: wide (pass --fit-prior DIR for smaller files)", file=sys.stderr)
    return 0
