"""The training loop: MSE + lambda * rate, AdamW, warmup + cosine LR, EMA, DDP, exact resume.

Images: random crops, ``loss = lmbda * 255^2 * MSE + bits per pixel`` (CompressAI convention).
Audio presets: random excerpts of a folder of audio files resampled to the preset's rate,
``loss = MSE + lmbda * bits per sample`` (per channel sample; waveform in [-1, 1]). At the optimum
one more bit per sample is worth ``lmbda`` of MSE; in the high-rate regime a coded coefficient then
gets a quantization step of about ``sqrt(12 lmbda / (2 ln 2)) = 2.9 sqrt(lmbda)`` (so ``lmbda = 1e-4``
gives steps of about 0.03 in waveform units, ~1e-4 of MSE: ~20 dB SNR on music at -17 dBFS RMS).

Decoder only (``decoder_only``, from release weights given as ``init``): everything but the decoder
stays as it is (encoder, quantizer, entropy tables), so every file keeps its symbols and bytes; each
sample is quantized at a quality drawn per sample (``quality_weights``) exactly as files hold it, and
the decoder learns to decode those symbols. Images: ``loss = mean over samples of 10 log10(MSE)``
(minus the mean PSNR, so no quality's larger errors drown the others); audio: MSE.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..codec import WaveletCodec
from ..config import CodecConfig
from ..errors import InputError
from ..registry import get_config
from .checkpoint import copy_trained, load_checkpoint, prune_details, save_checkpoint


PRIOR_LR_SCALE = 10.0


@dataclass
class TrainOptions:
    """Options of one training run (stored in its checkpoints)."""

    data: str
    out: str
    preset: str | None = None
    config_file: str | None = None
    val: str | None = None  # folder of validation images; default: hold out val_count training images
    val_count: int = 6
    val_size: int = 384  # validation images are centre-cropped to at most this size (speed)
    steps: int = 20_000
    batch_size: int = 16
    crop: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 200
    weight_decay: float = 1e-4
    lmbda: float | None = None  # None: 0.0067 for images (lmbda * 255^2 * MSE + bpp), 1e-4 for audio (MSE + lmbda * bits/sample)
    ema: float = 0.0  # EMA decay; 0 disables
    seed: int = 0
    pca_init: bool = True
    init: str | None = None  # start from these weights (a preset, release weights or a checkpoint): fine-tuning
    prune_details: bool = False  # images: keep the encoder's weights on level-1 detail bands at zero (fast encode)
    val_every: int = 1000
    checkpoint_minutes: float = 5.0
    max_minutes: float | None = None  # stop (with a checkpoint) after this wall time; resume later
    stop_at: int | None = None  # stop (with a checkpoint) at this step; the schedule still spans `steps`
    resume: bool = False  # continue OUT/last.safetensors; without it an existing checkpoint is an error
    force: bool = False  # start over even if OUT has a checkpoint (it is replaced at the first save)
    threads: int | None = None
    device: str = "auto"
    progress: bool = True
    excerpt: int | None = None  # audio: samples per excerpt (rounded up to whole blocks); None: 256 latent positions
    val_seconds: float = 10.0  # audio: validate on at most this many seconds from the middle of each file
    decoder_only: bool = False  # train only the decoder of the release weights `init` (files keep their bytes)
    quality_weights: str | None = None  # decoder_only: relative frequency of each quality, e.g. "1,1,1,2,3"
    init_sha256: str | None = None  # decoder_only: set by `train`, the sha256 of the weights file `init` names

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dist() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _lr_at(step: int, o: TrainOptions) -> float:
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    t = min(1.0, (step - o.warmup) / max(1, o.steps - o.warmup))
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * t))


def _resolve_config(o: TrainOptions) -> CodecConfig:
    if o.config_file:
        try:
            return CodecConfig.from_json(Path(o.config_file).read_text())
        except OSError as e:
            raise InputError(f"{o.config_file}: {e.strerror or e}") from None
    if not o.preset:
        raise InputError("give a preset (--preset) or a config file (--config)")
    return get_config(o.preset)


def _split(o: TrainOptions, audio: bool = False) -> tuple[list[Path], list[Path]]:
    from ..data import list_images
    from ..data.audio import list_audio

    lister = list_audio if audio else list_images
    files = lister(o.data)
    if o.val:
        return files, lister(o.val)
    if len(files) <= o.val_count:
        raise InputError(f"{o.data}: {len(files)} files are too few to hold out {o.val_count} for validation")
    # every k-th file is held out: a spread of the folder, stable across runs
    k = len(files) // o.val_count
    val = files[k // 2 :: k][: o.val_count]
    held = set(val)
    return [f for f in files if f not in held], val


@torch.no_grad()
def pca_init(codec: WaveletCodec, x: torch.Tensor, scale: float = 4.0) -> None:
    """Start from the best linear codec: encoder = top principal directions of the packets."""
    coeffs = codec.analysis(codec.pad(x - codec.signal_offset))
    flat = coeffs.transpose(0, 1).reshape(coeffs.shape[1], -1).double()  # [P, N]
    mean = flat.mean(1, keepdim=True)
    cov = (flat - mean) @ (flat - mean).T / flat.shape[1]
    _, vecs = torch.linalg.eigh(cov)
    u = vecs[:, -codec.config.latent_channels :].flip(1)  # [P, K], largest first
    codec.encoder.weight.copy_((scale * u.T).float())
    codec.encoder.bias.copy_((-scale * u.T @ mean).flatten().float())
    skip = codec.decoder.skip
    skip.weight.copy_((u / scale).float().view(skip.weight.shape))
    skip.bias.copy_(mean.flatten().float())
    # prior: each channel's mixture starts at the latents' own mean and spread
    y = codec.encode(x).transpose(0, 1).reshape(codec.config.latent_channels, -1)
    prior = codec.prior
    k = prior.means.shape[1]
    spread = torch.linspace(-1.0, 1.0, k) if k > 1 else torch.zeros(1)
    std = y.std(1, keepdim=True).clamp_min(0.5)
    prior.means.copy_(y.mean(1, keepdim=True) + 0.5 * std * spread)
    prior.log_scales.copy_((std * math.sqrt(3) / math.pi).log().expand_as(prior.log_scales))
    prior.logits.zero_()


def _center(arr: np.ndarray, size: int) -> np.ndarray:
    h, w = arr.shape[:2]
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return arr[y0 : y0 + size, x0 : x0 + size]


def validate(codec: WaveletCodec, images: list[np.ndarray], quality: int | None = None, *,
             freeze: bool = True) -> dict[str, float]:
    """Real compress/decompress of each image: bpp from the bytes, PSNR from the decoded pixels.
    ``freeze``: freeze the prior into tables first (False: the codec holds a release's tables)."""
    from ..api import compress, decompress
    from ..evaluate.metrics import psnr

    model = copy.deepcopy(codec).eval()
    if freeze:
        model.freeze()
    bpps, psnrs = [], []
    for im in images:
        data = compress(im, model, quality)
        out = decompress(data, model)
        out = out[:, :, None] if out.ndim == 2 else out
        bpps.append(8 * len(data) / (im.shape[0] * im.shape[1]))
        psnrs.append(psnr(out, im))
    return {"bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))}


def validate_audio(codec: WaveletCodec, clips: list[np.ndarray], *, freeze: bool = True) -> dict[str, float]:
    """Real compress/decompress of each clip: kbps from the bytes, SNR over all clips together.
    ``freeze`` as in :func:`validate`."""
    from ..audio import compress_audio, decompress_audio, snr_db

    model = copy.deepcopy(codec).eval()
    if freeze:
        model.freeze()
    rate = model.config.sample_rate
    bits = seconds = signal = error = 0.0
    for clip in clips:
        data = compress_audio(clip, rate, model)
        out, _ = decompress_audio(data, model, noise_fill=False)  # the MSE output: what training optimises
        bits += 8 * len(data)
        seconds += len(clip) / rate
        signal += float(np.sum(clip.astype(np.float64) ** 2))
        error += float(np.sum((clip.astype(np.float64) - out) ** 2))
    return {"kbps": bits / seconds / 1000, "snr": snr_db(signal, error)}


def audio_pca_scale(config: CodecConfig, lmbda: float) -> float:
    """Encoder gain at which the middle quality step is the high-rate optimum for ``lmbda``."""
    steps = sorted(config.quality_steps)
    return steps[len(steps) // 2] / math.sqrt(12 * lmbda / (2 * math.log(2)))


def _middle(x: np.ndarray, n: int) -> np.ndarray:
    start = max(0, (len(x) - n) // 2)
    return x[start : start + n]


def init_from(codec: WaveletCodec, source: str) -> None:
    """Copy the trained weights of ``source`` (a preset, release weights or a checkpoint's EMA) into ``codec``.

    The architecture must match; the quality steps and default quality may differ (fine-tuning a preset
    over a new range of steps).
    """
    from ..errors import WeightsError
    from ..models import load_codec

    path = Path(source)
    if path.is_file():
        try:
            ckpt = load_checkpoint(path)
            src = ckpt.ema if ckpt.ema is not None else ckpt.codec
        except WeightsError:
            src = load_codec(path)
    else:
        src = load_codec(source)
    try:
        copy_trained(src, codec)
    except WeightsError:
        raise InputError(f"--init {source}: its architecture ({src.config.name}) differs from the one trained here") from None


class _Stop(Exception):
    pass


def decoder_base(o: TrainOptions) -> tuple[WaveletCodec, TrainOptions]:
    """The release weights a decoder-only run keeps all of but the decoder (``o.init``: a preset or a
    ``.safetensors`` weights file, not a checkpoint: their entropy tables must be the ones files use),
    and the options with ``init`` made absolute (a file) and ``init_sha256`` set, which `export` checks."""
    from ..errors import PresetError, WeightsError
    from ..models import load_codec

    if not o.init:
        raise InputError("--decoder-only trains the decoder of release weights: give them with --init "
                         "(a preset name or a .safetensors weights file)")
    if o.config_file or o.prune_details:
        raise InputError("--decoder-only keeps the --init weights' config and encoder: drop --config/--prune-details")
    try:
        base = load_codec(o.init)  # its weights_sha256: the hash of the file's bytes
    except (PresetError, WeightsError) as e:
        raise InputError(f"--decoder-only --init {o.init}: not readable release weights ({e}); "
                         "export a checkpoint first") from None
    if o.preset and o.preset != base.config.name:
        raise InputError(f"--preset {o.preset} differs from the --init weights' preset {base.config.name}")
    return base, dataclasses.replace(o, init=_base_name(o.init), init_sha256=base.weights_sha256)


def _base_name(init: str) -> str:
    """A decoder-only run's ``--init`` as recorded: a preset name, or the weights file's absolute path."""
    from ..registry import list_presets
    from ..weights import weights_file

    return init if init in list_presets() else str(weights_file(init).resolve())


def quality_weights(o: TrainOptions, qualities: int) -> torch.Tensor:
    """How often a decoder-only run draws each quality ``[qualities]`` (float)."""
    if o.quality_weights is None:
        return torch.ones(qualities)
    try:
        w = [float(v) for v in o.quality_weights.split(",")]
    except ValueError:
        w = []
    if len(w) != qualities or not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
        raise InputError(f"--quality-weights must be {qualities} non-negative numbers (one per quality), "
                         f"not all zero, got {o.quality_weights!r}")
    return torch.tensor(w)


class DecoderTrainer(torch.nn.Module):
    """The decoder-only training pass ``x [B, C, *S], qualities [B] -> x_hat``: the frozen encoder's
    latent, quantized per sample at its quality exactly as files hold it, decoded (gradients reach only
    the decoder). A module so that DDP can wrap it."""

    def __init__(self, codec: WaveletCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, x: torch.Tensor, qualities: torch.Tensor) -> torch.Tensor:
        c = self.codec
        with torch.no_grad():
            y = c.encode(x)
            y_hat = torch.cat([c.dequantize(c.quantize(y[i : i + 1], q), q) for i, q in enumerate(qualities.tolist())])
        return c.decode(y_hat)


def train(o: TrainOptions) -> Path:
    """Run (or resume) training; returns the path of the last checkpoint."""
    from tqdm import tqdm

    from ..data import CropBatcher, load_images

    rank, world = _dist()
    if o.threads:
        torch.set_num_threads(o.threads)
    device = torch.device("cuda" if (o.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if o.device == "auto" else o.device))
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if o.batch_size % world:
        raise InputError(f"batch size {o.batch_size} must be divisible by the {world} processes")
    out = Path(o.out)
    ckpt_path = out / "last.safetensors"
    log_path = out / "log.jsonl"
    main = rank == 0
    if main:
        out.mkdir(parents=True, exist_ok=True)

    base = None
    if o.decoder_only:
        base, o = decoder_base(o)
    config = base.config if base is not None else _resolve_config(o)
    draw = quality_weights(o, config.qualities) if o.decoder_only else None
    audio = config.modality == "audio"
    lmbda = o.lmbda if o.lmbda is not None else (1e-4 if audio else 0.0067)
    train_files, val_files = _split(o, audio)
    if audio:
        from ..data.audio import ExcerptBatcher, load_audio

        rate = config.sample_rate
        clips = load_audio(train_files, rate, config.channels, progress=o.progress and main)
        val_images = ([_middle(c, max(1, int(o.val_seconds * rate))) for c in load_audio(val_files, rate, config.channels)]
                      if main else [])
        length = -(-(o.excerpt or 256 * config.block) // config.block) * config.block
        batcher = ExcerptBatcher(clips, length, o.batch_size, o.seed)
    else:
        images = load_images(train_files, config.channels, min_size=o.crop, progress=o.progress and main)
        val_images = [_center(im, o.val_size) for im in load_images(val_files, config.channels)] if main else []
        batcher = CropBatcher(images, o.crop, o.batch_size, o.seed)

    if ckpt_path.exists() and not (o.resume or o.force):
        raise InputError(f"{out} already holds a run ({ckpt_path.name}); pass --resume to continue it or --force to start over")
    if o.resume and not ckpt_path.exists():
        raise InputError(f"nothing to resume: {ckpt_path} does not exist")
    if o.resume:
        ckpt = load_checkpoint(ckpt_path)
        # the default quality is a coding-time choice (see export), not part of what is trained
        if ckpt.codec.config.replace(default_quality=config.default_quality) != config:
            raise InputError(f"{ckpt_path} was trained with another config ({ckpt.codec.config.name})")
        if o.decoder_only or ckpt.options.get("decoder_only"):
            # the same base weights: by their hash (checkpoints from before it was recorded: by name)
            keys = ("decoder_only", "init_sha256" if ckpt.options.get("init_sha256") else "init", "quality_weights")
            ran, now = {k: ckpt.options.get(k) for k in keys}, {k: getattr(o, k) for k in keys}
            if "init" in ran and ran["init"]:
                ran["init"] = _base_name(ran["init"])
            if now != ran:
                diff = ", ".join(f"{k}: {ran[k]!r} then, {now[k]!r} now" for k in keys if ran[k] != now[k])
                raise InputError(f"{ckpt_path} was started with other decoder-only options ({diff}); "
                                 "resume with the same ones")
        codec, ema, start = ckpt.codec, ckpt.ema, ckpt.step
        opt_state = ckpt.optimizer_state
    else:
        torch.manual_seed(o.seed)
        if base is not None:  # decoder only: the release weights as they are, entropy tables included
            codec = copy.deepcopy(base)
        else:
            codec = WaveletCodec(config)
            if o.init:
                init_from(codec, o.init)
            elif o.pca_init:
                pca_init(codec, torch.cat([batcher.batch(-1 - i)[0] for i in range(4)]),
                         **({"scale": audio_pca_scale(config, lmbda)} if audio else {}))
        if o.prune_details:
            prune_details(codec)
        ema = copy.deepcopy(codec) if o.ema > 0 else None
        start, opt_state = 0, None
    codec.to(device).train()
    if ema is not None:
        ema.to(device).eval().requires_grad_(False)

    if o.decoder_only:
        codec.requires_grad_(False)
        codec.decoder.requires_grad_(True)
    named = [(n, p) for n, p in codec.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.dim() > 1 and not n.startswith("prior.")]
    no_decay = [p for n, p in named if p.dim() <= 1 and not n.startswith("prior.")]
    prior = [p for n, p in named if n.startswith("prior.")]
    # the prior has few parameters that must follow the latents closely: a larger step size
    groups = [
        {"params": decay, "weight_decay": o.weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": prior, "weight_decay": 0.0, "lr_scale": PRIOR_LR_SCALE},
    ]
    groups = [gr for gr in groups if gr["params"]]  # decoder only: no prior
    optimizer = torch.optim.AdamW(groups, lr=o.lr)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)
    model = DecoderTrainer(codec) if o.decoder_only else codec
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # buffers are the entropy tables (static while training; uint16 ones cannot be broadcast)
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                        broadcast_buffers=False)

    steps_lo, steps_hi = min(config.quality_steps), max(config.quality_steps)
    pixels = o.crop * o.crop
    t0 = last_ckpt = time.monotonic()
    stop = {"now": False}

    def on_signal(signum, frame):  # finish the step, checkpoint, exit
        stop["now"] = True

    old_handler = signal.signal(signal.SIGTERM, on_signal) if main else None

    def checkpoint(step: int) -> None:
        if main:
            save_checkpoint(ckpt_path, codec, ema, optimizer, step, o.to_dict())

    def log(record: dict[str, Any]) -> None:
        if main:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    bar = tqdm(total=o.steps, initial=start, disable=not (o.progress and main), dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, desc=config.name)
    step = start
    try:
        while step < min(o.steps, o.stop_at or o.steps):
            x, g = batcher.batch(step)
            B = x.shape[0]
            shard = slice(rank * B // world, (rank + 1) * B // world)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, o) * group["lr_scale"]
            if draw is not None:  # decoder only: the real symbols of a quality drawn per sample; the rate is fixed
                qualities = torch.multinomial(draw, B, replacement=True, generator=g) + 1
                x = x[shard].to(device)
                x_hat = model(x, qualities[shard])
                per_sample = (x_hat - x).pow(2).flatten(1).mean(1)
                mse = per_sample.mean()
                bpp = torch.zeros(())
                loss = mse if audio else 10 * torch.log10(per_sample.clamp_min(1e-12)).mean()
            else:
                u = torch.rand(B, generator=g)
                qstep = torch.exp(math.log(steps_lo) + u * (math.log(steps_hi) - math.log(steps_lo)))
                latent = (B, config.latent_channels, *[n // config.block for n in x.shape[2:]])
                noise = torch.rand(latent, generator=g) - 0.5
                x, qstep, noise = x[shard].to(device), qstep[shard].to(device), noise[shard].to(device)
                x_hat, bits = model(x, qstep, noise)
                mse = F.mse_loss(x_hat, x)
                if audio:  # bits per channel sample
                    bpp = bits.sum() / x.numel()
                    loss = mse + lmbda * bpp
                else:
                    bpp = bits.sum() / (x.shape[0] * pixels)
                    loss = lmbda * 255.0**2 * mse + bpp
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
            optimizer.step()
            if o.prune_details:
                prune_details(codec)
            if ema is not None:
                with torch.no_grad():
                    for pe, p in zip(ema.parameters(), codec.parameters()):
                        pe.lerp_(p, 1 - o.ema)
            step += 1
            if main:
                bar.update(1)
                if step % 10 == 0 and audio:
                    snr = 10 * math.log10(max(x.pow(2).mean().item(), 1e-12) / max(mse.item(), 1e-12))
                    bar.set_postfix(loss=f"{loss.item():.3g}", snr=f"{snr:.2f}", bps=f"{bpp.item():.3f}")
                elif step % 10 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}", psnr=f"{-10 * math.log10(max(mse.item(), 1e-10)):.2f}",
                                    bpp=f"{bpp.item():.3f}")
                if step % 100 == 0:  # bpp_est: bits per pixel, or per channel sample for audio
                    rate = {} if o.decoder_only else {"bpp_est": bpp.item()}  # decoder only: the rate is fixed
                    log({"step": step, "loss": loss.item(), "mse": mse.item(), **rate,
                         "lr": _lr_at(step - 1, o), "elapsed_s": time.monotonic() - t0})
                if val_images and audio and (step % o.val_every == 0 or step == o.steps):
                    r = validate_audio(ema if ema is not None else codec, val_images, freeze=not o.decoder_only)
                    log({"step": step, "val_kbps": r["kbps"], "val_snr": r["snr"]})
                    tqdm.write(f"step {step}: validation SNR {r['snr']:.2f} dB at {r['kbps']:.2f} kbps (real bytes)")
                elif val_images and (step % o.val_every == 0 or step == o.steps):
                    try:
                        r = validate(ema if ema is not None else codec, val_images, freeze=not o.decoder_only)
                    except Exception as e:  # a failing validation must not cost the run
                        log({"step": step, "val_error": f"{type(e).__name__}: {e}"})
                        tqdm.write(f"step {step}: validation failed: {type(e).__name__}: {e}")
                    else:
                        log({"step": step, "val_bpp": r["bpp"], "val_psnr": r["psnr"]})
                        tqdm.write(f"step {step}: validation PSNR {r['psnr']:.2f} dB at {r['bpp']:.3f} bpp (real bytes)")
            now = time.monotonic()
            if now - last_ckpt > o.checkpoint_minutes * 60:
                checkpoint(step)
                last_ckpt = now
            if o.max_minutes is not None and now - t0 > o.max_minutes * 60:
                raise _Stop
            if stop["now"]:
                raise _Stop
    except (KeyboardInterrupt, _Stop):
        checkpoint(step)
        bar.close()
        if main:
            print(f"stopped at step {step}; checkpoint {ckpt_path} (add --resume to the same command to continue)", file=sys.stderr)
        return ckpt_path
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    checkpoint(step)
    bar.close()
    return ckpt_path
