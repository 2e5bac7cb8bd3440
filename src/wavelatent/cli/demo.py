"""``wavelatent demo``: argument parsing and a call into :mod:`wavelatent.demo`.

``add_parsers(sub)`` adds the subcommand to the main parser's subparsers and returns its handler
keyed by command name; the handler takes the parsed namespace and returns an exit code.
"""
from __future__ import annotations

from typing import Callable


def add_parsers(sub) -> dict[str, Callable]:
    """Add ``demo`` to ``sub`` (an argparse subparsers action)."""
    from ..demo import DEFAULT_OUTPUT

    p = sub.add_parser("demo", help="compress and decompress the shipped sample image and clip", description=(
        "Compress the sample image shipped in the package (a 512x512 crop of Kodak's kodim23) with the default "
        "image preset and a 3 s music clip with an audio preset, decompress both, write the .wlt files and the "
        "decoded PNG and WAV into one folder and print bytes, bpp / kbps and PSNR / SNR. Offline, a few seconds."))
    p.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help=f"output folder (default: ./{DEFAULT_OUTPUT})")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the outputs of an earlier run")
    return {"demo": cmd_demo}


def cmd_demo(a) -> int:
    from ..demo import run_demo

    for result in run_demo(a.output, force=a.force):
        print(result.line())
    return 0
