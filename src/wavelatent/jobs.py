"""File-level jobs: one file or a whole tree, each output written atomically.

A batch keeps going past bad files and reports them; finished outputs are skipped on a rerun
unless ``force`` is given, so a killed job can simply be started again.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


from . import container
from .errors import InputError, OutputError, OutputExistsError, WavelatentError

WLT_SUFFIX = ".wlt"


@dataclass
class FileResult:
    source: str
    output: str
    ok: bool = True
    skipped: bool = False
    error: str = ""
    info: dict = field(default_factory=dict)


def compress_file(
    src: str | os.PathLike, dst: str | os.PathLike, *, preset=None, quality: int | None = None, force: bool = False
) -> FileResult:
    """Image or audio file (or ``-``) -> .wlt file (or ``-``). Audio is recognised by suffix
    (``.wav .flac .ogg .opus .mp3``) or, on stdin, by its first bytes."""
    from .api import compress, read_info
    from .io import atomic_write_bytes, read_input_bytes
    from .io.arrays import read_any
    from .io.audio import is_audio_path, sniff_audio

    if str(dst) != "-" and Path(dst).is_dir():
        raise OutputError(f"{dst} is a directory")
    if str(dst) != "-" and Path(dst).suffix.lower() != WLT_SUFFIX:
        raise OutputError(f"{dst}: compressed files are written as {WLT_SUFFIX} (or - for stdout), "
                          f"not {Path(dst).suffix or 'a name without suffix'!r}")
    if str(dst) != "-" and Path(dst).exists() and not force:
        raise OutputExistsError(f"{dst} exists; use --force to overwrite")
    t0 = time.perf_counter()
    raw = read_input_bytes(src) if str(src) == "-" else None
    if is_audio_path(src) or (raw is not None and sniff_audio(raw[:16])):
        from .audio import compress_audio_file

        data = compress_audio_file(src if raw is None else raw, preset, quality)
    else:
        arr = read_any(raw if raw is not None else src)
        data = compress(arr, preset, quality)
    seconds = time.perf_counter() - t0
    atomic_write_bytes(dst, data, force=force)
    info = read_info(data)
    info["seconds"] = seconds
    return FileResult(str(src), str(dst), info=info)


def decompress_file(
    src: str | os.PathLike, dst: str | os.PathLike, *, weights=None, force: bool = False, reference=None,
    noise_fill: bool = True,
) -> FileResult:
    """.wlt file (or ``-``) -> PNG (or other lossless image) file (or ``-``); audio files -> WAV/FLAC
    (``noise_fill``: see :func:`wavelatent.audio.decompress_audio`; images ignore it)."""
    from .api import decompress, read_info
    from .io import read_input_bytes
    from .io.arrays import read_any, save_any

    if str(dst) != "-" and Path(dst).is_dir():
        raise OutputError(f"{dst} is a directory")
    if str(dst) != "-" and Path(dst).exists() and not force:
        raise OutputExistsError(f"{dst} exists; use --force to overwrite")
    data = read_input_bytes(src)
    header = container.read_header(data)
    check_decoded_suffix(dst, header)
    if header.get("modality") == "audio":
        return _decompress_audio_file(src, dst, data, weights=weights, force=force, reference=reference,
                                      noise_fill=noise_fill)
    t0 = time.perf_counter()
    out = decompress(data, weights)
    seconds = time.perf_counter() - t0
    save_any(out, dst, force=force)
    info = read_info(data)
    info["seconds"] = seconds
    if reference is not None:
        ref = read_any(reference)
        ref = ref if ref.ndim == 3 else ref[:, :, None]
        got = out if out.ndim == 3 else out[:, :, None]
        if ref.shape != got.shape:
            raise InputError(f"reference {reference} is {ref.shape}, the decoded image is {got.shape}")
        peak = {"uint8": 255.0, "uint16": 65535.0}.get(ref.dtype.name, float(ref.max() - ref.min()) or 1.0)
        from .evaluate.metrics import psnr

        info["psnr"] = psnr(ref, got, peak)
    return FileResult(str(src), str(dst), info=info)


def check_decoded_suffix(dst, header: dict) -> None:
    """Refuse (OutputError) an output name whose suffix cannot hold what ``header``'s file decodes to,
    before anything is decoded or written (``-`` is always fine)."""
    from .io.arrays import output_suffixes
    from .io.audio import OUTPUT_SUFFIXES as AUDIO_OUTPUT
    from .io.images import OUTPUT_SUFFIXES as IMAGE_OUTPUT

    if str(dst) == "-":
        return
    modality = header.get("modality")
    if modality == "audio":
        allowed, what = AUDIO_OUTPUT, "audio"
    elif modality == "multiband":
        bands = header.get("bands")
        allowed = output_suffixes(str(header.get("dtype")), bands if isinstance(bands, int) else 1 << 30)
        what = f"a {header.get('dtype')} array of {bands} bands"
    else:
        allowed, what = IMAGE_OUTPUT + (".npy",), "an image"
    suffix = Path(str(dst)).suffix.lower()
    if suffix not in allowed:
        names = ", ".join(s for s in allowed if s)
        raise OutputError(f"{dst}: this file decodes to {what}, written as {names}; not {suffix or 'no suffix'!r}")


def _decompress_audio_file(src, dst, data: bytes, *, weights, force: bool, reference, noise_fill: bool = True) -> FileResult:
    """.wlt audio -> WAV/FLAC (by suffix; ``-`` = WAV on stdout), written block by block."""
    from .api import read_info
    from .audio import decompress_audio_file

    t0 = time.perf_counter()
    result = decompress_audio_file(data, dst, weights, force=force, reference=reference, noise_fill=noise_fill)
    info = read_info(data)
    info["seconds"] = time.perf_counter() - t0
    if "snr" in result:
        info["snr"] = result["snr"]
    return FileResult(str(src), str(dst), info=info)


def tree_pairs(src: Path, dst: Path, match: Callable[[Path], bool], suffix: str) -> Iterator[tuple[Path, Path]]:
    """(input, output) pairs mirroring ``src``'s tree under ``dst``, output suffix replaced."""
    for p in sorted(src.rglob("*")):
        if p.is_file() and match(p) and not p.name.startswith("."):
            yield p, (dst / p.relative_to(src)).with_suffix(suffix)


def run_tree(
    pairs: Iterator[tuple[Path, Path]], job: Callable[[Path, Path], FileResult], *, force: bool, progress: bool = True
) -> list[FileResult]:
    """Apply ``job`` to every pair; existing outputs are skipped without ``force``; errors are collected."""
    from tqdm import tqdm

    pairs = list(pairs)
    results = []
    for src, dst in tqdm(pairs, disable=not progress or len(pairs) < 2, leave=False, unit="file"):
        if dst.exists() and not force:
            results.append(FileResult(str(src), str(dst), skipped=True))
            continue
        try:
            results.append(job(src, dst))
        except WavelatentError as e:
            results.append(FileResult(str(src), str(dst), ok=False, error=str(e)))
    return results
