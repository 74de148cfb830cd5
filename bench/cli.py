"""emo-bench: not built yet. It says so instead of pretending to work."""

from __future__ import annotations

import click

from toolkit.cli import not_available


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": ["-h", "--help"]})
def main() -> None:
    """Benchmark every backend against eager PyTorch (not available yet).

    Planned: --device cpu|cuda; latency, throughput, memory and accuracy parity
    of eager, torch.compile, TorchScript, ONNX Runtime and AOTInductor, as
    tables, JSON and plots.
    """
    not_available("emo-bench", "benchmarking the exported backends")
