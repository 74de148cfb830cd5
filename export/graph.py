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

from export.formats import INPUT_NAME
from toolkit.audio import RESAMPLE_LOWPASS_WIDTH, RESAMPLE_METHOD, RESAMPLE_ROLLOFF
from toolkit.extractor import LayerFeatureExtractor
from toolkit.inference import EmotionRecognizer
from toolkit.ssl_models import build_architecture


class ExportGraph(nn.Module):
    """waveform (B, S) float32 at `input_rate` -> logits, probs (B, num_labels)."""

    def __init__(self, recognizer: EmotionRecognizer, input_rate: int | None = None):
        super().__init__()
        self.recognizer = fold_weight_norm(recognizer).eval()
        self.model_rate = recognizer.sample_rate
        self.input_rate = input_rate or self.model_rate
        self.resample = None
        if self.input_rate != self.model_rate:
            # The same band-limited sinc settings as toolkit.audio.resample.
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

    def forward(self, waveform: Tensor) -> tuple[Tensor, Tensor]:
        if self.resample is not None:
            waveform = self.resample(waveform)
        return self.recognizer(waveform)


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
    check_input(waveform, graph.min_samples)
    if graph.training:
        raise RuntimeError("the export graph must be in eval mode")
    return graph(waveform)
