"""The module that becomes the exported graph: [resample R -> 16 kHz] -> recognizer.

It wraps the toolkit's `EmotionRecognizer` (never a re-implementation), on a
copy whose positional convolution has its weight_norm parametrization folded
into a plain weight: TorchScript and exporters mishandle the parametrization
(pytorch#30754, executorch#3946), and folding changes no output.
"""

from __future__ import annotations

import copy
import math

import torch
import torchaudio
from torch import Tensor, nn
from torch.nn.utils import parametrize

from emo_toolkit.features.extractor import LayerFeatureExtractor
from emo_toolkit.features.ssl_models import build_architecture
from emo_toolkit.runtime.audio import RESAMPLE_LOWPASS_WIDTH, RESAMPLE_METHOD, RESAMPLE_ROLLOFF
from emo_toolkit.runtime.formats.base import INPUT_NAME, LENGTHS_NAME
from emo_toolkit.runtime.predictions import INPUT_LAYOUTS
from emo_toolkit.train.inference import EmotionRecognizer


class ExportGraph(nn.Module):
    """waveform float32 at `input_rate` [+ lengths] -> logits, probs (B, C), float32.

    `layout` (emo_toolkit.runtime.predictions.INPUT_LAYOUTS) says how a batch comes in. "clips":
    (B, S), every row one whole clip. "padded": (B, S) zero-padded rows and lengths (B,)
    int64; each row's outputs equal its clip's alone (the extractor's padded path, made
    branch-free for tracing). "concatenated": the clips end to end (N,) and lengths (B,)
    int32, as Triton's ragged batching delivers them."""

    def __init__(self, recognizer: EmotionRecognizer, input_rate: int | None = None,
                 layout: str = "clips"):
        super().__init__()
        if layout not in INPUT_LAYOUTS:
            raise ValueError(f"unknown input layout {layout!r}; one of {', '.join(INPUT_LAYOUTS)}")
        self.recognizer = fold_weight_norm(recognizer).eval()
        self.layout = layout
        self.compute_dtype: torch.dtype | None = None  # fp16/bf16 graphs: reduced_precision()
        self.recognizer.extractor.branch_free = self.takes_lengths
        self.model_rate = recognizer.sample_rate
        self.input_rate = input_rate or self.model_rate
        self.resample = None
        if self.input_rate != self.model_rate:
            # The same band-limited sinc settings as emo_toolkit.runtime.audio.resample.
            self.resample = torchaudio.transforms.Resample(
                self.input_rate, self.model_rate, resampling_method=RESAMPLE_METHOD,
                lowpass_filter_width=RESAMPLE_LOWPASS_WIDTH, rolloff=RESAMPLE_ROLLOFF)
        # Eval mode for the whole graph, the outer module included: the ONNX exporter
        # restores each module's mode after exporting, and an outer module left in
        # training mode would put BatchNorm and dropout back into training.
        self.eval()

    @property
    def labels(self) -> list[str]:
        return self.recognizer.labels

    @property
    def min_samples(self) -> int:
        """The shortest input at `input_rate` that leaves the model its minimum after resampling."""
        need = self.recognizer.min_samples
        return math.ceil(need * self.input_rate / self.model_rate)

    @property
    def takes_lengths(self) -> bool:
        return self.layout != "clips"

    @property
    def input_names(self) -> tuple[str, ...]:
        return (INPUT_NAME, LENGTHS_NAME) if self.takes_lengths else (INPUT_NAME,)

    def example_inputs(self) -> tuple[Tensor, ...]:
        """What exporters trace with: two 1 s rows (the second 0.75 s long, when the graph
        takes lengths, so the padded path is the one traced)."""
        g = torch.Generator().manual_seed(0)
        waveform = 0.1 * torch.randn(2, self.input_rate, generator=g)
        lengths = torch.tensor([self.input_rate, self.input_rate * 3 // 4])
        if self.layout == "clips":
            return (waveform,)
        if self.layout == "concatenated":
            return (torch.cat([waveform[0], waveform[1, :lengths[1]]]),
                    lengths.to(torch.int32))
        return waveform, lengths

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if lengths is not None and waveform.ndim == 1:  # the concatenated layout
            waveform, lengths = _unconcatenate(waveform, lengths.long())
        if lengths is not None:
            # The padding may hold anything: zeroed, the resampler and the convolutions see
            # at a clip's end what they see when it is alone.
            valid = torch.arange(waveform.shape[1], device=waveform.device)[None, :] < \
                lengths[:, None]
            waveform = waveform * valid.to(waveform.dtype)
        if self.resample is not None:
            waveform = self.resample(waveform)
            if lengths is not None:  # torchaudio's output length: ceil(n * new / orig)
                lengths = (lengths * self.model_rate + self.input_rate - 1) // self.input_rate
        if self.compute_dtype is not None:
            waveform = waveform.to(self.compute_dtype)
        logits = self.recognizer(waveform, lengths)[0].float()
        return logits, torch.softmax(logits, dim=-1)


def _unconcatenate(flat: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Clips given end to end (what Triton's ragged batching hands a model) as a zero-padded
    (B, longest) batch, with gathers whose sizes come from `lengths` at run time."""
    starts = torch.cumsum(lengths, 0) - lengths
    positions = torch.arange(lengths.max(), device=flat.device)
    valid = positions[None, :] < lengths[:, None]
    index = torch.where(valid, starts[:, None] + positions[None, :], 0)
    return flat[index] * valid.to(flat.dtype), lengths


REDUCED_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
KEPT_IN_FP32 = ("waveform input and resampler", "the feature encoder's group norm",
                "the classifier head", "logits and softmax")
"""What a reduced-precision graph computes in float32 (its metadata says so too). The group
norm's statistics run over a whole clip's frames, where fp16 sums lose digits. The head
(about 3 % of the FLOPs) carries its LSTM state across every frame: in fp32 it halved
the fp16 logit error on the demo model (0.010 -> 0.004)."""


def reduced_precision(graph: ExportGraph, precision: str) -> ExportGraph:
    """A copy of `graph` whose SSL extractor computes in fp16 or bf16, except KEPT_IN_FP32:
    the input stays float32 [B, S] and the outputs come back float32."""
    if precision not in REDUCED_DTYPES:
        raise ValueError(f"no reduced-precision graph for {precision!r}")
    reduced = copy.deepcopy(graph)
    reduced.compute_dtype = REDUCED_DTYPES[precision]
    extractor = reduced.recognizer.extractor.to(reduced.compute_dtype)
    original = graph.recognizer.extractor.model.feature_extractor.conv_layers
    for block, source in zip(extractor.model.feature_extractor.conv_layers, original,
                             strict=True):
        if isinstance(block.layer_norm, nn.GroupNorm):  # run in its weights' dtype: fp32
            block.layer_norm = copy.deepcopy(source.layer_norm)
    # the head (and the resampler) stay as they are: fp32
    return reduced.eval()


def fold_weight_norm(recognizer: EmotionRecognizer) -> EmotionRecognizer:
    """A copy with every weight_norm parametrization replaced by its current weight.

    The SSL model is rebuilt and loaded rather than deep-copied: a parametrized
    module's class is created per instance and shared by its deep copies, so
    removing the parametrization from a copy would break the original.
    """
    source = recognizer.extractor
    model = build_architecture(source.spec)
    already_folded = not any(parametrize.is_parametrized(m) for m in source.model.modules())
    if not already_folded:
        model.load_state_dict(source.model.state_dict())
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if already_folded:
        model.load_state_dict(source.model.state_dict())
    extractor = LayerFeatureExtractor(model.eval(), source.spec, source.identity)
    return EmotionRecognizer(extractor, copy.deepcopy(recognizer.head), recognizer.labels)


def check_input(waveform: Tensor, min_samples: int) -> None:
    """The length rule shared by eager PyTorch and every exported artifact's runner: clips
    shorter than the extractor's minimum are rejected before any runtime sees them."""
    if waveform.ndim != 2:
        raise ValueError(f"{INPUT_NAME} must be (batch, samples), got {list(waveform.shape)}")
    if waveform.shape[1] < min_samples:
        raise ValueError(f"{INPUT_NAME} has {waveform.shape[1]} samples; the model needs at "
                         f"least {min_samples} at its input rate (shorter clips are rejected)")


@torch.inference_mode()
def eager_outputs(graph: ExportGraph, waveform: Tensor) -> tuple[Tensor, Tensor]:
    """The reference: every row a whole clip, through the graph's whole-clip path."""
    check_input(waveform, graph.min_samples)
    if graph.training:
        raise RuntimeError("the export graph must be in eval mode")
    return graph(waveform)
