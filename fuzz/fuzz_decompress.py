"""Fuzz ``wavelatent.decompress`` and ``wavelatent.read_info`` with hostile .wlt bytes.

Two ways to run it (see fuzz/README.md)::

    python fuzz/fuzz_decompress.py --iterations 20000          # plain random mutation loop
    python fuzz/fuzz_decompress.py -atheris_runs=20000 -max_len=4096   # atheris / libFuzzer

The property: every input ends in a result or a ``wavelatent.WavelatentError`` subclass, within
``SECONDS_PER_INPUT``. Anything else is a crash: the plain loop saves it under ``--crash-dir`` and
exits 1; atheris writes ``crash-<sha1>`` files as libFuzzer does.

Random bytes almost never get past the CRC32, so mutations are structured: byte-level changes
(flips, truncations, insertions, deletions, overwrites) and header-field / stream edits, followed
most of the time by recomputing the CRC so that the header and payload checks behind it are
exercised. Under atheris the same mutator is a custom mutator around libFuzzer's own.
"""
from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "tests" / "data" / "test-image.safetensors"
MAX_PIXELS = 1 << 16  # a few-hundred-byte file may honestly claim max_pixels pixels: bound the work
SECONDS_PER_INPUT = 2.0

HOSTILE = [
    None, True, False, 0, -1, 1, 2, 3, 4, 6, 7, 8, 12, 65, 255, 256, 1024, 100_000, 2**31, 2**32, 2**63, -(2**63),
    10**40, 0.5, 8.0, -0.0, 1e308, "", "RGB", "RGBA", "L", "LA", "CMYK", "P", "I;16", "image", "audio",
    "multiband", "test-image", "test-gray", "image-rgb-16x", "no-such-preset", "/dev/null", "../x.safetensors",
    "uint8", "uint16", "float32", "float64", "object", "klt", [], [6], [6, 2, 3], [6, 25_000, 25_000],
    [1, 2, 4, 4], [-1, 2, 2], {}, {"a": 1}, "\u00e9\u0000", "none", "grid", "checkerboard", "grid2",
    "45e1d20869bb72da", "45e1d20869bb72da60edfc9406c15c9fb92017acddfb256c6580b3c034bcd594", "0" * 16,
]
HEADER_KEYS = [
    "modality", "preset", "preset_version", "weights_sha256", "height", "width", "mode", "bit_depth",
    "coded_channels", "padded", "latent_shape", "quality", "wavelatent_version", "bands", "dtype", "transform",
    "entropy",
]


def fix_crc(data: bytes) -> bytes:
    if len(data) < 4:
        return data
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three structured mutations; the CRC is recomputed about 70% of the time."""
    from wavelatent import container
    from wavelatent.errors import WavelatentError

    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["flip", "truncate", "insert", "delete", "overwrite", "field", "field", "stream", "size",
                         "header", "version"])
        pos = rng.randrange(len(buf)) if buf else 0
        if op == "flip" and buf:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == "delete":
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == "overwrite":
            chunk = rng.randbytes(rng.randint(1, 8))
            buf[pos : pos + len(chunk)] = chunk
        elif op == "header" and len(buf) > 10:  # a byte of the (compact or JSON) header itself
            end = min(len(buf), 10 + int.from_bytes(buf[6:10], "little"))
            if end > 10:
                buf[rng.randrange(10, end)] = rng.randrange(256)
        elif op == "version":  # the same header and streams in the other container version
            try:
                c = container.unpack(bytes(fix_crc(bytes(buf))))
                header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version")}
                buf = bytearray(container.pack(header, c.streams, version=3 - c.header["format_version"]))
            except (ValueError, TypeError, WavelatentError):
                continue
        elif op in ("field", "stream", "size"):
            try:
                c = container.unpack(bytes(fix_crc(bytes(buf))))
            except WavelatentError:
                continue
            header = {k: v for k, v in c.header.items() if k not in ("streams", "format_version")}
            streams = dict(c.streams)
            if op == "field":
                key = rng.choice(HEADER_KEYS + ["extra"])
                if rng.random() < 0.2:
                    header.pop(key, None)
                else:
                    header[key] = rng.choice(HOSTILE)
            elif op == "size":  # a consistent lie: every size field scaled together
                k = rng.choice([2, 4, 16, 1000])
                for key in ("height", "width"):
                    if isinstance(header.get(key), int):
                        header[key] *= k
                shape = header.get("latent_shape")
                if isinstance(shape, list) and len(shape) >= 2 and all(isinstance(v, int) for v in shape):
                    header["latent_shape"] = shape[:-2] + [v * k for v in shape[-2:]]
            else:
                name = rng.choice(sorted(streams) + ["alpha", "klt", "extra"])
                what = rng.choice(["drop", "random", "zlib", "nan"])
                if what == "drop":
                    streams.pop(name, None)
                elif what == "random":
                    streams[name] = rng.randbytes(rng.choice([0, 1, 4, 8, 64, len(streams.get(name, b""))]))
                elif what == "zlib":
                    streams[name] = zlib.compress(bytes(rng.choice([1, 95, 96, 97, 10**6])))
                else:
                    n = len(streams.get(name, b"")) // 8 or 31
                    streams[name] = struct.pack(f"<{n}d", *[rng.choice([float("nan"), float("inf"), 1e308, 0.0])
                                                             for _ in range(n)])
            try:
                buf = bytearray(container.pack(header, streams))
            except (ValueError, TypeError, WavelatentError):
                continue
    out = bytes(buf)
    return fix_crc(out) if rng.random() < 0.7 else out


class Target:
    """The codecs and the check that every input must pass."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        import wavelatent as wl
        from wavelatent.models import create_codec

        self.wl = wl
        self.codec = wl.load_codec(WEIGHTS)
        self.gray = create_codec("test-gray", seed=0)
        self.grid = wl.load_codec("test-image")  # the shipped tiny preset: files coded with the grid context model

    def seeds(self) -> list[bytes]:
        import numpy as np

        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (8, 12, 4), dtype=np.uint8)
        wl = self.wl
        return [
            wl.compress(img[:, :, :3], self.codec, 1),
            wl.compress(img, self.codec, 2),
            wl.compress(img[:, :, 0], self.codec, 3),
            wl.compress(img[:, :, :2], self.codec, 1),
            wl.compress(rng.integers(0, 65536, (8, 8, 5), dtype=np.uint16), self.gray, 1),
            wl.compress(rng.random((8, 4, 2)).astype(np.float32), self.gray, 1),
            wl.compress(img[:, :, :3], self.grid, 1),
            wl.compress(img, self.grid, 3),
        ]

    def check(self, data: bytes) -> str:
        """Run every entry point; return the outcome's name or raise what is a bug."""
        import numpy as np

        from wavelatent.errors import WavelatentError

        wl = self.wl
        calls = [
            lambda: wl.read_info(data),
            lambda: wl.decompress(data, self.codec, max_pixels=MAX_PIXELS),
            lambda: wl.decompress(data, self.gray, max_pixels=MAX_PIXELS),
            lambda: wl.decompress(data, self.grid, max_pixels=MAX_PIXELS),
            lambda: wl.decompress(data, max_pixels=MAX_PIXELS),
        ]
        outcome = "ok"
        for call in calls:
            t0 = time.perf_counter()
            try:
                with np.errstate(all="ignore"):
                    call()
            except WavelatentError as e:
                if call is calls[1]:
                    outcome = type(e).__name__
            seconds = time.perf_counter() - t0
            if seconds > SECONDS_PER_INPUT:
                raise TimeoutError(f"an input took {seconds:.2f} s")
        return outcome


def run_plain(iterations: int, seed: int, crash_dir: Path) -> int:
    target = Target()
    corpus = target.seeds()
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    crashes = 0
    t0 = time.perf_counter()
    for i in range(iterations):
        data = mutate(rng.choice(corpus), rng)
        try:
            outcome = target.check(data)
        except Exception as e:  # noqa: BLE001 - a crash
            crashes += 1
            crash_dir.mkdir(parents=True, exist_ok=True)
            path = crash_dir / f"crash-{zlib.crc32(data):08x}.wlt"
            path.write_bytes(data)
            print(f"iteration {i}: {type(e).__name__}: {e} -> {path}", file=sys.stderr)
            traceback.print_exc()
            outcome = "CRASH"
        outcomes[outcome] += 1
        if outcome == "ok" and len(corpus) < 200:
            corpus.append(data)  # valid mutants (e.g. other sizes) become seeds
    seconds = time.perf_counter() - t0
    print(json.dumps({"iterations": iterations, "seed": seed, "crashes": crashes, "seconds": round(seconds, 1),
                      "outcomes_of_decompress": dict(outcomes.most_common())}, indent=1))
    return 1 if crashes else 0


def run_atheris(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["wavelatent"]):
        import wavelatent.api  # noqa: F401
        import wavelatent.container  # noqa: F401
        import wavelatent.multiband  # noqa: F401
    target = Target()

    def test_one_input(data: bytes) -> None:
        target.check(data)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            data = atheris.Mutate(data, max_size)
            return fix_crc(data) if rng.random() < 0.7 else data
        return mutate(data, rng)[:max_size]

    corpus_dir = None
    for arg in argv[1:]:
        if not arg.startswith("-"):
            corpus_dir = Path(arg)
    if corpus_dir is not None and not any(corpus_dir.glob("*")):
        corpus_dir.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(target.seeds()):
            (corpus_dir / f"seed{i}.wlt").write_bytes(seed)
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main() -> int:
    if any(a.startswith("-atheris") or (a.startswith("-") and not a.startswith("--")) for a in sys.argv[1:]):
        argv = [a.replace("-atheris_", "-", 1) for a in sys.argv]
        run_atheris(argv)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crash-dir", type=Path, default=Path("/tmp/wavelatent-fuzz-crashes"))
    a = p.parse_args()
    return run_plain(a.iterations, a.seed, a.crash_dir)


if __name__ == "__main__":
    sys.exit(main())
