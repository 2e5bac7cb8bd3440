"""Import WaLLoC checkpoints (the ``walloc`` package: ``MODEL.pth`` + ``CONFIG.json``) as wavelatent codecs.

``import_walloc`` loads the ``.pth`` with ``torch.load(weights_only=True)`` (nothing is unpickled
beyond tensors and plain containers), converts the state dict and the config
(:mod:`wavelatent.nn.walloc` documents the architecture and every conversion), gives the codec an
entropy model, and returns it ready for :func:`wavelatent.weights.save_weights`.

Entropy model: walloc has none (its README stores the 8-bit latents as PNG/WebP images). An
imported codec gets our per-channel logistic-mixture prior, either *wide* (centred, scales of
1/64, 1/16 and 1/4 of the symbol range: every symbol stays codable, at some cost in rate) or
*fitted* to the symbols of a folder of images or audio files (``fit_dir``), then frozen into the
rANS tables like any trained codec.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch
from torch import Tensor

from .codec import WaveletCodec
from .config import CodecConfig
from .errors import InputError, WeightsError
from .nn.walloc import WallocSpec, convert_state_dict, parse_walloc_config

MAX_CHECKPOINT_BYTES = 1 << 31
MAX_CONFIG_BYTES = 1 << 16
DEFAULT_SAMPLE_RATE = 44100  # walloc's audio codecs were trained on 44.1 kHz music (MUSDB)
_STATE_KEYS = ("model_state_dict", "state_dict")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """The state dict in a walloc ``.pth``: the file itself, or its ``model_state_dict`` entry.

    Loaded with ``weights_only=True``: a checkpoint that needs arbitrary unpickling (walloc's
    training script may store an ``argparse.Namespace`` or a ``SimpleNamespace`` beside the weights)
    is refused with a :class:`WeightsError` that says how to re-save its state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise WeightsError(f"{path}: {size} bytes is larger than a walloc checkpoint ({MAX_CHECKPOINT_BYTES})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except torch.serialization.pickle.UnpicklingError as e:  # what weights_only=True raises
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise WeightsError(
                f"{path}: refusing to unpickle it: it holds more than tensors ({str(e).splitlines()[0][:200]}). "
                "If you trust the file, load it yourself in a separate session and re-save only its state "
                "dict (the tensors) with torch.save, then import that"
            ) from None
        raise WeightsError(f"{path}: not a torch checkpoint ({e})") from None
    except (RuntimeError, ValueError, EOFError, OSError, KeyError, AttributeError) as e:
        raise WeightsError(f"{path}: not a torch checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(obj, dict):
        for key in _STATE_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{path}: expected a state dict or a dict with 'model_state_dict', got {type(obj).__name__}")
    bad = [k for k, v in obj.items()
           if not isinstance(k, str) or not isinstance(v, Tensor) or not v.is_floating_point()]
    if bad:
        raise WeightsError(f"{path}: not a model state dict: entries {bad[:5]} are not floating-point tensors")
    return obj


def load_config_text(path: str | os.PathLike) -> str:
    """walloc's JSON config, canonicalized (sorted keys, compact)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise WeightsError(f"{path}: larger than a walloc config ({MAX_CONFIG_BYTES} bytes)")
        d = json.loads(path.read_bytes())
    except OSError as e:
        raise WeightsError(f"cannot read walloc config {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: not JSON: {e}") from None
    if not isinstance(d, dict):
        raise WeightsError(f"{path}: a walloc config is a JSON object")
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def detect_architecture(state: dict[str, Tensor]) -> str:
    """``walloc2d`` for ``Codec2D`` (Conv2d encoder), ``walloc1d`` for ``Codec1D`` (Conv1d encoder)."""
    weight = state.get("encoder.0.weight")
    if weight is None:
        raise WeightsError("not a walloc Codec2D/Codec1D state dict (no encoder.0.weight; lightweight_encode=true "
                           "codecs only)")
    if weight.dim() == 4:
        return "walloc2d"
    if weight.dim() == 3:
        return "walloc1d"
    raise WeightsError(f"encoder.0.weight has shape {tuple(weight.shape)}: neither Codec2D nor Codec1D")


def codec_config(spec: WallocSpec, walloc_json: str, *, name: str, sample_rate: int = DEFAULT_SAMPLE_RATE,
                 description: str = "") -> CodecConfig:
    """The wavelatent config of an imported codec: one quality (step 1, walloc's rounding)."""
    image = spec.architecture == "walloc2d"
    return CodecConfig(
        name=name,
        modality="image" if image else "audio",
        channels=spec.channels,
        levels=spec.levels,
        latent_channels=spec.latent_channels,
        latent_bits=spec.latent_bits,
        decoder_width=spec.width,
        decoder_blocks=0,
        prior_components=3,
        quality_steps=(1.0,),
        default_quality=1,
        sample_rate=0 if image else sample_rate,
        description=description,
        architecture=spec.architecture,
        walloc_config=walloc_json,
    )


# --------------------------------------------------------------------------- entropy model
@torch.no_grad()
def wide_prior(codec: WaveletCodec) -> None:
    """Centred mixture with scales of 1/64, 1/16, 1/4 of the symbol range (geometric for other counts)."""
    prior, bound = codec.prior, codec.config.bound
    k = prior.logits.shape[1]
    fractions = torch.logspace(-6, -2, k, base=2.0) if k > 1 else torch.tensor([1 / 8])
    prior.logits.zero_()
    prior.means.zero_()
    prior.log_scales.copy_((bound * fractions).log().expand_as(prior.log_scales))


def symbol_counts(codec: WaveletCodec, signals, quality: int | None = None) -> Tensor:
    """Histogram ``[latent_channels, 2Q + 1]`` (int64) of the symbols of ``signals`` (tensors ``[1, C, *S]``)."""
    q_max = codec.config.max_symbol(quality)
    counts = torch.zeros(codec.config.latent_channels, 2 * q_max + 1, dtype=torch.int64)
    with torch.inference_mode():
        for x in signals:
            q = codec.quantize(codec.encode(x), quality).transpose(0, 1).reshape(counts.shape[0], -1)
            counts += torch.stack([torch.bincount(row.long() + q_max, minlength=counts.shape[1]) for row in q])
    return counts


def fit_prior(codec: WaveletCodec, counts: Tensor, *, steps: int = 200, lr: float = 0.1) -> float:
    """Fit the prior to a symbol histogram (maximum likelihood); returns the bits per latent it gives."""
    cfg, prior = codec.config, codec.prior
    total = float(counts.sum())
    if total <= 0:
        raise InputError("no latents to fit the prior to")
    step = cfg.step(None)
    q_max = (counts.shape[1] - 1) // 2
    y = (torch.arange(-q_max, q_max + 1, dtype=torch.float32) * step).expand(1, counts.shape[0], -1)
    weights = counts.to(torch.float32)
    with torch.no_grad():  # start from each channel's mean and spread
        p = weights / weights.sum(1, keepdim=True).clamp_min(1)
        mean = (p * y[0]).sum(1, keepdim=True)
        std = (p * (y[0] - mean) ** 2).sum(1, keepdim=True).sqrt().clamp_min(0.5 * step)
        k = prior.means.shape[1]
        spread = torch.linspace(-1.0, 1.0, k) if k > 1 else torch.zeros(1)
        prior.means.copy_(mean + 0.5 * std * spread)
        prior.log_scales.copy_((std * math.sqrt(3) / math.pi).log().expand_as(prior.log_scales))
        prior.logits.zero_()
    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = -(weights * torch.log2(prior.likelihood(y, step))).sum() / total
            loss.backward()
            opt.step()
    return prior_bits(codec, counts)


@torch.no_grad()
def prior_bits(codec: WaveletCodec, counts: Tensor) -> float:
    """Bits per latent that the prior's frozen pmf spends on a symbol histogram."""
    pmf = codec.prior.pmf(codec.config.step(None), (counts.shape[1] - 1) // 2)
    return float(-(counts.double() * pmf.clamp_min(1e-12).log2()).sum() / counts.sum().clamp_min(1))


def _signals(codec: WaveletCodec, folder: str | os.PathLike, limit: int, max_seconds: float):
    """Tensors of the images (or audio excerpts) in ``folder``, one at a time."""
    cfg = codec.config
    if cfg.modality == "image":
        from .data.images import list_images, load_images
        from .io.images import to_tensor

        paths = list_images(folder)[:limit]
        if not paths:
            raise InputError(f"{folder}: no images to fit the prior to")
        for path in paths:
            yield to_tensor(load_images([path], cfg.channels)[0])
        return
    from .data.audio import list_audio, load_audio

    paths = list_audio(folder)[:limit]
    if not paths:
        raise InputError(f"{folder}: no audio files to fit the prior to")
    frames = int(max_seconds * cfg.sample_rate)
    for path in paths:
        x = load_audio([path], cfg.sample_rate, cfg.channels)[0][:frames]
        yield torch.from_numpy(x.T.copy()).unsqueeze(0)


# --------------------------------------------------------------------------- the import
def import_walloc(
    model_path: str | os.PathLike,
    config_path: str | os.PathLike,
    *,
    name: str | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    fit_dir: str | os.PathLike | None = None,
    fit_limit: int = 64,
    fit_seconds: float = 30.0,
) -> tuple[WaveletCodec, dict]:
    """Convert a walloc checkpoint. Returns the codec (eval mode, tables frozen) and a report dict
    (architecture, parameters, prior and its bits per latent on ``fit_dir`` when given)."""
    state = load_checkpoint(model_path)
    walloc_json = load_config_text(config_path)
    architecture = detect_architecture(state)
    spec = parse_walloc_config(walloc_json, architecture)
    if architecture == "walloc2d" and json.loads(walloc_json).get("post_filter"):
        raise WeightsError("the config asks for a 1D post-filter but the checkpoint is a Codec2D")
    kind = "Codec2D" if architecture == "walloc2d" else "Codec1D"
    name = name or f"walloc-{Path(config_path).stem}"
    description = (
        f"WaLLoC {kind} imported from {Path(model_path).name}: J={spec.levels}, {spec.packet_channels} packet "
        f"channels -> {spec.latent_channels} latent channels ({spec.packet_channels / spec.latent_channels:.3g}x), "
        f"Nd={spec.width}, {spec.latent_bits}-bit companded latents"
        + (", post-filter" if spec.post_filter else "")
    )
    config = codec_config(spec, walloc_json, name=name, sample_rate=sample_rate, description=description)
    codec = WaveletCodec(config)
    converted = convert_state_dict(state, spec)
    full = codec.state_dict()
    unexpected = sorted(set(converted) - set(full))
    if unexpected:
        raise WeightsError(f"walloc state dict has tensors this architecture lacks: {unexpected[:8]}")
    missing = sorted(k for k in full if k.startswith(("encoder.", "decoder.")) and k not in converted)
    if missing:
        raise WeightsError(f"walloc state dict lacks {missing[:8]}")
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(full[k].shape)})" for k, v in converted.items()
             if v.shape != full[k].shape]
    if wrong:
        raise WeightsError(f"walloc state dict does not fit its config: {wrong[:5]}")
    full.update(converted)
    codec.load_state_dict(full, strict=True)
    report: dict = {"name": name, "architecture": architecture, "walloc_class": kind,
                    "parameters": sum(p.numel() for n, p in codec.named_parameters() if not n.startswith("prior."))}
    wide_prior(codec)
    report["prior"] = "wide"
    if fit_dir is not None:
        counts = symbol_counts(codec, _signals(codec, fit_dir, fit_limit, fit_seconds))
        report["fit_latents"] = int(counts.sum())
        report["bits_wide_prior"] = prior_bits(codec, counts)
        report["bits_fitted_prior"] = fit_prior(codec, counts)
        report["prior"] = f"fitted to {fit_dir}"
    codec.freeze()
    return codec.eval(), report


def checkpoint_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
