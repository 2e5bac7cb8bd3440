"""Training: exact resume, loadable checkpoints after a kill, export, DDP equivalence."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wavelatent.cli import main
from wavelatent.errors import InputError
from wavelatent.train import TrainOptions, load_checkpoint, train
from wavelatent.weights import load_weights

from .conftest import smooth_image


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_images")
    for i in range(8):
        Image.fromarray(smooth_image(40 + 4 * i, 48, seed=i)).save(root / f"{i}.png")
    return root


def _opts(folder: Path, out: Path, **kw) -> TrainOptions:
    base = dict(data=str(folder), out=str(out), preset="test-image", steps=8, batch_size=4, crop=32, val_count=2,
                val_every=4, warmup=2, ema=0.9, progress=False, checkpoint_minutes=60)
    base.update(kw)
    return TrainOptions(**base)


def _state(path: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(path)
    return {**ckpt.codec.state_dict(), **{f"ema.{k}": v for k, v in ckpt.ema.state_dict().items()}}


def test_resume_is_exact(folder, tmp_path):
    full = train(_opts(folder, tmp_path / "full"))
    part = train(_opts(folder, tmp_path / "part", stop_at=3))
    assert load_checkpoint(part).step == 3
    with pytest.raises(InputError, match="--resume"):
        train(_opts(folder, tmp_path / "part"))
    resumed = train(_opts(folder, tmp_path / "part", resume=True))
    assert load_checkpoint(resumed).step == 8
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and training did something
    fresh = _state(train(_opts(folder, tmp_path / "zero", steps=1)))
    assert not torch.equal(fresh["decoder.head.weight"], a["decoder.head.weight"])
    log = (tmp_path / "full" / "log.jsonl").read_text()
    assert '"val_psnr"' in log and '"val_bpp"' in log


def test_export_and_use(folder, tmp_path, capsys):
    ckpt = train(_opts(folder, tmp_path / "run"))
    out = tmp_path / "w.safetensors"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    codec = load_weights(out)
    assert codec.config.name == "test-image"
    assert main(["export", str(ckpt), "-o", str(out)]) == 1  # exists, no --force
    png = tmp_path / "x.png"
    Image.fromarray(smooth_image(30, 30)).save(png)
    assert main(["compress", str(png), "-o", str(tmp_path / "x.wlt"), "-w", str(out)]) == 0


def test_killed_run_leaves_loadable_checkpoint(folder, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "wavelatent", "--threads", "1", "train", str(folder), "-o", str(out),
           "--preset", "test-image", "--steps", "100000", "--batch-size", "4", "--crop", "32", "--val-count", "2",
           "--val-every", "100000", "--checkpoint-minutes", "0", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "last.safetensors"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (ckpt.exists() and load_checkpoint(ckpt).step >= 3):
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert load_checkpoint(ckpt).step >= 3
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")] or True  # temp files may remain; the checkpoint is whole


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a POSIX system for torchrun")
def test_ddp_matches_single_process(folder, tmp_path):
    """torchrun with 2 CPU processes (gloo) gives the single-process result up to float tolerance."""
    single = train(_opts(folder, tmp_path / "single", steps=4, ema=0.0))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "wavelatent", "--threads", "1", "train", str(folder), "-o", str(tmp_path / "ddp"),
           "--preset", "test-image", "--steps", "4", "--batch-size", "4", "--crop", "32", "--val-count", "2",
           "--val-every", "4", "--warmup", "2", "--checkpoint-minutes", "60", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    a = load_checkpoint(single).codec.state_dict()
    b = load_checkpoint(tmp_path / "ddp" / "last.safetensors").codec.state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=1e-4), k


def test_init_and_prune_details(folder, tmp_path):
    src = train(_opts(folder, tmp_path / "src", steps=2))
    out = tmp_path / "ft"
    ckpt = train(_opts(folder, out, steps=3, init=str(src), prune_details=True))
    state = load_checkpoint(ckpt)
    for codec in (state.codec, state.ema):
        w = codec.encoder.weight.view(codec.encoder.weight.shape[0], codec.config.channels, 4, -1)
        assert torch.count_nonzero(w[:, :, 1:]) == 0 and torch.count_nonzero(w[:, :, 0]) > 0
    # --init copies the weights it starts from: a zero-step fine-tune exports the source's decoder
    same = load_checkpoint(train(_opts(folder, tmp_path / "same", steps=0, init=str(src))))
    torch.testing.assert_close(same.codec.decoder.state_dict(), load_checkpoint(src).ema.decoder.state_dict())
    with pytest.raises(InputError, match="architecture"):
        train(_opts(folder, tmp_path / "bad", preset="test-gray", init=str(src)))
    w_out = tmp_path / "p.safetensors"
    assert main(["export", str(src), "-o", str(w_out), "--prune-details"]) == 0
    pruned = load_weights(w_out)
    with torch.inference_mode():
        assert pruned._approximation_weight() is not None


def test_export_with_context_model_and_quality_steps(folder, tmp_path):
    import wavelatent as wl
    from wavelatent.container import unpack

    ckpt = train(_opts(folder, tmp_path / "run"))
    plain, ctx = tmp_path / "plain.safetensors", tmp_path / "ctx.safetensors"
    assert main(["export", str(ckpt), "-o", str(plain), "--quality-steps", "2,1,0.5"]) == 0
    assert main(["export", str(ckpt), "-o", str(ctx), "--quality-steps", "2,1,0.5", "--context-data", str(folder)]) == 0
    a, b = load_weights(plain), load_weights(ctx)
    assert a.config.quality_steps == b.config.quality_steps == (2.0, 1.0, 0.5)
    assert (a.config.context, b.config.context) == ("none", "grid")
    img = smooth_image(70, 90, seed=9)
    for quality in (1, 2, 3):
        da, db = wl.compress(img, a, quality), wl.compress(img, b, quality)
        assert unpack(db).header["entropy"] == "grid" and "entropy" not in unpack(da).header
        # same encoder and decoder: same pixels, whichever entropy model coded the symbols
        np.testing.assert_array_equal(wl.decompress(da, a), wl.decompress(db, b))
    assert main(["export", str(ckpt), "-o", str(tmp_path / "x.safetensors"), "--quality-steps", "2,x"]) == 2
