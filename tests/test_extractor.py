"""Layer features: shapes from the model, single clips equal torchaudio, batches equal singles."""

from __future__ import annotations

import pytest
import torch

from emo_toolkit.features.extractor import (
    LayerFeatureExtractor,
    autocast_context,
    masked_group_norm,
)
from emo_toolkit.features.ssl_models import get_spec, load_model


def make_extractor(name: str) -> LayerFeatureExtractor:
    model, identity = load_model(name, untrained=True)
    return LayerFeatureExtractor(model, get_spec(name), identity)


def clips(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=g) for n in lengths]


def padded(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths


def batch_vs_single(ext: LayerFeatureExtractor, waves: list[torch.Tensor]) -> float:
    with torch.inference_mode():
        singles = [ext(w[None])[0][:, 0] for w in waves]
        out, frames = ext(*padded(waves))
    worst = 0.0
    for i, single in enumerate(singles):
        assert int(frames[i]) == single.shape[1] == ext.num_frames(len(waves[i]))
        worst = max(worst, float((out[:, i, : int(frames[i])] - single).abs().max()))
    return worst


def test_tiny_shapes_come_from_the_model():
    ext = make_extractor("hubert_tiny")
    assert (ext.num_layers, ext.dim, ext.min_samples, ext.sample_rate) == (3, 128, 400, 16_000)
    with torch.inference_mode():
        out, frames = ext(torch.zeros(2, 16_000))
    assert out.shape == (3, 2, 49, 128) and frames.tolist() == [49, 49]
    assert ext.num_frames(399) == 0 and ext.num_frames(400) == 1 and ext.num_frames(720) == 2


def test_single_clip_equals_torchaudio_extract_features():
    ext = make_extractor("hubert_tiny")
    for w in clips([400, 7_777, 16_000]):
        with torch.inference_mode():
            ours = ext(w[None])[0][:, 0]
            theirs = torch.stack(ext.model.extract_features(w[None])[0])[:, 0]
        assert float((ours - theirs).abs().max()) < 1e-5


def test_padded_batch_equals_single_clips_tiny():
    ext = make_extractor("hubert_tiny")
    assert batch_vs_single(ext, clips([16_000, 12_345, 8_000, 400])) < 1e-4


def test_plain_zero_padding_would_change_features():
    """Why masking matters: the unmasked model gives padded clips other features."""
    ext = make_extractor("hubert_tiny")
    w = clips([4_000])[0]
    with torch.inference_mode():
        alone = torch.stack(ext.model.extract_features(w[None])[0])[:, 0]
        pad = torch.zeros(1, 16_000)
        pad[0, :4_000] = w
        naive = torch.stack(ext.model.extract_features(pad)[0])[:, 0, : alone.shape[1]]
    assert float((naive - alone).abs().max()) > 1e-2


@pytest.mark.parametrize("name", ["hubert_base", "wavlm_base"])
def test_padded_batch_equals_single_clips_full_size(name: str):
    """The full architecture (untrained weights): 12 layers x 768, batch vs one at a time."""
    ext = make_extractor(name)
    assert (ext.num_layers, ext.dim) == (12, 768)
    assert batch_vs_single(ext, clips([12_000, 9_001, 4_000, 400], seed=1)) < 1e-4


def test_masked_group_norm_matches_group_norm_per_item():
    norm = torch.nn.GroupNorm(4, 8)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(3, 8, 20)
    lengths = torch.tensor([20, 11, 5])
    out = masked_group_norm(x, lengths, norm)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(out[b, :, :n], norm(x[b:b + 1, :, :n])[0], atol=1e-6)
        assert not out[b, :, n:].any()


def test_half_precision_is_refused_on_cpu():
    with pytest.raises(ValueError, match="fp16 autocast needs --device cuda"):
        autocast_context(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        autocast_context(torch.device("cpu"), "int4")
