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
    """torchrun with 2 CPU processes (gloo) gives the single-process result up to float tolerance; the
    config has the checkerboard model's uint16 tables (as image-rgb-4x), which DDP must not broadcast."""
    from wavelatent.registry import get_config

    config = tmp_path / "config.json"
    config.write_text(get_config("test-image").replace(context="checkerboard").to_json())
    single = train(_opts(folder, tmp_path / "single", steps=4, ema=0.0, preset=None, config_file=str(config)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "wavelatent", "--threads", "1", "train", str(folder), "-o", str(tmp_path / "ddp"),
           "--config", str(config), "--steps", "4", "--batch-size", "4", "--crop", "32", "--val-count", "2",
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
        assert pruned._inference_weight()[1]


def test_export_with_context_model_and_quality_steps(folder, tmp_path):
    import wavelatent as wl
    from wavelatent.container import unpack

    ckpt = train(_opts(folder, tmp_path / "run"))
    plain, ctx = tmp_path / "plain.safetensors", tmp_path / "ctx.safetensors"
    assert main(["export", str(ckpt), "-o", str(plain), "--quality-steps", "2,1,0.5"]) == 0
    assert main(["export", str(ckpt), "-o", str(ctx), "--quality-steps", "2,1,0.5", "--context-data", str(folder)]) == 0
    a, b = load_weights(plain), load_weights(ctx)
    assert a.config.quality_steps == b.config.quality_steps == (2.0, 1.0, 0.5)
    assert (a.config.context, b.config.context) == ("none", "grid2")  # the config names grid2: both versions fitted
    img = smooth_image(70, 90, seed=9)
    for quality in (1, 2, 3):
        da, db = wl.compress(img, a, quality), wl.compress(img, b, quality)
        assert unpack(db).header["entropy"] == "grid2" and "entropy" not in unpack(da).header
        # same encoder and decoder: same pixels, whichever entropy model coded the symbols
        np.testing.assert_array_equal(wl.decompress(da, a), wl.decompress(db, b))
    assert main(["export", str(ckpt), "-o", str(tmp_path / "x.safetensors"), "--quality-steps", "2,x"]) == 2


def test_decoder_only_keeps_every_file_and_decodes_it(folder, tmp_path):
    """--decoder-only trains the decoder of release weights on their real symbols; the export keeps every
    other tensor, so a file written before has the same bytes when written again, and it still decodes
    (also_decodes); the version goes up; the run resumes exactly."""
    import wavelatent as wl
    from wavelatent.container import unpack
    from wavelatent.errors import WeightsError
    from wavelatent.train.checkpoint import export_decoder
    from wavelatent.weights import read_metadata, weights_sha256

    base_path = tmp_path / "base.safetensors"
    assert main(["export", str(train(_opts(folder, tmp_path / "src", steps=4))), "-o", str(base_path),
                 "--context-data", str(folder)]) == 0
    base = load_weights(base_path)
    opts = dict(init=str(base_path), decoder_only=True, lr=1e-2, steps=6, quality_weights="1,0,2", preset=None)
    full = train(_opts(folder, tmp_path / "dec", **opts))
    part = train(_opts(folder, tmp_path / "part", stop_at=2, **opts))
    resumed = train(_opts(folder, tmp_path / "part", resume=True, **opts))
    a, b = _state(full), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    state, theirs = load_checkpoint(full).codec.state_dict(), base.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in state.items() if not k.startswith("decoder."))
    assert not torch.equal(state["decoder.head.weight"], theirs["decoder.head.weight"])
    assert part.exists() and '"bpp_est"' not in (tmp_path / "dec" / "log.jsonl").read_text()

    out = tmp_path / "new.safetensors"
    assert main(["export", str(full), "-o", str(out)]) == 0
    new = load_weights(out)
    assert new.config == base.config.replace(version=base.config.version + 1)
    meta = read_metadata(out.read_bytes())
    assert weights_sha256(base) in meta["also_decodes"] and meta["decoder_steps"] == "6"
    img = smooth_image(70, 90, seed=9)
    old_file = wl.compress(img, base, 3)
    new_file = wl.compress(img, new, 3)
    a_, b_ = unpack(old_file), unpack(new_file)
    assert a_.streams == b_.streams  # same symbols, same bytes; only the header's weights hash and version differ
    assert {k: v for k, v in a_.header.items() if k not in ("weights_sha256", "preset_version")} == \
        {k: v for k, v in b_.header.items() if k not in ("weights_sha256", "preset_version")}
    assert wl.decompress(old_file, new).shape == img.shape  # the older weights' files decode
    assert not np.array_equal(wl.decompress(old_file, new), wl.decompress(old_file, base))

    # validation reports the release's real bytes (its tables, not the prior's)
    import json

    from wavelatent.data import load_images
    from wavelatent.train.loop import _center, _split

    o = _opts(folder, tmp_path / "dec", **opts)
    val = [_center(im, o.val_size) for im in load_images(_split(o)[1], 3)]
    expected = np.mean([8 * len(wl.compress(im, base)) / (im.shape[0] * im.shape[1]) for im in val])
    logged = [json.loads(line) for line in (tmp_path / "dec" / "log.jsonl").read_text().splitlines()]
    assert [r["val_bpp"] for r in logged if "val_bpp" in r][-1] == pytest.approx(expected, abs=1e-12)
    # a resume must carry the same decoder-only options
    with pytest.raises(InputError, match="decoder-only options"):
        train(_opts(folder, tmp_path / "part", resume=True, **{**opts, "quality_weights": "1,1,1"}))
    with pytest.raises(InputError, match="decoder-only options"):
        train(_opts(folder, tmp_path / "part", resume=True))

    with pytest.raises(InputError, match="--init"):
        train(_opts(folder, tmp_path / "x", decoder_only=True))
    with pytest.raises(InputError, match="quality-weights"):
        train(_opts(folder, tmp_path / "y", init=str(base_path), decoder_only=True, quality_weights="1,2", preset=None))
    assert main(["export", str(full), "-o", str(tmp_path / "z.safetensors"), "--default-quality", "2"]) == 1
    other = tmp_path / "other.safetensors"
    assert main(["export", str(train(_opts(folder, tmp_path / "src2", steps=3, seed=5))), "-o", str(other),
                 "--context-data", str(folder)]) == 0
    base_path.write_bytes(other.read_bytes())  # not the weights the run started from any more
    with pytest.raises(WeightsError, match="not the weights"):
        export_decoder(load_checkpoint(full), tmp_path / "w.safetensors")
    ckpt = load_checkpoint(full)
    ckpt.options["init_sha256"] = None  # a run that recorded no hash: the tensors are still compared
    with pytest.raises(WeightsError, match="not the weights"):
        export_decoder(ckpt, tmp_path / "w.safetensors")
