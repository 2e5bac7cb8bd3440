"""Latent caches: a folder of images (or audio files) -> shards of integer symbols plus ``index.json``.

Every image is read (EXIF rotation applied, grayscale repeated to RGB or RGB converted to L as
the preset needs), **resized so that its short side is ``size`` pixels (Pillow bicubic, which
antialiases when shrinking) and centre-cropped to ``size x size``**, then encoded *one image at a
time* (``codec.quantize(codec.encode(x[None]), quality)``, exactly what :func:`wavelatent.compress`
does), so sample ``i`` holds the same symbols as compressing the resized image.

With an audio preset, every audio file is decoded, resampled to the preset's rate, mixed or
repeated to its channel count (``fit_channels``) and **centred in ``size`` samples** (zero
padded, or the centre kept when longer); its symbols are ``[K, size / block]``.

Two storage formats, chosen per cache:

``raw``
    WebDataset-style tar shards ``shard-000000.tar``: per sample ``{key}.npy`` (the symbols
    ``[K, h, w]``, or ``[K, t]`` for audio, as an int8 or int16 ``.npy`` array, no pickle) and ``{key}.cls`` (the class
    index in ASCII) when there are labels. ``key`` is ``s`` + the 8-digit sample index. The tar
    members have fixed metadata (mtime 0, mode 644, uid 0), so a shard's bytes depend only on
    its samples. Fast to load; readable by ``webdataset`` and Hugging Face ``datasets``.
``coded``
    One ``.wlt`` container per shard, ``shard-000000.wlt`` (magic, version, header, CRC32;
    see :mod:`wavelatent.container`): header ``kind="latent-shard"`` with the preset, weights
    hash, quality, latent shape, sample count and labels; stream ``lengths`` (u32 little-endian
    byte length of each sample) and stream ``latents`` (the samples' streams, each exactly
    the ``latent`` stream of the ``.wlt`` file of that resized image, coded by the preset's entropy
    model, named in the header field ``entropy`` unless it is the factorized ``"none"``). Smallest.

``index.json`` (written atomically, first as a plan with ``"complete": false``, then final)::

    format, format_version, preset, weights_sha256, config (the codec config), quality, step,
    max_symbol, size, resize (in words), latent_shape [K, h, w] or [K, t], storage, dtype (raw
    symbols), shard_size, samples, labels ("from-folders", "from-prefix" or null), classes [names],
    sources [{"name": path relative to SRC, "bytes": file size, "label": int or null}],
    shards [{"name", "first", "count", "bytes", "sha256"}],
    flip (the fitted latent flip operator, see wavelatent.data.flip, or null), complete

A shard file exists only once it is complete (temporary file, then rename), so an interrupted job
rerun with the same arguments skips finished shards. A cache folder is tied to one set of weights,
quality, size, storage and file list: a rerun that differs is refused (:class:`CacheMismatchError`).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import EntropyCodingError, InputError, WavelatentError

__all__ = [
    "CacheError",
    "CacheMismatchError",
    "CacheResult",
    "FORMAT",
    "INDEX_NAME",
    "build_cache",
    "encode_symbols",
    "prepare_audio",
    "prepare_image",
    "read_coded_shard",
    "read_index",
    "read_raw_shard",
    "write_coded_shard",
    "write_raw_shard",
]

FORMAT = "wavelatent-latent-cache"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
STORAGES = ("raw", "coded")
LABELS = ("from-folders", "from-prefix")
MAX_AUDIO_SIZE = 1 << 24  # samples per cached clip (6 min at 44.1 kHz)
MAX_SHARD_SYMBOLS = 1 << 27  # a shard's symbols are held in memory as int32 while it is written (512 MiB)
ENGINES = ("local", "ray")
SHARD_KIND = "latent-shard"
_MAX_INDEX_BYTES = 1 << 30
# Fields that tie a cache folder to one job: a rerun must agree on all of them.
_IDENTITY = (
    "format", "format_version", "preset", "weights_sha256", "quality", "size", "latent_shape", "storage",
    "dtype", "shard_size", "labels", "classes", "sources",
)


class CacheError(WavelatentError):
    """A latent cache cannot be built or read."""


class CacheMismatchError(CacheError):
    """The cache folder holds a cache made with other weights, settings or files."""


# --- images -> symbols ------------------------------------------------------
def prepare_image(source, size: int, channels: int = 3) -> np.ndarray:
    """An image file (or uint8 array ``[H, W(, C)]``) -> ``[size, size, channels]`` uint8.

    Short side resized to ``size`` (Pillow bicubic, antialiased when shrinking; the long side
    rounded), then the centre ``size x size`` crop (offset rounded down).
    """
    from PIL import Image

    from ..io.images import image_to_array, read_image

    arr, mode = image_to_array(source) if isinstance(source, np.ndarray) else read_image(source)
    color = arr[:, :, : (1 if mode in ("L", "LA") else 3)]
    if channels == 1 and color.shape[2] == 3:
        img = Image.fromarray(color).convert("L")
    elif channels in (1, 3):
        img = Image.fromarray(color[:, :, 0] if color.shape[2] == 1 else color)
        if channels == 3 and color.shape[2] == 1:
            img = img.convert("RGB")
    else:
        raise InputError(f"cannot make {channels}-channel images")
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    out = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return np.ascontiguousarray(out if out.ndim == 3 else out[:, :, None])


def prepare_audio(source, size: int, rate: int, channels: int) -> np.ndarray:
    """An audio file -> float32 ``[channels, size]`` at ``rate``: resampled, channels fitted
    (:func:`~wavelatent.data.audio.fit_channels`), centred in ``size`` samples."""
    from .audio import fit_length, read_clip

    return np.ascontiguousarray(fit_length(read_clip(source, rate, channels), size).T)


def prepare_sample(source, codec, size: int) -> np.ndarray:
    """What the cache encodes from one file: an image ``[size, size, C]`` uint8 or a clip ``[C, size]``."""
    cfg = codec.config
    if cfg.modality == "audio":
        return prepare_audio(source, size, cfg.sample_rate, cfg.channels)
    return prepare_image(source, size, cfg.channels)


def encode_symbols(codec, samples: np.ndarray | Iterable[np.ndarray], quality: int | None = None) -> np.ndarray:
    """uint8 images ``[N, H, W, C]`` -> int32 symbols ``[N, K, h, w]``, one image per encoder call
    (:func:`wavelatent.pixels.encode_image_symbols`, exactly as :func:`wavelatent.compress`);
    for an audio codec, float clips ``[N, C, L]`` -> ``[N, K, ceil(L / block)]``. ``samples`` may be
    a generator (only one sample is then held at a time)."""
    import torch

    from ..pixels import encode_image_symbols

    device = next(codec.parameters()).device
    audio = codec.config.modality == "audio"
    out = []
    for v in samples:
        if audio:
            with torch.inference_mode():
                x = torch.from_numpy(np.asarray(v, np.float32))[None].to(device)
                out.append(codec.quantize(codec.encode(x), quality)[0].cpu().numpy())
        else:  # the path wavelatent.compress takes: same symbols, same bytes
            out.append(encode_image_symbols(codec, np.asarray(v), quality))
    if not out:
        K = codec.config.latent_channels
        return np.zeros((0, K, 0) if audio else (0, K, 0, 0), np.int32)
    return np.stack(out).astype(np.int32, copy=False)


def symbol_dtype(max_symbol: int) -> np.dtype:
    """The smallest signed integer type that holds symbols in ``[-max_symbol, max_symbol]``."""
    return np.dtype(np.int8) if max_symbol <= 127 else np.dtype(np.int16)


# --- shards -----------------------------------------------------------------
def sample_key(i: int) -> str:
    return f"s{i:08d}"


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def raw_shard_bytes(first: int, symbols: np.ndarray, labels: Sequence[int] | None, dtype) -> bytes:
    """A WebDataset-style tar: ``{key}.npy`` (symbols ``[K, h, w]`` as ``dtype``) and ``{key}.cls``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for j, q in enumerate(symbols):
            key = sample_key(first + j)
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(q.astype(dtype)), allow_pickle=False)
            _tar_member(tar, f"{key}.npy", npy.getvalue())
            if labels is not None:
                _tar_member(tar, f"{key}.cls", str(int(labels[j])).encode("ascii"))
    return buf.getvalue()


def write_raw_shard(path, first: int, symbols: np.ndarray, labels: Sequence[int] | None, dtype) -> bytes:
    from ..io.files import atomic_write_bytes

    data = raw_shard_bytes(first, symbols, labels, dtype)
    atomic_write_bytes(path, data, force=True)
    return data


def read_raw_shard(path) -> tuple[list[str], np.ndarray, list[int] | None]:
    """A raw shard -> (keys, symbols ``[n, K, h, w]`` / ``[n, K, t]`` in the stored dtype, labels or None)."""
    arrays: dict[str, np.ndarray] = {}
    labels: dict[str, int] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, _, ext = m.name.partition(".")
                data = tar.extractfile(m).read()
                if ext == "npy":
                    arrays[key] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
                elif ext == "cls":
                    labels[key] = int(data.decode("ascii"))
    except (tarfile.TarError, OSError, ValueError, UnicodeDecodeError) as e:
        raise CacheError(f"{path}: not a readable latent shard: {e}") from None
    keys = sorted(arrays)
    if not keys:
        raise CacheError(f"{path}: the shard holds no samples")
    symbols = np.stack([arrays[k] for k in keys])
    if labels and set(labels) != set(keys):
        raise CacheError(f"{path}: labels and samples disagree")
    return keys, symbols, ([labels[k] for k in keys] if labels else None)


def coded_shard_bytes(codec, quality: int, first: int, symbols: np.ndarray, labels: Sequence[int] | None, sha: str) -> bytes:
    """One ``.wlt`` container holding every sample's stream (see the module docstring), coded by the
    codec's entropy model exactly as :func:`wavelatent.compress` codes the ``latent`` stream."""
    from .. import container
    from ..bitstream import LatentCoder

    cfg = codec.config
    coder = LatentCoder(codec, quality)
    streams = [coder.compress(q) for q in symbols]
    header = {
        "kind": SHARD_KIND,
        "modality": "latent",
        "preset": cfg.name,
        "weights_sha256": sha,
        "quality": int(quality),
        "latent_shape": list(symbols.shape[1:]),
        "first": int(first),
        "count": len(streams),
        "labels": None if labels is None else [int(v) for v in labels],
    }
    if coder.entropy != "none":  # shards without the field hold factorized streams
        header["entropy"] = coder.entropy
    lengths = struct.pack(f"<{len(streams)}I", *(len(s) for s in streams))
    return container.pack(header, {"lengths": lengths, "latents": b"".join(streams)})


def write_coded_shard(path, codec, quality: int, first: int, symbols, labels, sha: str) -> bytes:
    from ..io.files import atomic_write_bytes

    data = coded_shard_bytes(codec, quality, first, symbols, labels, sha)
    atomic_write_bytes(path, data, force=True)
    return data


def read_coded_shard(path_or_bytes, codec, expect: tuple[int, Sequence[int]] | None = None) -> tuple[dict, np.ndarray]:
    """A coded shard -> (its header, int32 symbols ``[n, *latent_shape]``); the weights hash is checked.

    ``expect``: ``(count, latent_shape)`` from the cache's index; a shard that says otherwise is
    refused before anything is allocated.
    """
    from .. import container
    from ..bitstream import LatentCoder
    from ..weights import weights_sha256

    data = Path(path_or_bytes).read_bytes() if not isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    c = container.unpack(data)
    h = c.header
    if h.get("kind") != SHARD_KIND or set(c.streams) != {"lengths", "latents"}:
        raise CacheError("not a latent shard (kind or streams differ)")
    if h.get("weights_sha256") != weights_sha256(codec):
        raise CacheMismatchError(
            f"the shard was written with weights {str(h.get('weights_sha256'))[:12]}…, not {weights_sha256(codec)[:12]}…"
        )
    quality = codec.config.check_quality(h.get("quality"))
    shape = h.get("latent_shape")
    n = h.get("count")
    dims = 1 + codec.config.spatial_dims
    if (not isinstance(shape, list) or len(shape) != dims or shape[0] != codec.config.latent_channels
            or not all(isinstance(v, int) and 0 <= v <= 1 << 24 for v in shape) or not isinstance(n, int) or n < 0
            or n * math.prod(shape) > 1 << 28):
        raise CacheError(f"bad latent shard header: latent_shape {shape!r}, count {n!r}")
    if expect is not None and (n != expect[0] or shape != list(expect[1])):
        raise CacheError(f"the shard holds {n} x {shape}, the index says {expect[0]} x {list(expect[1])}")
    entropy = h.get("entropy", "none")
    if not isinstance(entropy, str) or entropy not in codec.config.entropy_models:
        raise CacheError(f"the shard's entropy model {entropy!r:.40} is not {codec.config.name}'s")
    try:
        coder = LatentCoder(codec, quality, entropy=entropy)
    except WavelatentError as e:
        raise CacheError(f"the shard's entropy model {entropy!r:.40} cannot be decoded: {e}") from None
    lengths = np.frombuffer(c.streams["lengths"], dtype="<u4")
    if len(lengths) != n or int(lengths.sum()) != len(c.streams["latents"]):
        raise CacheError("latent shard stream lengths do not add up")
    blob = c.streams["latents"]
    ends = np.cumsum(lengths, dtype=np.int64).tolist()
    parts = [blob[e - size : e] for e, size in zip(ends, lengths.tolist())]
    try:  # the whole shard in one call (vectorized over its samples where the entropy model can)
        return h, coder.decompress_many(parts, shape[1:])
    except EntropyCodingError:
        pass
    for i, part in enumerate(parts):  # find the sample that does not decode, for the message
        try:
            coder.decompress(part, shape[1:])
        except EntropyCodingError as e:
            raise CacheError(f"latent shard sample {i} does not decode: {e}") from None
    raise CacheError("latent shard does not decode as a whole, though every sample does alone")


# --- the index --------------------------------------------------------------
def read_index(cache: str | os.PathLike) -> dict:
    """The ``index.json`` of a cache folder (checked for format and version)."""
    path = Path(cache) / INDEX_NAME
    try:
        if path.stat().st_size > _MAX_INDEX_BYTES:
            raise CacheError(f"{path}: larger than any index")
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise CacheError(f"{cache}: not a latent cache (no {INDEX_NAME})") from None
    except (OSError, ValueError) as e:
        raise CacheError(f"{path}: unreadable index: {e}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CacheError(f"{path}: not a wavelatent latent-cache index")
    if index.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"{path}: index version {index.get('format_version')!r} is not supported")
    return index


def _write_index(out: Path, index: dict) -> None:
    from ..io.files import atomic_write_json

    atomic_write_json(out / INDEX_NAME, index)


def list_sources(src: Path, labels: str | None, limit: int | None = None,
                 modality: str = "image") -> tuple[list[Path], list[int | None], list[str]]:
    """(image or audio paths sorted by relative path, their labels, class names).

    ``labels``: "from-folders" (the first folder under ``src``), "from-prefix" (the file name up to
    its first ``_``, e.g. FSDD's ``7_jackson_32.wav`` is class ``7``) or None.
    """
    from .audio import list_audio
    from .images import list_images

    found = list_audio(src) if modality == "audio" else list_images(src)
    paths = [p for p in found if not any(part.startswith(".") for part in p.relative_to(src).parts)]
    if limit is not None:
        paths = paths[:limit]
    if not paths:
        raise InputError(f"{src}: no {'audio files' if modality == 'audio' else 'images'} found")
    if labels is None:
        return paths, [None] * len(paths), []
    if labels not in LABELS:
        raise InputError(f"--labels must be one of {', '.join(LABELS)} or 'none', got {labels!r}")
    if labels == "from-prefix":
        names = [p.name.partition("_") for p in paths]
        bad = [p for p, (head, sep, _) in zip(paths, names) if not sep or not head]
        if bad:
            raise InputError(f"--labels from-prefix needs names like <class>_<rest>; {bad[0].name} has no prefix")
        keys = [head for head, _, _ in names]
    else:
        top = [p.relative_to(src).parts for p in paths]
        flat = [p for p, parts in zip(paths, top) if len(parts) < 2]
        if flat:
            raise InputError(f"--labels from-folders needs SRC/<class>/<file>; {flat[0]} is not in a class folder")
        keys = [parts[0] for parts in top]
    classes = sorted(set(keys))
    lookup = {c: i for i, c in enumerate(classes)}
    return paths, [lookup[k] for k in keys], classes


def default_size(cfg) -> int:
    """128 px for images; one second of samples (rounded up to whole latent steps) for audio."""
    return 128 if cfg.modality == "image" else -(-cfg.sample_rate // cfg.block) * cfg.block


def plan_cache(src, codec, *, quality=None, size=None, labels="from-folders", storage="raw", shard_size=256,
               limit=None, flip_images: int = 256) -> tuple[dict, list[Path]]:
    """The index a cache job will write (shard bytes still unknown), and the source paths in order.

    ``size``: pixels (images) or samples (audio); None: :func:`default_size`. The latent flip
    operator (:func:`wavelatent.data.flip.fit_flip`) is fitted here, on the first ``flip_images``
    images (0: none; flips are then plain reversals); audio caches have none.
    """
    from ..weights import weights_sha256

    cfg = codec.config
    audio = cfg.modality == "audio"
    if storage not in STORAGES:
        raise InputError(f"--format must be one of {', '.join(STORAGES)}, got {storage!r}")
    size = default_size(cfg) if size is None else size
    top = MAX_AUDIO_SIZE if audio else 8192
    if not isinstance(size, int) or size < 1 or size > top:
        raise InputError(f"--size must be an integer in 1..{top}, got {size!r}")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise InputError(f"--shard-size must be a positive integer, got {shard_size!r}")
    quality = cfg.check_quality(quality)
    src = Path(src)
    latent_shape = [cfg.latent_channels, *codec.latent_size((size,) if audio else (size, size))]
    per_sample = math.prod(latent_shape)
    if shard_size * per_sample > MAX_SHARD_SYMBOLS:
        raise InputError(f"--shard-size {shard_size} x {per_sample:,} symbols per sample would hold "
                         f"{shard_size * per_sample:,} symbols in memory; use --shard-size "
                         f"{max(1, MAX_SHARD_SYMBOLS // per_sample)} or less")
    paths, labs, classes = list_sources(src, labels, limit, cfg.modality)
    shards = [
        {"name": f"shard-{i // shard_size:06d}.{'tar' if storage == 'raw' else 'wlt'}", "first": i,
         "count": min(shard_size, len(paths) - i)}
        for i in range(0, len(paths), shard_size)
    ]
    index = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "preset": cfg.name,
        "weights_sha256": weights_sha256(codec),
        "config": cfg.to_dict(),
        "quality": quality,
        "step": cfg.step(quality),
        "max_symbol": cfg.max_symbol(quality),
        "size": size,
        "resize": (
            f"resampled to {cfg.sample_rate} Hz, {cfg.channels} channel(s), centred in {size} samples "
            "(zero padded, or the centre kept)" if audio
            else f"short side to {size} px (Pillow bicubic, antialiased), centre crop {size}x{size}"
        ),
        "latent_shape": latent_shape,
        "storage": storage,
        "dtype": symbol_dtype(cfg.max_symbol(quality)).name,
        "shard_size": shard_size,
        "samples": len(paths),
        "labels": labels,
        "classes": classes,
        "sources": [
            {"name": p.relative_to(src).as_posix(), "bytes": p.stat().st_size, "label": lab}
            for p, lab in zip(paths, labs)
        ],
        "shards": shards,
        "flip": None,
        "complete": False,
    }
    if flip_images > 0 and not audio:
        from .flip import fit_flip

        images = [prepare_image(p, size, cfg.channels) for p in paths[:flip_images]]
        index["flip"] = fit_flip(codec, images)
    return index, paths


def _check_same(old: dict, new: dict, out: Path) -> None:
    if old.get("preset") != new["preset"] or old.get("weights_sha256") != new["weights_sha256"]:
        raise CacheMismatchError(
            f"{out} holds a cache of {old.get('preset')!r} with weights {str(old.get('weights_sha256'))[:12]}…; "
            f"refusing to mix in {new['preset']!r} with weights {new['weights_sha256'][:12]}… (use another folder)"
        )
    diff = [k for k in _IDENTITY if old.get(k) != new.get(k)]
    if diff:
        raise CacheMismatchError(
            f"{out} holds a cache made with other settings or files ({', '.join(diff)} differ); use another folder"
        )


# --- the job ----------------------------------------------------------------
@dataclass
class CacheResult:
    """What a cache job did: the final index, shards written and skipped, and total bytes."""

    index: dict
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def cache_bytes(self) -> int:
        return sum(s["bytes"] for s in self.index["shards"])

    @property
    def source_bytes(self) -> int:
        return sum(s["bytes"] for s in self.index["sources"])


def _shard_task(index: dict, shard: dict, paths: list[Path], out: Path) -> dict:
    sl = slice(shard["first"], shard["first"] + shard["count"])
    return {
        "name": shard["name"],
        "first": shard["first"],
        "paths": [str(p) for p in paths[sl]],
        "labels": None if index["labels"] is None else [s["label"] for s in index["sources"][sl]],
        "out": str(out),
        "size": index["size"],
        "quality": index["quality"],
        "storage": index["storage"],
        "dtype": index["dtype"],
        "sha": index["weights_sha256"],
    }


def run_shard(task: dict, codec) -> dict:
    """Encode one shard's files and write the shard atomically; returns ``{name, bytes, sha256}``."""
    symbols = encode_symbols(codec, (prepare_sample(p, codec, task["size"]) for p in task["paths"]), task["quality"])
    path = Path(task["out"]) / task["name"]
    if task["storage"] == "raw":
        data = write_raw_shard(path, task["first"], symbols, task["labels"], np.dtype(task["dtype"]))
    else:
        data = write_coded_shard(path, codec, task["quality"], task["first"], symbols, task["labels"], task["sha"])
    return {"name": task["name"], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _file_info(path: Path) -> dict:
    data = path.read_bytes()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


_WORKER_CODEC = None


def _worker_init(weights: bytes, sha: str) -> None:
    global _WORKER_CODEC
    import torch

    from ..weights import deserialize

    torch.set_num_threads(1)
    _WORKER_CODEC = deserialize(weights, source="<cache job>", sha256=sha)  # the hash of the file it came from


def _worker_run(task: dict) -> dict:
    return run_shard(task, _WORKER_CODEC)


def _run_local(tasks: list[dict], codec, jobs: int, progress: bool) -> Iterable[dict]:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), unit="shard", desc="caching", disable=not progress)
    try:
        if jobs <= 1:
            for t in tasks:
                yield run_shard(t, codec)
                bar.update()
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from ..weights import serialize, weights_sha256

        weights = serialize(codec)
        ctx = mp.get_context("spawn")  # no fork after torch has started its threads
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                                 initargs=(weights, weights_sha256(codec))) as pool:
            futures = [pool.submit(_worker_run, t) for t in tasks]
            for f in as_completed(futures):
                yield f.result()
                bar.update()
    finally:
        bar.close()


class _RayShardEncoder:
    """A Ray Data actor: deserializes the codec once, then encodes and writes whole shards."""

    def __init__(self, weights: bytes, sha: str) -> None:
        _worker_init(weights, sha)

    def __call__(self, batch: dict) -> dict:
        results = [json.dumps(_worker_run(json.loads(str(t)))) for t in batch["task"]]
        return {"result": np.array(results, dtype=object)}


def _run_ray(tasks: list[dict], codec, jobs: int, progress: bool) -> Iterable[dict]:
    try:
        import ray
    except ImportError:
        raise CacheError("--engine ray needs Ray Data: pip install 'wavelatent[scale]'") from None
    from ..weights import serialize, weights_sha256

    started = not ray.is_initialized()
    if started:  # a local cluster; connect to a real one with ray.init(address=...) before calling
        ray.init(num_cpus=max(1, jobs), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        items = [{"task": json.dumps(t)} for t in tasks]
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        ds = ds.map_batches(
            _RayShardEncoder,
            fn_constructor_kwargs={"weights": serialize(codec), "sha": weights_sha256(codec)},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, jobs)),
            num_cpus=1,
            batch_format="numpy",
        )
        for row in ds.take_all():
            yield json.loads(str(row["result"]))
    finally:
        if started:
            ray.shutdown()


def build_cache(
    src: str | os.PathLike,
    out: str | os.PathLike,
    codec,
    *,
    quality: int | None = None,
    size: int | None = None,
    labels: str | None = "from-folders",
    storage: str = "raw",
    shard_size: int = 256,
    jobs: int = 1,
    engine: str = "local",
    progress: bool = True,
    limit: int | None = None,
    flip_images: int = 256,
) -> CacheResult:
    """Encode a folder of images (or audio files, with an audio codec) into a latent cache in ``out``
    (see the module docstring).

    ``codec``: a preset name, weights path or loaded codec. ``size``: pixels or samples (None: 128
    px, or one second of audio). ``labels``: "from-folders" (class = first folder under ``src``),
    "from-prefix" (class = file name up to its first ``_``) or None. ``jobs``: worker processes
    (``engine="local"``) or Ray actors (``engine="ray"``; a local Ray cluster is started unless one
    is already initialized).
    Finished shards are skipped on a rerun; a folder made with other weights or settings is refused.
    """
    import time

    from ..models import resolve_codec

    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {jobs!r}")
    t0 = time.perf_counter()
    codec = resolve_codec(codec)
    index, paths = plan_cache(src, codec, quality=quality, size=size, labels=labels, storage=storage,
                              shard_size=shard_size, limit=limit, flip_images=flip_images)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CacheError(f"{out} exists and is not a folder")
    if (out / INDEX_NAME).exists():
        _check_same(read_index(out), index, out)
    else:
        _write_index(out, index)
    done: dict[str, dict] = {}
    tasks = []
    for shard in index["shards"]:
        path = out / shard["name"]
        if path.is_file():
            done[shard["name"]] = _file_info(path)
        else:
            tasks.append(_shard_task(index, shard, paths, out))
    result = CacheResult(index, skipped=len(done))
    runner = _run_ray if engine == "ray" else _run_local
    if tasks:
        for info in runner(tasks, codec, jobs, progress):
            done[info["name"]] = info
            result.written += 1
    for shard in index["shards"]:
        shard.update(bytes=done[shard["name"]]["bytes"], sha256=done[shard["name"]]["sha256"])
    index["complete"] = True
    _write_index(out, index)
    result.seconds = time.perf_counter() - t0
    result.files = [s["name"] for s in index["shards"]]
    return result
