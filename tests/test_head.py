"""The head: shapes, config validation, and padding that never changes a clip's logits."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from emo_toolkit.train.head import EmotionHead, HeadConfig

SMALL = {"embed_dim": 16, "conv_channels": 8, "lstm_hidden": 12}


def trained_like(config: HeadConfig, seed: int = 0) -> EmotionHead:
    """A head with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    head = EmotionHead(config)
    head.train()
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(4, config.num_layers, 30, config.feature_dim)
            head(x, torch.tensor([30, 22, 9, 15]))
    return head.eval()


def test_defaults_are_the_notebooks_and_shapes_come_from_the_data():
    config = HeadConfig(num_layers=12, feature_dim=768, num_labels=5)
    assert (config.embed_dim, config.conv_channels, config.kernel_sizes, config.lstm_hidden,
            config.lstm_layers, config.bidirectional) == (128, 128, (3, 5, 7), 512, 2, False)
    head = EmotionHead(config)
    assert head.lstm.num_layers == 2 and head.lstm.hidden_size == 512
    assert head.layer_weighting.in_channels == 12 and head.embed.in_features == 768
    assert head(torch.randn(2, 12, 7, 768)).shape == (2, 5)
    assert HeadConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_labels": 1}, "at least 2 labels"),
    ({"kernel_sizes": (3, 4)}, "odd and positive"),
    ({"lstm_dropout": 1.0}, "lstm_dropout"),
    ({"lstm_hidden": 0}, "lstm_hidden must be at least 1"),
])
def test_bad_configs_are_refused(kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        HeadConfig(**{"num_layers": 3, "feature_dim": 8, "num_labels": 5, **kwargs})


def test_equal_length_unpacked_path_equals_packed_training_path():
    """The inference path (no lengths, unpacked LSTM) against pack_padded_sequence."""
    config = HeadConfig(3, 10, 4, **SMALL)
    head = trained_like(config)
    x = torch.randn(3, 3, 25, 10)
    lengths = torch.tensor([25, 25, 25])
    with torch.no_grad():
        unpacked = head(x)
        gathered = head(x, lengths)
        # The packed path, spelled out with the head's own modules.
        h = head.embed(head.layer_weighting(x.reshape(3, 3, 250)).reshape(3, 25, 10))
        h = torch.cat([c(h.transpose(1, 2)) for c in head.convs], 1).transpose(1, 2)
        h = torch.relu(head.norm(h.reshape(75, -1)).reshape(3, 25, -1))
        _, (hn, _) = head.lstm(pack_padded_sequence(h, lengths, batch_first=True))
        packed = head.classifier(hn[-1])
    assert torch.allclose(unpacked, packed, atol=1e-6)
    assert torch.allclose(gathered, packed, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_gives_each_clip_its_own_logits(bidirectional: bool):
    config = HeadConfig(3, 10, 4, bidirectional=bidirectional, **SMALL)
    head = trained_like(config, seed=1)
    clips = [torch.randn(3, n, 10) for n in (40, 17, 3)]
    batch = torch.zeros(3, 3, 40, 10)
    for i, c in enumerate(clips):
        batch[i, :, : c.shape[1]] = c
    with torch.no_grad():
        together = head(batch, torch.tensor([40, 17, 3]))
        alone = torch.cat([head(c[None]) for c in clips])
    assert torch.allclose(together, alone, atol=1e-5)


def test_batch_norm_statistics_ignore_padding():
    config = HeadConfig(2, 6, 3, **SMALL)
    torch.manual_seed(0)
    a, b = EmotionHead(config), EmotionHead(config)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 2, 10, 6)
    padded = torch.zeros(2, 2, 50, 6)
    padded[:, :, :10] = x
    a.train()
    b.train()
    with torch.no_grad():
        a(x, torch.tensor([10, 10]))
        b(padded, torch.tensor([10, 10]))
    assert torch.allclose(a.norm.running_mean, b.norm.running_mean, atol=1e-6)
    assert torch.allclose(a.norm.running_var, b.norm.running_var, atol=1e-6)


def test_frame_batch_norm_is_batchnorm_on_the_counted_frames():
    """The multi-process BatchNorm (here in one process): output and running statistics of
    nn.BatchNorm1d fed only the counted frames."""
    from emo_toolkit.train.head import frame_batch_norm

    torch.manual_seed(0)
    frames = torch.randn(40, 6) * 3 + 1
    counted = torch.rand(40) > 0.3
    reference, ours = torch.nn.BatchNorm1d(6), torch.nn.BatchNorm1d(6)
    for _ in range(3):
        expected = reference(frames[counted])
        got = frame_batch_norm(ours, frames, counted, sync=False)
    torch.testing.assert_close(got[counted], expected, atol=1e-5, rtol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name))
    # Frames that do not count are normalised with the others' statistics.
    mean, var = frames[counted].mean(0), frames[counted].var(0, unbiased=False)
    torch.testing.assert_close(got[~counted], ((frames[~counted] - mean) / (var + 1e-5).sqrt())
                               * ours.weight + ours.bias, atol=1e-5, rtol=1e-5)


def test_clips_left_out_of_the_statistics_do_not_change_the_others():
    """Training mode with stats_mask: the counted clips' logits (and gradients) are those of a
    batch without the other clips."""
    config = HeadConfig(3, 10, 4, **SMALL)
    torch.manual_seed(1)
    head = EmotionHead(config).train()
    x, lengths = torch.randn(4, 3, 20, 10), torch.tensor([20, 13, 17, 8])
    keep = torch.tensor([True, False, True, True])
    masked = head(x, lengths, stats_mask=keep)[keep]
    alone = head(x[keep], lengths[keep])
    torch.testing.assert_close(masked, alone, atol=1e-5, rtol=1e-5)
