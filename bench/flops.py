"""FLOPs of the whole pipeline (waveform -> SSL layers -> head), from the model's shapes.

Counted like torch.utils.flop_counter: 2 FLOPs per multiply-add of every
convolution, linear layer, attention product and LSTM gate matmul; biases,
norms and activations are left out (a few per cent at most). The counts are
exact functions of the input length, so no forward pass is needed, and a
30 s clip costs no more to count than a 1 s one. For HuBERT-base they come to
about 13.8 GFLOP per second of audio (tests/test_bench.py checks the counts
against torch.utils.flop_counter).
"""

from __future__ import annotations

from torch import nn

from emo_toolkit.train.inference import EmotionRecognizer


def conv_out(length: int, conv: nn.Conv1d) -> int:
    padding = conv.padding[0] if isinstance(conv.padding, tuple) else 0
    if conv.padding == "same":
        return length
    return (length + 2 * padding - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) \
        // conv.stride[0] + 1


def conv_flops(length_out: int, conv: nn.Conv1d) -> int:
    return 2 * length_out * conv.out_channels * (conv.in_channels // conv.groups) * \
        conv.kernel_size[0]


def linear_flops(rows: int, linear: nn.Linear) -> int:
    return 2 * rows * linear.in_features * linear.out_features


def pipeline_flops(recognizer: EmotionRecognizer, samples: int, batch: int = 1) -> dict[str, int]:
    """FLOPs per part for `batch` clips of `samples` samples at the model's rate."""
    model = recognizer.extractor.model
    parts = dict.fromkeys(("feature_encoder", "feature_projection", "positional_conv",
                           "transformer_linears", "attention", "head_linear_conv", "lstm",
                           "layer_weighting"), 0)
    t = samples
    for block in model.feature_extractor.conv_layers:
        t = conv_out(t, block.conv)
        parts["feature_encoder"] += conv_flops(t, block.conv)
    encoder = model.encoder
    parts["feature_projection"] = linear_flops(t, encoder.feature_projection.projection)
    pos_conv = encoder.transformer.pos_conv_embed.conv
    parts["positional_conv"] = conv_flops(conv_out(t, pos_conv), pos_conv)
    for layer in encoder.transformer.layers:
        attention, ff = layer.attention, layer.feed_forward
        parts["transformer_linears"] += sum(
            linear_flops(t, lin) for lin in (attention.q_proj, attention.k_proj,
                                             attention.v_proj, attention.out_proj,
                                             ff.intermediate_dense, ff.output_dense))
        parts["attention"] += 2 * 2 * t * t * attention.q_proj.out_features  # QK^T and AV
    head = recognizer.head
    c = head.config
    parts["layer_weighting"] = 2 * c.num_layers * t * c.feature_dim
    parts["head_linear_conv"] = linear_flops(t, head.embed) + sum(
        conv_flops(conv_out(t, conv), conv) for conv in head.convs) + linear_flops(
        1, head.classifier)
    directions = 2 if c.bidirectional else 1
    width = c.conv_channels * len(c.kernel_sizes)
    for _ in range(c.lstm_layers):
        parts["lstm"] += directions * 2 * t * 4 * c.lstm_hidden * (width + c.lstm_hidden)
        width = c.lstm_hidden * directions
    return {name: value * batch for name, value in parts.items()}


def total_flops(recognizer: EmotionRecognizer, samples: int, batch: int = 1) -> int:
    return sum(pipeline_flops(recognizer, samples, batch).values())
