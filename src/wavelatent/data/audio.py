"""Training audio: files decoded and resampled to the preset's rate, kept in memory as int16,
cut into random excerpts deterministically per step (the audio counterpart of ``CropBatcher``)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..io.audio import AUDIO_SUFFIXES, AudioReader, resample
from ..io.files import list_files


FSDD_NAME = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)\.wav$")
"""A Free Spoken Digit Dataset recording: ``{digit}_{speaker}_{n}.wav``."""


def fsdd_split(folder: str | os.PathLike, limit_per_class: int | None = None) -> dict[str, list[tuple[Path, int]]]:
    """The spoken-digit recordings of ``folder`` as FSDD's README splits them (``n`` 0-4: test, the
    rest: train), sorted by digit, speaker and ``n``: ``{"train": [(path, digit)], "test": [...]}``,
    at most ``limit_per_class`` per digit and split."""
    found = sorted((int(m[1]), m[2], int(m[3]), p) for p in Path(folder).iterdir() if (m := FSDD_NAME.match(p.name)))
    parts: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    count: dict[tuple[str, int], int] = {}
    for digit, _, n, p in found:
        which = "test" if n < 5 else "train"
        if limit_per_class is not None:
            if count.get((which, digit), 0) >= limit_per_class:
                continue
            count[(which, digit)] = count.get((which, digit), 0) + 1
        parts[which].append((p, digit))
    return parts


def list_audio(root: str | os.PathLike) -> list[Path]:
    """Audio files under ``root`` (recursive, following symlinked files), sorted by path."""
    return list_files(root, AUDIO_SUFFIXES)


def fit_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """``[n, c]`` -> ``[n, channels]``: mono is repeated, a mono codec takes the mean, otherwise
    the first ``channels`` channels are kept."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return np.repeat(x, channels, axis=1)
    if channels == 1:
        return x.mean(axis=1, keepdims=True)
    if x.shape[1] > channels:
        return x[:, :channels]
    return np.concatenate([x, np.repeat(x[:, -1:], channels - x.shape[1], axis=1)], axis=1)


def fit_length(x: np.ndarray, size: int) -> np.ndarray:
    """``[n, ...]`` -> ``[size, ...]``: centred in zeros when shorter (offset rounded down), the
    centre ``size`` frames when longer."""
    n = len(x)
    if n >= size:
        start = (n - size) // 2
        return x[start : start + size]
    out = np.zeros((size, *x.shape[1:]), x.dtype)
    start = (size - n) // 2
    out[start : start + n] = x
    return out


def read_clip(path: str | os.PathLike, rate: int, channels: int) -> np.ndarray:
    """One audio file as float32 ``[n, channels]`` at ``rate`` (resampled where needed, channels fitted)."""
    with AudioReader(path) as r:
        x, src_rate = r.read(), r.info.sample_rate
    if src_rate != rate:
        x = resample(x, src_rate, rate)
    return np.ascontiguousarray(fit_channels(x, channels), dtype=np.float32)


def load_audio(paths: list[Path], rate: int, channels: int, *, progress: bool = False) -> list[np.ndarray]:
    """Decode files to float32 ``[n, channels]`` at ``rate`` (:func:`read_clip` each)."""
    from tqdm import tqdm

    out = [read_clip(p, rate, channels) for p in tqdm(paths, desc="loading audio", disable=not progress, leave=False)]
    if not out:
        raise InputError("no audio files to train on")
    return out


class ExcerptBatcher:
    """Random excerpts of ``length`` samples from the clips joined end to end, with random polarity
    and (stereo and up) a random channel order reversal; batch ``t`` depends only on ``(seed, t)``.

    ``batch(t)`` -> ``x [B, C, length]`` float32 in [-1, 1] and a ``torch.Generator`` left in a state
    that also depends only on ``(seed, t)`` (callers draw quantization noise from it).
    """

    def __init__(self, clips: list[np.ndarray], length: int, batch_size: int, seed: int) -> None:
        if length < 1:
            raise InputError(f"excerpt length must be positive, got {length}")
        joined = np.concatenate(clips, axis=0)
        if len(joined) < length:  # tiny data sets: pad with silence
            joined = np.concatenate([joined, np.zeros((length - len(joined), joined.shape[1]), np.float32)])
        self.audio = np.round(np.clip(joined, -1.0, 32767 / 32768) * 32768).astype(np.int16)
        self.length, self.batch_size, self.seed = length, batch_size, seed

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + step) % (2**63))

    def batch(self, step: int) -> tuple[Tensor, torch.Generator]:
        g = self.generator(step)
        u = torch.rand(self.batch_size, 3, generator=g).tolist()
        span = len(self.audio) - self.length + 1
        out = []
        for start, sign, swap in u:
            s0 = int(start * span)
            x = self.audio[s0 : s0 + self.length].astype(np.float32) / 32768.0
            if sign < 0.5:
                x = -x
            if swap < 0.5:
                x = x[:, ::-1]
            out.append(np.ascontiguousarray(x.T))
        return torch.from_numpy(np.stack(out)), g
