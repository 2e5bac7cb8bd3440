"""WaLLoC's modules (the ``walloc`` package, 1.2.1), reimplemented so its checkpoints run here.

No diffusers and no pytorch_wavelets: the layers below reproduce, name for name, what
``walloc.Codec2D`` / ``walloc.Codec1D`` build from them, so a converted state dict loads
strictly and computes the same function (``tests/test_walloc_import.py`` checks it against the
real package when that is installed). Notes on what walloc does, and how it maps onto
:class:`~wavelatent.codec.WaveletCodec`'s ``encode -> quantize -> dequantize -> decode``:

Wavelets
    walloc applies ``pytorch_wavelets``' ``DWTForward(J=1, wave="bior4.4", mode="periodization")``
    ``J`` times to every channel and concatenates ``[L, H[0]]`` (2D: ``[LL, LH, HL, HH]``) per input
    channel, i.e. channels colour-major, then packet band, first level most significant.
    pytorch_wavelets stores the analysis filters reversed (``h0 = dec_lo[::-1]``) for a
    correlation, rolls the input by ``-len(filter) // 2 = -5`` and wraps the tail around; that is
    ``lo[k] = sum_j dec_lo[j] x[(2k + 5 - j) mod N]``, exactly the convention of
    :mod:`wavelatent.transforms.wavelets` (synthesis likewise: ``x[n] = sum_k lo[k]
    rec_lo[(n - 2k + 4) mod N] + ...``). Its 2D bands ``(LH, HL, HH)`` are (detail along H, detail
    along W, both) = PyWavelets' ``h, v, d``, our digits 1, 2, 3. So our packet channels equal
    walloc's (to float rounding, < 1e-6) and need no permutation. The filter buffers in walloc's
    state dict (``wt.*``, ``iwt.*``) are checked to be bior4.4 and dropped.
Encoder
    ``Conv2d(C * 4**J, latent_dim, 1)`` / ``Conv1d(C * 2**J, latent_dim, kernel_size=1, padding=1)``:
    a linear map over packet channels, stored here as :class:`~wavelatent.nn.LinearEncoder`
    ``weight [K, P]``. The 1D ``padding=1`` adds one latent frame at each end whose value is the
    bias alone (the conv sees zeros); those two frames are constants, so they are not coded: the
    1D decoder holds them (``edge``, walloc's rounded ``compand(bias)``) and puts them back.
Companding quantizer
    ``ToUniform``: ``y = 2 m (Phi(u / s) - 1/2)`` with ``Phi`` the standard normal CDF,
    ``s = (2**(bits-1) - 1) / 1.85`` and ``m = 2**(bits-1) - 1/2 - 1e-3``, then rounding (eval;
    uniform noise in training). Symbols are the integers in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``
    (``|y| < m``), i.e. our quantizer at step 1 with ``bound = 2**(bits-1) - 1``. The decoder first
    applies ``ToNormal``: ``u = s Phi^-1(clamp(y / 2m + 1/2, 1e-4, 0.9999))``.
2D decoder (``diffusers.AutoencoderKL``'s ``Decoder``, one ``UpDecoderBlock2D``, no upsampling)
    At latent resolution: ``conv_in`` 3x3 (K -> Nd); ``mid_block``: ResNet, attention, ResNet;
    ``up_blocks[0]``: 3 ResNets; ``conv_norm_out`` GroupNorm; SiLU; ``conv_out`` 3x3 (Nd -> P).
    ResNet: ``x + conv2(SiLU(GN(conv1(SiLU(GN(x))))))``, 3x3 convs with zero padding,
    GroupNorm(32 groups, eps 1e-6) everywhere. Attention: one head of width Nd over all
    ``h * w`` positions, GroupNorm first, ``to_q/to_k/to_v/to_out.0`` linear layers with bias,
    scaled dot-product (scale ``Nd**-0.5``), residual. The attention and the norms are global over
    the image, so imported 2D codecs decode whole images, never in stripes.
1D decoder (``diffusers``' ``OobleckDecoder``, strides ``(1, 1)``, channel multiples ``(m, m)``,
    ``m = Nd // K``) plus walloc's post-filter
    ``conv1`` k7 (K -> K m); two blocks of Snake, ``conv_t1`` = ``ConvTranspose1d(k=2, stride=1,
    padding=1)`` (one frame shorter: two blocks remove the two frames the encoder added) and three
    residual units (Snake, k7 conv at dilation 1 / 3 / 9, Snake, k1 conv, residual); Snake; ``conv2``
    k7 without bias (K -> P). Snake: ``x + sin(e**alpha x)**2 / (e**beta + 1e-9)`` per channel.
    diffusers wraps every conv in ``torch.nn.utils.weight_norm`` (``weight_g``, ``weight_v``,
    ``dim=0``); the importer stores the effective weight ``torch._weight_norm(v, g, 0)`` -- the
    tensor walloc's forward computes -- in plain convolutions (identical outputs; fine-tuning then
    trains the weights directly, without the norm/direction split). After wavelet synthesis
    walloc filters the signal with ``post`` = ``Conv1d(C, C, 129, padding=64)`` when
    ``post_filter``. Our codec synthesizes the decoder's output itself, so the 1D decoder returns
    ``analysis(post(synthesis(coeffs)))``, which the codec's synthesis inverts exactly. That
    periodic synthesis wraps a window's far end onto its start, as walloc's does over the whole
    signal: windows of chunked audio decoding keep it out of their centres (the post-filter's 129
    taps count in the decoder's reach), but the first and last ~64 samples of a file depend
    slightly on the chunk size.
Signal range
    walloc images are ``x / 255 - 1/2`` (our ``x - signal_offset``). walloc audio is peak-normalized
    to +-0.5, ours is +-1: the importer folds the factor 1/2 into the encoder weights (exact: a power
    of two) and the 1D decoder multiplies its output by 2.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WeightsError
from ..transforms import analysis_1d, synthesis_1d
from .quantizer import BoundedQuantizer

ARCHITECTURES = ("walloc2d", "walloc1d")
AUDIO_SCALE = 0.5  # walloc's audio amplitude per unit of ours
GROUPS = 32  # walloc's norm_num_groups
EPS = 1e-6
POST_TAPS = 129
_MAX_CONFIG_CHARS = 1 << 16


# --------------------------------------------------------------------------- walloc's JSON config
@dataclass(frozen=True)
class WallocSpec:
    """The fields of walloc's JSON config that shape a codec (the rest are training settings)."""

    architecture: str  # "walloc2d" (Codec2D) or "walloc1d" (Codec1D)
    channels: int
    levels: int  # walloc's J
    latent_channels: int  # latent_dim
    latent_bits: int
    width: int  # Nd
    post_filter: bool = False

    @property
    def bands(self) -> int:
        return (4 if self.architecture == "walloc2d" else 2) ** self.levels

    @property
    def packet_channels(self) -> int:
        return self.channels * self.bands


def parse_walloc_config(text: str, architecture: str) -> WallocSpec:
    """walloc's JSON (``SimpleNamespace(**json.load(...))`` in its README) -> :class:`WallocSpec`."""
    if architecture not in ARCHITECTURES:
        raise WeightsError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if not isinstance(text, str) or len(text) > _MAX_CONFIG_CHARS:
        raise WeightsError("walloc config must be a JSON text of at most 64 KiB")
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"walloc config is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise WeightsError("walloc config must be a JSON object")
    need = ["channels", "J", "Nd", "latent_dim", "latent_bits", "lightweight_encode"]
    if architecture == "walloc1d":
        need.append("post_filter")
    missing = [k for k in need if k not in d]
    if missing:
        raise WeightsError(f"walloc config lacks {missing}")
    if d["lightweight_encode"] is not True:
        raise WeightsError(
            "only walloc codecs with lightweight_encode=true (the linear encoder of the paper) can be imported"
        )

    def integer(key: str, lo: int, hi: int) -> int:
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise WeightsError(f"walloc config: {key} must be an integer in {lo}..{hi}, got {v!r}")
        return v

    spec = WallocSpec(
        architecture=architecture,
        channels=integer("channels", 1, 64),
        levels=integer("J", 1, 6),
        latent_channels=integer("latent_dim", 1, 4096),
        latent_bits=integer("latent_bits", 2, 12),
        width=integer("Nd", 1, 8192),
        post_filter=bool(d.get("post_filter", False)),
    )
    if architecture == "walloc1d" and not isinstance(d["post_filter"], bool):
        raise WeightsError("walloc config: post_filter must be true or false")
    if architecture == "walloc2d" and spec.width % GROUPS:
        raise WeightsError(f"walloc config: Nd={spec.width} must be a multiple of {GROUPS} (GroupNorm groups)")
    if architecture == "walloc1d" and spec.width < spec.latent_channels:
        raise WeightsError(f"walloc config: Nd={spec.width} must be at least latent_dim={spec.latent_channels}")
    return spec


# --------------------------------------------------------------------------- companding quantizer
def compand_scale(latent_bits: int) -> float:
    return (2 ** (latent_bits - 1) - 1) / 1.85


def latent_max(latent_bits: int) -> float:
    return 2 ** (latent_bits - 1) - 1 + 0.5 - 1e-3


def compand(u: Tensor, latent_bits: int) -> Tensor:
    """walloc's ``ToUniform``: ``2 m (Phi(u / s) - 1/2)``, in walloc's order of float operations."""
    x = u / compand_scale(latent_bits)
    x = 0.5 * (1 + torch.erf(x / math.sqrt(2)))  # torch.distributions.Normal(0, 1).cdf
    x = x - 0.5
    return 2 * latent_max(latent_bits) * x


def expand(y: Tensor, latent_bits: int) -> Tensor:
    """walloc's ``ToNormal``: ``s Phi^-1(clamp(y / 2m + 1/2, 1e-4, 0.9999))``."""
    x = y / (2 * latent_max(latent_bits))
    x = (x + 0.5).clamp(0.0001, 0.9999)  # nn.Hardtanh(min_val=0.0001, max_val=0.9999)
    x = torch.erfinv(2 * x - 1) * math.sqrt(2)  # Normal(0, 1).icdf
    return compand_scale(latent_bits) * x


class CompandingQuantizer(BoundedQuantizer):
    """Gaussian-CDF companding, then rounding at step 1: symbols in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``.

    ``squash`` is walloc's ``ToUniform`` (the latent ``y`` that :meth:`WaveletCodec.encode` returns
    is walloc's ``codec.encoder[0:2](X)``); quantize/dequantize/round_ste are the bounded quantizer's.
    """

    def __init__(self, latent_bits: int) -> None:
        super().__init__(2 ** (latent_bits - 1) - 1)
        self.latent_bits = latent_bits

    def squash(self, y: Tensor) -> Tensor:
        return compand(y, self.latent_bits)

    def extra_repr(self) -> str:
        return f"latent_bits={self.latent_bits}"


# --------------------------------------------------------------------------- 2D decoder
class ResnetBlock(nn.Module):
    """diffusers' ``ResnetBlock2D`` without time embedding, in == out channels."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, width, eps=EPS)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, width, eps=EPS)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class AttentionBlock(nn.Module):
    """diffusers' ``Attention`` as the VAE mid block uses it: one head over all positions, residual."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.group_norm = nn.GroupNorm(GROUPS, width, eps=EPS)
        self.to_q = nn.Linear(width, width)
        self.to_k = nn.Linear(width, width)
        self.to_v = nn.Linear(width, width)
        self.to_out = nn.ModuleList([nn.Linear(width, width)])

    def forward(self, x: Tensor) -> Tensor:
        batch, width, height, breadth = x.shape
        h = self.group_norm(x.view(batch, width, height * breadth)).transpose(1, 2)  # [B, N, C]
        q, k, v = (layer(h).unsqueeze(1) for layer in (self.to_q, self.to_k, self.to_v))  # [B, 1, N, C]
        h = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        h = self.to_out[0](h)
        return h.transpose(1, 2).reshape(batch, width, height, breadth) + x


class MidBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(width), ResnetBlock(width)])
        self.attentions = nn.ModuleList([AttentionBlock(width)])

    def forward(self, x: Tensor) -> Tensor:
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class UpBlock(nn.Module):
    """``UpDecoderBlock2D`` with ``layers_per_block + 1 = 3`` ResNets and no upsampler (final block)."""

    def __init__(self, width: int, layers: int = 3) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(width) for _ in range(layers)])

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x


class WallocDecoder2D(nn.Module):
    """``y_hat [B, K, h, w]`` (companded symbols) -> packet coefficients ``[B, C * 4**J, h, w]``.

    ``ToNormal`` and diffusers' KL ``Decoder(up_block_types=("UpDecoderBlock2D",), block_out_channels=(Nd,),
    layers_per_block=2, norm_num_groups=32, act_fn="silu", mid_block_add_attention=True)``.
    """

    def __init__(self, spec: WallocSpec) -> None:
        super().__init__()
        self.latent_bits = spec.latent_bits
        width = spec.width
        self.conv_in = nn.Conv2d(spec.latent_channels, width, 3, padding=1)
        self.mid_block = MidBlock(width)
        self.up_blocks = nn.ModuleList([UpBlock(width)])
        self.conv_norm_out = nn.GroupNorm(GROUPS, width, eps=EPS)
        self.conv_out = nn.Conv2d(width, spec.packet_channels, 3, padding=1)

    def forward(self, y_hat: Tensor) -> Tensor:
        h = self.conv_in(expand(y_hat, self.latent_bits))
        h = self.up_blocks[0](self.mid_block(h))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# --------------------------------------------------------------------------- 1D decoder
class Snake(nn.Module):
    """diffusers' ``Snake1d`` (log-scale parameters): ``x + sin(e**alpha x)**2 / (e**beta + 1e-9)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1, width, 1))
        self.beta = nn.Parameter(torch.zeros(1, width, 1))

    def forward(self, x: Tensor) -> Tensor:
        alpha, beta = torch.exp(self.alpha), torch.exp(self.beta)
        return x + (beta + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


class ResidualUnit(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.snake1 = Snake(width)
        self.conv1 = nn.Conv1d(width, width, 7, dilation=dilation, padding=3 * dilation)
        self.snake2 = Snake(width)
        self.conv2 = nn.Conv1d(width, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.snake2(self.conv1(self.snake1(x))))


class DecoderBlock(nn.Module):
    """``OobleckDecoderBlock`` at stride 1: its transposed conv (k=2, padding=1) drops one frame."""

    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.snake1 = Snake(width_in)
        self.conv_t1 = nn.ConvTranspose1d(width_in, width_out, 2, stride=1, padding=1)
        self.res_unit1 = ResidualUnit(width_out, 1)
        self.res_unit2 = ResidualUnit(width_out, 3)
        self.res_unit3 = ResidualUnit(width_out, 9)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_t1(self.snake1(x))
        return self.res_unit3(self.res_unit2(self.res_unit1(x)))


class WallocDecoder1D(nn.Module):
    """``y_hat [B, K, n]`` (companded symbols) -> packet coefficients ``[B, C * 2**J, n]`` in our amplitude.

    walloc's edge frames are put back around ``y_hat``, then ``ToNormal``, diffusers'
    ``OobleckDecoder(channels=K, input_channels=K, audio_channels=C * 2**J, upsampling_ratios=[1, 1],
    channel_multiples=[m, m])`` (``n + 2`` frames in, ``n`` out), the optional post-filter on the
    synthesized signal (returned re-analysed), and the amplitude factor ``1 / AUDIO_SCALE``.
    """

    def __init__(self, spec: WallocSpec) -> None:
        super().__init__()
        self.latent_bits, self.levels = spec.latent_bits, spec.levels
        k = spec.latent_channels
        hidden = k * (spec.width // k)
        self.conv1 = nn.Conv1d(k, hidden, 7, padding=3)
        self.block = nn.ModuleList([DecoderBlock(hidden, hidden), DecoderBlock(hidden, k)])
        self.snake1 = Snake(k)
        self.conv2 = nn.Conv1d(k, spec.packet_channels, 7, padding=3, bias=False)
        self.post = None
        if spec.post_filter:
            self.post = nn.Conv1d(spec.channels, spec.channels, POST_TAPS, padding=POST_TAPS // 2)
        # walloc's first and last latent frames: round(compand(encoder bias)), set by the importer.
        self.register_buffer("edge", torch.zeros(k))

    def forward(self, y_hat: Tensor) -> Tensor:
        edge = self.edge.to(y_hat).view(1, -1, 1).expand(y_hat.shape[0], -1, 1)
        h = self.conv1(expand(torch.cat([edge, y_hat, edge], dim=2), self.latent_bits))
        for block in self.block:
            h = block(h)
        coeffs = self.conv2(self.snake1(h))
        if self.post is None:
            return coeffs / AUDIO_SCALE
        x = self.post(synthesis_1d(coeffs, self.levels))
        return analysis_1d(x / AUDIO_SCALE, self.levels)


# --------------------------------------------------------------------------- factory and state dicts
def walloc_modules(config: Any) -> tuple[nn.Module, CompandingQuantizer, nn.Module]:
    """``(encoder, quantizer, decoder)`` of a codec config with ``architecture`` walloc2d or walloc1d."""
    from .encoder import LinearEncoder

    spec = parse_walloc_config(config.walloc_config, config.architecture)
    ours = (config.channels, config.levels, config.latent_channels, config.latent_bits, config.decoder_width)
    theirs = (spec.channels, spec.levels, spec.latent_channels, spec.latent_bits, spec.width)
    if ours != theirs:
        raise WeightsError(
            f"codec config {config.name!r} (channels, levels, latent_channels, latent_bits, decoder_width) = {ours} "
            f"disagrees with its walloc config {theirs}"
        )
    if (config.modality == "image") != (spec.architecture == "walloc2d"):
        raise WeightsError(f"architecture {spec.architecture} does not code {config.modality}")
    decoder = WallocDecoder2D(spec) if spec.architecture == "walloc2d" else WallocDecoder1D(spec)
    return LinearEncoder(spec.packet_channels, spec.latent_channels), CompandingQuantizer(spec.latent_bits), decoder


def _bior44_buffers(dims: int) -> dict[str, Tensor]:
    """pytorch_wavelets' filter buffers for bior4.4 as walloc's state dict holds them."""
    from ..transforms.wavelets import DEC_HI, DEC_LO, REC_HI, REC_LO

    def rev(taps: tuple[float, ...]) -> Tensor:  # analysis filters are stored reversed (for a correlation)
        return torch.tensor(taps[::-1], dtype=torch.float32)

    def fwd(taps: tuple[float, ...]) -> Tensor:
        return torch.tensor(taps, dtype=torch.float32)

    if dims == 1:
        return {"wt.h0": rev(DEC_LO), "wt.h1": rev(DEC_HI), "iwt.g0": fwd(REC_LO), "iwt.g1": fwd(REC_HI)}
    out = {}
    for axis in ("col", "row"):
        out.update({f"wt.h0_{axis}": rev(DEC_LO), f"wt.h1_{axis}": rev(DEC_HI)})
        out.update({f"iwt.g0_{axis}": fwd(REC_LO), f"iwt.g1_{axis}": fwd(REC_HI)})
    return out


_OLD_ATTENTION_NAMES = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def convert_state_dict(state: dict[str, Tensor], spec: WallocSpec) -> dict[str, Tensor]:
    """walloc ``Codec2D``/``Codec1D`` state dict -> this package's ``encoder.*`` and ``decoder.*`` tensors.

    Strict: every tensor must be used, the wavelet filter buffers must be bior4.4, shapes are
    checked when the result is loaded (``load_state_dict(strict=True)``).
    """
    dims = 2 if spec.architecture == "walloc2d" else 1
    state = {k: v for k, v in state.items()}
    out: dict[str, Tensor] = {}
    for name, want in _bior44_buffers(dims).items():
        got = state.pop(name, None)
        if got is None:
            continue  # older pytorch_wavelets kept the filters out of the state dict
        if got.numel() != want.numel() or not torch.allclose(got.detach().float().flatten(), want, atol=1e-6):
            raise WeightsError(f"walloc state dict: {name} is not the bior4.4 filter walloc uses")
    weight, bias = state.pop("encoder.0.weight", None), state.pop("encoder.0.bias", None)
    if weight is None or bias is None:
        raise WeightsError("walloc state dict has no encoder.0.weight / encoder.0.bias (lightweight_encode=true)")
    if weight.dim() != 2 + dims or tuple(weight.shape[2:]) != (1,) * dims:
        kind = "Codec2D (Conv2d 1x1)" if dims == 2 else "Codec1D (Conv1d k=1)"
        raise WeightsError(f"encoder.0.weight of shape {tuple(weight.shape)} is not a {kind} encoder")
    weight = weight.detach().float().reshape(weight.shape[0], -1)
    bias = bias.detach().float()
    out["encoder.weight"] = weight * AUDIO_SCALE if dims == 1 else weight
    out["encoder.bias"] = bias
    if dims == 1:
        out["decoder.edge"] = torch.round(compand(bias, spec.latent_bits))
    norms: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        value = value.detach().float()
        if key.startswith("post."):
            out["decoder." + key] = value
            continue
        if not key.startswith("decoder.1."):
            raise WeightsError(f"walloc state dict has an unexpected tensor {key!r}")
        name = "decoder." + key[len("decoder.1.") :]
        for old, new in _OLD_ATTENTION_NAMES.items():
            name = name.replace(old, new)
        for suffix, part in ((".weight_g", "g"), (".weight_v", "v"), (".parametrizations.weight.original0", "g"),
                             (".parametrizations.weight.original1", "v")):
            if name.endswith(suffix):
                norms.setdefault(name[: -len(suffix)], {})[part] = value
                break
        else:
            out[name] = value
    for module, parts in norms.items():
        if set(parts) != {"g", "v"}:
            raise WeightsError(f"walloc state dict: {module} has half a weight norm ({sorted(parts)})")
        out[module + ".weight"] = torch._weight_norm(parts["v"], parts["g"], 0)
    return out
