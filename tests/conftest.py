"""Shared fixtures: tiny synthetic images, tiny trained-free codecs, a few real files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KODAK = DATA / "images" / "kodak"


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield


def smooth_image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    """A natural-ish uint8 image: smooth gradients plus texture, deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for k in range(c):
        f = rng.uniform(0.01, 0.08, 2)
        base = 128 + 80 * np.sin(xx * f[0] + k) * np.cos(yy * f[1] - k)
        chans.append(base + rng.normal(0, 6, (h, w)))
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


@pytest.fixture
def image() -> np.ndarray:
    return smooth_image(48, 64)


@pytest.fixture(scope="session")
def test_codec():
    from wavelatent.models import create_codec

    return create_codec("test-image", seed=0)


@pytest.fixture(scope="session")
def test_weights(tmp_path_factory, test_codec) -> Path:
    """The test-image codec saved as a weights file (what --weights takes)."""
    from wavelatent.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "test-image.safetensors"
    save_weights(test_codec, path)
    return path


@pytest.fixture(scope="session")
def mono_weights(tmp_path_factory) -> Path:
    """A tiny untrained mono 8 kHz codec (``test-audio`` with one channel: blocks of 4 samples,
    2 latent channels) as a weights file."""
    import dataclasses

    from wavelatent.models import create_codec
    from wavelatent.registry import get_config
    from wavelatent.weights import save_weights

    cfg = dataclasses.replace(get_config("test-audio"), name="test-mono", channels=1)
    path = tmp_path_factory.mktemp("weights") / "test-mono.safetensors"
    save_weights(create_codec(cfg, seed=0), path)
    return path
