"""Training checkpoints in safetensors (never pickle): model, EMA, optimizer state, step, options."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..codec import WaveletCodec
from ..config import CodecConfig
from ..errors import WeightsError
from ..weights import atomic_write, safetensors_metadata, save_weights

FORMAT = "wavelatent-checkpoint"


@dataclass
class Checkpoint:
    codec: WaveletCodec
    ema: WaveletCodec | None
    optimizer_state: dict[str, Any]
    step: int
    options: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike,
    codec: WaveletCodec,
    ema: WaveletCodec | None,
    optimizer: torch.optim.Optimizer,
    step: int,
    options: dict[str, Any],
) -> None:
    """Write a checkpoint atomically (temp file + rename): a killed run leaves the previous one intact."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for k, v in codec.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    if ema is not None:
        for k, v in ema.state_dict().items():
            tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    state = optimizer.state_dict()
    for idx, entries in state["state"].items():
        for name, value in entries.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {name} is not a tensor")
            tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "config": codec.config.to_json(),
        "step": str(step),
        "options": json.dumps(options, sort_keys=True),
        "optim_groups": json.dumps(state["param_groups"]),
        "has_ema": "1" if ema is not None else "0",
    }
    atomic_write(Path(path), save(tensors, metadata=metadata))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (strict)."""
    from safetensors.torch import load

    # one read of the file: a run may replace it (atomically) while we look at it
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such checkpoint") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read checkpoint: {e.strerror or e}") from None
    try:
        meta = safetensors_metadata(data)
        tensors = load(data)
    except Exception as e:  # struct/JSON/safetensors errors: not a checkpoint
        raise WeightsError(f"{path}: not a readable checkpoint: {e}") from None
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a wavelatent training checkpoint")
    config = CodecConfig.from_json(meta["config"])

    def build(prefix: str) -> WaveletCodec:
        codec = WaveletCodec(config)
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            codec.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise WeightsError(f"{path}: checkpoint does not match its config: {e}") from None
        return codec

    codec = build("model.")
    ema = build("ema.") if meta.get("has_ema") == "1" else None
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = v
    optimizer_state = {"state": opt_state, "param_groups": json.loads(meta["optim_groups"])}
    return Checkpoint(codec, ema, optimizer_state, int(meta["step"]), json.loads(meta["options"]))


@torch.no_grad()
def prune_details(codec: WaveletCodec) -> float:
    """Zero the encoder's weights on every band below a level-1 detail band (2D codecs).

    Encoding then computes only the level-1 approximation's subtree (about a quarter of the
    transform's work). Returns the largest absolute weight removed, relative to the largest weight;
    check the rate and PSNR after pruning (16x encoders put ~1e-4 of their latent variance there).
    """
    cfg, weight = codec.config, codec.encoder.weight
    if cfg.spatial_dims != 2 or cfg.levels < 1:
        raise WeightsError(f"{cfg.name}: pruning level-1 detail bands applies to image codecs")
    per_band = weight.view(weight.shape[0], cfg.channels, 4, -1)
    removed = per_band[:, :, 1:].abs().max().item() / max(weight.abs().max().item(), 1e-30)
    per_band[:, :, 1:] = 0.0
    return removed


def copy_trained(source: WaveletCodec, target: WaveletCodec) -> None:
    """Copy ``source``'s trained weights into ``target`` (same architecture; quality steps, default
    quality and entropy model may differ). Entropy tables, derived from the weights, are left to
    ``freeze`` / context fitting. Raises WeightsError if the architectures differ."""
    derived = ("tables_", "context_", "grid_", "grid2_")
    state = {k: v for k, v in source.state_dict().items() if not k.startswith(derived)}
    try:
        missing, unexpected = target.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise WeightsError(f"{target.config.name}: the weights do not fit this architecture: {e}") from None
    if unexpected or any(not k.startswith(derived) for k in missing):
        raise WeightsError(f"{target.config.name}: the weights do not fit this architecture ({missing + unexpected})")


def export_checkpoint(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    use_ema: bool = True,
    default_quality: int | None = None,
    prune: bool = False,
    quality_steps: tuple[float, ...] | None = None,
    context_data: str | os.PathLike | None = None,
    progress: bool = False,
) -> str:
    """Checkpoint -> release weights (EMA weights if present, entropy tables frozen); returns sha256.

    ``default_quality`` overrides the quality that ``compress`` uses when none is given;
    ``prune`` applies :func:`prune_details`; ``quality_steps`` replaces the quantization steps
    (keep them within the range trained); ``context_data`` (a folder of images, never the test set)
    (images or audio) switches to the grid context model fitted on them (train/grid.py; the config's
    version, "grid" for configs of another model); without it a
    config naming a context model exports with the per-channel tables (``wavelatent fit-entropy`` fits
    one later).
    """
    ckpt = load_checkpoint(path)
    if ckpt.options.get("decoder_only"):
        if default_quality is not None or prune or quality_steps is not None or context_data is not None:
            from ..errors import InputError

            raise InputError("a decoder-only run exports its decoder into the weights it started from; "
                             "--default-quality, --prune-details, --quality-steps and --context-data do not apply")
        return export_decoder(ckpt, out, use_ema=use_ema)
    codec = copy.deepcopy(ckpt.ema if (use_ema and ckpt.ema is not None) else ckpt.codec).eval()
    config = codec.config
    if quality_steps is not None:
        config = config.replace(quality_steps=tuple(quality_steps), default_quality=min(config.default_quality,
                                                                                         len(quality_steps)))
    if default_quality is not None:
        config = config.replace(default_quality=config.check_quality(default_quality))
    # a config naming a grid model keeps its version ("grid2": version 2's tables fitted as well)
    grid_model = config.context if config.grid_version else "grid"
    config = config.replace(context=grid_model if context_data is not None else "none", legacy_context="none")
    if config != codec.config:
        trained, codec = codec, WaveletCodec(config).eval()
        copy_trained(trained, codec)
    extra = {"trained_steps": str(ckpt.step), "train_options": json.dumps(ckpt.options, sort_keys=True)}
    if prune:
        extra["pruned"] = f"level-1 detail bands (largest removed weight {prune_details(codec):.2e} of the largest)"
    codec.freeze()
    if context_data is not None:
        from .grid import fit_codec, fit_metadata

        info = fit_codec(codec, context_data, holdout=0, progress=progress)
        extra.update(fit_metadata(info, weights=True, version2=config.grid_version == 2))
    return save_weights(codec, out, extra=extra)


def export_decoder(ckpt: Checkpoint, out: str | os.PathLike, *, use_ema: bool = True) -> str:
    """A decoder-only run -> the weights it started from (``options["init"]``) with the trained decoder:
    every other tensor must be theirs bit for bit (so every file keeps its symbols and bytes), their
    metadata carries over, ``also_decodes`` names them (files written with them decode with the new
    weights) and the version is the registry's or + 1. Returns the sha256."""
    import hashlib

    import torch

    from ..registry import get_config, list_presets
    from ..weights import deserialize, successor_metadata, weights_file

    path = weights_file(str(ckpt.options.get("init")))
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"the weights this decoder-only run started from ({path}) cannot be read: "
                           f"{e.strerror or e}") from None
    recorded, now = ckpt.options.get("init_sha256"), hashlib.sha256(raw).hexdigest()
    if recorded and now != recorded:
        raise WeightsError(f"{path} is not the weights this run started from (sha256 {recorded[:16]}... then, "
                           f"{now[:16]}... now)")
    base = deserialize(raw, source=str(path), sha256=now)
    trained = ckpt.ema if (use_ema and ckpt.ema is not None) else ckpt.codec
    if trained.config.replace(default_quality=base.config.default_quality) != base.config:
        raise WeightsError(f"{path} holds another config than the run ({base.config.name})")
    theirs = base.state_dict()
    changed = [k for k, v in trained.state_dict().items()
               if not k.startswith("decoder.") and not torch.equal(v.cpu(), theirs[k])]
    if changed:
        raise WeightsError(f"{path} is not the weights this run started from: {', '.join(changed[:3])} differ")
    registered = get_config(base.config.name) if base.config.name in list_presets() else None
    version = max(base.config.version + 1, registered.version if registered is not None else 0)
    codec = WaveletCodec(base.config.replace(version=version)).eval()
    codec.load_state_dict(trained.state_dict(), strict=True)
    extra = {**successor_metadata(raw), "decoder_steps": str(ckpt.step),
             "decoder_train_options": json.dumps(ckpt.options, sort_keys=True)}
    return save_weights(codec, out, extra=extra)
