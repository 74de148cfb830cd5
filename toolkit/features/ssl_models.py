"""Registry of self-supervised speech models and the loading of their weights.

Architectures come from torchaudio's pipeline bundles (their model factory,
parameters and checkpoint file name). Weights come from, in this order:
- `weights=PATH`: a local checkpoint in torchaudio's state-dict format
  (``torch.save(model.state_dict())`` or ``.safetensors``);
- `untrained=True`: random initialisation with a fixed seed, for tests and smoke
  runs; labelled UNTRAINED everywhere it shows;
- otherwise the bundle's pretrained checkpoint from the torch hub cache,
  downloaded there first if it is missing and the network allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emo_toolkit.features.weights import (
    WeightsError,
    fetch_to_hub_cache,
    load_state_dict,
    sha256_state_dict,
)
from emo_toolkit.runtime.io import sha256_file

if TYPE_CHECKING:
    import torch
    from torch import nn

# torch is imported where a model is built, so that command-line help and option
# checks do not wait for it.

DEFAULT_EXTRACTOR = "hubert_base"
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
"""Compute precisions of the extractor (fp16/bf16: CUDA autocast)."""
MODEL_STORE_URL = "https://download.pytorch.org/torchaudio/models/"

_BASE_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    model_type: str                 # torchaudio factory: "Wav2Vec2" (also HuBERT) or "WavLM"
    params: Mapping[str, Any] = field(hash=False)
    checkpoint: str | None          # file name in torchaudio's model store; None: no pretrained
    normalize_waveform: bool        # large models layer-normalise each input waveform
    sample_rate: int = 16_000

    @property
    def url(self) -> str | None:
        return MODEL_STORE_URL + self.checkpoint if self.checkpoint else None


@dataclass(frozen=True)
class ExtractorIdentity:
    """Which model and which weights: goes into every cache key, log line and report."""

    name: str
    weights: str            # "pretrained", "file" or "untrained"
    weights_sha256: str     # of the weight file; of the state dict when untrained
    source: str

    @property
    def trained(self) -> bool:
        return self.weights != "untrained"

    def describe(self) -> str:
        if not self.trained:
            return f"{self.name} (UNTRAINED weights: random init, for tests and smoke runs only)"
        return f"{self.name} ({self.weights} weights, sha256 {self.weights_sha256[:12]})"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ExtractorIdentity:
        """From to_json's output (extractor.json, artifact metadata): the one reading of it."""
        untrained = d.get("weights") == "untrained"
        return cls(d["name"], d["weights"],
                   d["state_dict_sha256"] if untrained else d["weights_sha256"],
                   d.get("source") or "")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": self.weights,
            "weights_sha256": "untrained" if not self.trained else self.weights_sha256,
            "state_dict_sha256": self.weights_sha256 if not self.trained else None,
            "source": self.source,
        }


def _bundle_spec(name: str, bundle_name: str) -> ExtractorSpec:
    import torchaudio.pipelines as pipelines

    bundle = getattr(pipelines, bundle_name)
    # The bundle keeps its architecture in private fields; get_model() would also
    # unpickle the checkpoint with weights_only=False, which we refuse to do.
    return ExtractorSpec(
        name=name,
        model_type=bundle._model_type,
        params=dict(bundle._params),
        checkpoint=bundle._path,
        normalize_waveform=bool(bundle._normalize_waveform),
        sample_rate=int(bundle.sample_rate),
    )


TINY_HUBERT_PARAMS: dict[str, Any] = {
    # HuBERT-base's layout (same conv kernels and strides, group norm, post-LN
    # transformer) at a size that runs ~20x faster: for tests and smoke runs. 128
    # conv channels, not fewer: narrower random convs lose the demo corpus's prosody
    # (held-out-speaker probe UA 0.47 at 32 channels, 0.77 at 128).
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": [(128, k, s) for _, k, s in _BASE_CONV],
    "extractor_conv_bias": False,
    "encoder_embed_dim": 128,
    "encoder_projection_dropout": 0.1,
    "encoder_pos_conv_kernel": 16,
    "encoder_pos_conv_groups": 4,
    "encoder_num_layers": 3,
    "encoder_num_heads": 4,
    "encoder_attention_dropout": 0.1,
    "encoder_ff_interm_features": 256,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.1,
    "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.05,
    "aux_num_out": None,
}

_BUNDLES = {
    "hubert_base": "HUBERT_BASE",
    "hubert_large": "HUBERT_LARGE",
    "wav2vec2_base": "WAV2VEC2_BASE",
    "wavlm_base": "WAVLM_BASE",
    "wavlm_base_plus": "WAVLM_BASE_PLUS",
}
EXTRACTOR_NAMES = (*_BUNDLES, "hubert_tiny")


def get_spec(name: str) -> ExtractorSpec:
    if name == "hubert_tiny":
        return ExtractorSpec("hubert_tiny", "Wav2Vec2", TINY_HUBERT_PARAMS, None, False)
    if name not in _BUNDLES:
        raise WeightsError(
            f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTOR_NAMES)}")
    return _bundle_spec(name, _BUNDLES[name])


def build_architecture(spec: ExtractorSpec) -> nn.Module:
    from torchaudio.models import wav2vec2_model, wavlm_model

    factories = {"Wav2Vec2": wav2vec2_model, "WavLM": wavlm_model}
    return factories[spec.model_type](**spec.params)


def load_model(name: str = DEFAULT_EXTRACTOR, *, weights: str | Path | None = None,
               untrained: bool = False, seed: int = 0) -> tuple[nn.Module, ExtractorIdentity]:
    """Build `name`'s architecture and load its weights; the model is frozen and in eval mode."""
    import torch

    spec = get_spec(name)
    if weights is not None and untrained:
        raise WeightsError("choose either a weights file or untrained weights, not both")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_architecture(spec)
    if untrained:
        identity = ExtractorIdentity(name, "untrained", sha256_state_dict(model.state_dict()),
                                     f"random init, seed {seed}")
    else:
        if weights is not None:
            path, kind = Path(weights), "file"
        elif spec.checkpoint is None:
            raise WeightsError(f"{name} has no pretrained weights; pass --extractor-weights PATH "
                               "or use --untrained")
        else:
            path = fetch_to_hub_cache(spec.checkpoint, spec.url or "", hint=(
                f"pass --extractor-weights PATH to a local {name} checkpoint in torchaudio's "
                "state-dict format (or --untrained for a smoke run)"))
            kind = "pretrained"
        _load_into(model, load_state_dict(path), path, name)
        identity = ExtractorIdentity(name, kind, sha256_file(path), str(path))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, identity


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = str(e).strip().splitlines()[-1].strip()
        raise WeightsError(f"{path}: not a {name} checkpoint: {first}") from e
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys, e.g. {result.missing_keys[:3]}")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected keys, "
                        f"e.g. {result.unexpected_keys[:3]}")
    if problems:
        raise WeightsError(f"{path}: not a {name} checkpoint in torchaudio's format: "
                           + "; ".join(problems))
