"""emo-export: not built yet. It says so instead of pretending to work."""

from __future__ import annotations

import click

from toolkit.cli import not_available


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": ["-h", "--help"]})
def main() -> None:
    """Export a trained run as one graph, waveform -> probabilities (not available yet).

    Planned: --format onnx|torchscript|pt2|all, fp32/fp16/int8 variants, labels
    and sample rate inside the artifact, and a parity check against eager
    PyTorch on every export.
    """
    not_available("emo-export", "exporting ONNX / TorchScript / pt2 artifacts")
