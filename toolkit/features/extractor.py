"""Every transformer layer's output of a frozen SSL model; padded batches equal single clips.

HuBERT-base's first convolution is followed by a GroupNorm over time, so a
zero-padded clip would be normalised with statistics of its padding and its
features would change (fairseq#3227, pytorch/audio#2242). `LayerFeatureExtractor`
runs torchaudio's own modules but normalises each clip over its valid frames
only; the rest of the network already respects `lengths` (valid convolutions,
padded frames zeroed before the positional convolution, masked attention). So
a clip's features from a padded batch equal its features alone, within float
rounding (tests/test_extractor.py checks 1e-4 on the full HuBERT-base shape).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import Tensor, nn

from emo_toolkit.features.ssl_models import (
    PRECISIONS,
    ExtractorIdentity,
    ExtractorSpec,
    get_spec,
    load_model,
)
from emo_toolkit.runtime.checks import check_device
from emo_toolkit.runtime.errors import DeviceError

_log = logging.getLogger(__name__)

_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def masked_group_norm(x: Tensor, lengths: Tensor, norm: nn.GroupNorm) -> Tensor:
    """GroupNorm of each item over its first `lengths[b]` frames only; padded frames become 0.

    x: (batch, channels, frames). One native group_norm call per item: masked
    arithmetic over the whole batch was 7x slower on CPU (measured, HuBERT-base).
    """
    t = x.shape[-1]
    if bool((lengths == t).all()):
        return norm(x)
    out = torch.zeros_like(x)
    for b, n in enumerate(lengths.tolist()):
        out[b:b + 1, :, :n] = norm(x[b:b + 1, :, :n])
    return out


def group_norm_over_valid(x: Tensor, lengths: Tensor, norm: nn.GroupNorm) -> Tensor:
    """`masked_group_norm` as masked arithmetic over the whole batch: no per-item loop and no
    data-dependent branch, so a traced or exported graph keeps `lengths` as an input."""
    b, c, t = x.shape
    groups = norm.num_groups
    mask = (torch.arange(t, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
    xg = x.reshape(b, groups, c // groups, t)
    m = mask[:, None, None, :]
    count = lengths.to(x.dtype).clamp(min=1)[:, None, None, None] * (c // groups)
    mean = (xg * m).sum(dim=(2, 3), keepdim=True) / count
    centred = xg - mean
    var = (centred * centred * m).sum(dim=(2, 3), keepdim=True) / count
    y = (centred * torch.rsqrt(var + norm.eps)).reshape(b, c, t)
    if norm.affine:
        y = y * norm.weight[None, :, None] + norm.bias[None, :, None]
    return y * mask[:, None, :]


class LayerFeatureExtractor(nn.Module):
    """waveforms (B, S) + lengths (B,) -> features (L, B, T, D) + frame lengths (B,).

    `branch_free` (set by the exporters) makes the padded path graph-friendly: the group
    norm as masked arithmetic and the attention mask always applied, so a traced graph
    serves any lengths. Eager code keeps the faster per-clip group norm."""

    branch_free = False

    def __init__(self, model: nn.Module, spec: ExtractorSpec, identity: ExtractorIdentity):
        super().__init__()
        self.model = model.eval()
        self.spec = spec
        self.identity = identity
        convs = model.feature_extractor.conv_layers
        self._conv_shapes = [(int(b.kernel_size), int(b.stride)) for b in convs]
        self.num_layers = len(model.encoder.transformer.layers)
        self.dim = int(model.encoder.feature_projection.projection.out_features)

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def min_samples(self) -> int:
        """The shortest input that yields one frame: the conv stack's receptive field."""
        need = 1
        for kernel, stride in reversed(self._conv_shapes):
            need = (need - 1) * stride + kernel
        return need

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for kernel, stride in self._conv_shapes:
            n = max(0, (n - kernel) // stride + 1)
        return n

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Without `lengths` every row is one whole clip: no masks, no data-dependent branches
        (the path an exported graph takes). With `lengths`, rows are zero-padded clips."""
        if waveforms.ndim != 2:
            raise ValueError(
                f"expected waveforms of shape (batch, samples), got {list(waveforms.shape)}")
        padded = lengths is not None
        if self.spec.normalize_waveform:
            waveforms = (_per_clip_layer_norm(waveforms, lengths) if lengths is not None
                         else nn.functional.layer_norm(waveforms, waveforms.shape[-1:]))
        x = waveforms.unsqueeze(1)
        frames = lengths
        for block in self.model.feature_extractor.conv_layers:
            x = block.conv(x)
            if frames is not None:
                frames = torch.div(frames - block.kernel_size, block.stride, rounding_mode="floor")
                frames = torch.clamp(frames + 1, min=0)
            if isinstance(block.layer_norm, nn.GroupNorm):
                x = self._group_norm(x, frames, block.layer_norm)
            elif block.layer_norm is not None:
                x = block.layer_norm(x)  # per-frame LayerNorm: padding cannot reach it
            x = nn.functional.gelu(x)
        features = x.transpose(1, 2)
        layers = torch.stack(self._transformer_layers(features, frames if padded else None))
        if frames is None:
            frames = torch.full((waveforms.shape[0],), features.shape[1], dtype=torch.long,
                                device=waveforms.device)
        return layers, frames

    def _group_norm(self, x: Tensor, frames: Tensor | None, norm: nn.GroupNorm) -> Tensor:
        """Over each clip's valid frames, in the norm's own dtype (a reduced-precision
        graph keeps this norm in fp32: its statistics run over a whole clip)."""
        dtype = x.dtype
        x = x.to(norm.weight.dtype if norm.weight is not None else dtype)
        if frames is None:
            x = norm(x)
        elif self.branch_free:
            x = group_norm_over_valid(x, frames, norm)
        else:
            x = masked_group_norm(x, frames, norm)
        return x.to(dtype)

    def _transformer_layers(self, features: Tensor, frames: Tensor | None) -> list[Tensor]:
        """torchaudio's Encoder.extract_features, with padding masks that work for WavLM too
        (its attention takes a key padding mask and asserts that attention_mask is None)."""
        encoder = self.model.encoder
        x = encoder.feature_projection(features)
        batch, t, _ = x.shape
        attention_mask = key_padding_mask = None
        pad = None
        if frames is not None:
            pad = torch.arange(t, device=x.device)[None, :] >= frames[:, None]
        if pad is not None and (self.branch_free or bool(pad.any())):
            x = x.masked_fill(pad[:, :, None], 0.0)
            additive = -10000.0 * pad.to(x.dtype)  # the value torchaudio uses for padding
            if self.spec.model_type == "WavLM":
                key_padding_mask = additive
            else:
                attention_mask = additive[:, None, None, :].expand(batch, 1, t, t)
        x = encoder.transformer._preprocess(x)
        outputs, position_bias = [], None
        for layer in encoder.transformer.layers:
            x, position_bias = layer(x, attention_mask, position_bias=position_bias,
                                     key_padding_mask=key_padding_mask)
            outputs.append(x)
        return outputs


def _per_clip_layer_norm(waveforms: Tensor, lengths: Tensor) -> Tensor:
    """What torchaudio's large-model wrapper does for one clip, over each clip's valid samples."""
    mask = (torch.arange(waveforms.shape[1], device=waveforms.device)[None, :]
            < lengths[:, None]).to(waveforms.dtype)
    n = lengths.to(waveforms.dtype)[:, None]
    mean = (waveforms * mask).sum(1, keepdim=True) / n
    var = (((waveforms - mean) * mask) ** 2).sum(1, keepdim=True) / n
    return (waveforms - mean) / torch.sqrt(var + 1e-5) * mask


def autocast_context(device: torch.device, precision: str):
    """fp32: nothing. fp16/bf16: CUDA autocast (refused on CPU, where it is not a speed-up)."""
    if precision == "fp32":
        return nullcontext()
    if precision not in _AUTOCAST_DTYPES:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        raise ValueError(f"{precision} autocast needs --device cuda; use fp32 on {device.type}")
    return torch.autocast("cuda", dtype=_AUTOCAST_DTYPES[precision])


def require_device(device: str) -> None:
    """Refuse a device name we do not know, or CUDA this machine does not have, before any
    work starts."""
    try:
        check_device(device)
    except ValueError as e:
        raise DeviceError(str(e)) from e
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {device}: CUDA is not available on this machine")


def open_extractor(name: str, *, weights: str | Path | None = None, untrained: bool = False,
                   device: str = "cpu") -> LayerFeatureExtractor:
    require_device(device)
    model, identity = load_model(name, weights=weights, untrained=untrained)
    extractor = LayerFeatureExtractor(model, get_spec(name), identity).to(torch.device(device))
    _log.info("%s extractor: %s, %d layers x %d dims, on %s", log_tag(extractor),
              identity.describe(), extractor.num_layers, extractor.dim, device)
    return extractor


def log_tag(extractor: LayerFeatureExtractor) -> str:
    """What log lines about an extractor start with: its name, and UNTRAINED if so."""
    return f"[{extractor.identity.name}{'' if extractor.identity.trained else ' UNTRAINED'}]"
