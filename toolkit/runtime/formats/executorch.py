"""Reading and running ExecuTorch programs (.pte): the runner drives the recurrence, one
`features` call per clip, then `lstm_steps` over its frames, K at a time, one row per call.
Needs the executorch package (the `edge` extra) and torch, whose tensors its Python runtime
takes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.runtime.errors import DeviceError, ExportError
from emo_toolkit.runtime.formats.base import LoadedArtifact, RunOptions, required
from emo_toolkit.runtime.io import native_stderr

FEATURES, LSTM_STEPS = "features", "lstm_steps"  # the methods (export/edge_graph.py)
METADATA_METHOD = "emo_toolkit_metadata"


@contextmanager
def quiet_import() -> Iterator[None]:
    """torchao, which executorch imports, logs a deprecation notice from torch's pytree."""
    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _runtime() -> Any:
    try:
        with quiet_import():
            from executorch.runtime import Runtime
    except ImportError as e:
        raise ExportError("running .pte programs needs ExecuTorch: pip install "
                          "'emo-toolkit[edge]'") from e
    return Runtime.get()


def read_executorch_metadata(path: Path) -> dict[str, Any]:
    return required(_metadata(_runtime().load_program(str(path))), path, METADATA_METHOD)


def _metadata(program: Any) -> dict[str, Any] | None:
    if METADATA_METHOD not in program.method_names:
        return None
    raw = program.load_method(METADATA_METHOD).execute([])[0]
    return json.loads(raw) if raw else None


def load_executorch(path: Path, device: str = "cpu", run: RunOptions | None = None
                    ) -> LoadedArtifact:
    """`run.threads`: XNNPACK's thread pool, which every program in the process shares."""
    if device != "cpu":
        raise DeviceError(f"{path}: ExecuTorch programs run on the CPU (XNNPACK), not {device}")
    runtime = _runtime()
    if run is not None and run.threads is not None:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(run.threads)
    program = runtime.load_program(str(path))
    return LoadedArtifact(EdgeRunner(program), _metadata(program))


class EdgeRunner:
    """A Runner over a loaded program: (B, S) float32 -> logits (B, C), one row per call."""

    def __init__(self, program: Any):
        missing = {FEATURES, LSTM_STEPS} - set(program.method_names)
        if missing:
            raise ExportError(f"not an emo-toolkit program: no method {', '.join(missing)}")
        with native_stderr():  # XNNPACK's CPU probe logs lines on machines it does not know
            self.features = program.load_method(FEATURES)
            self.steps = program.load_method(LSTM_STEPS)
        meta = self.steps.metadata
        self.k = meta.input_tensor_meta(0).sizes()[0]
        self.state_shape = tuple(meta.input_tensor_meta(2).sizes())

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        return np.concatenate([self._clip(row) for row in waveform])

    def _clip(self, samples: np.ndarray) -> np.ndarray:
        import torch

        inputs = self.features.execute([torch.from_numpy(np.ascontiguousarray(samples[None]))])[0]
        frames = inputs.shape[1]
        calls = -(-frames // self.k)
        padded = torch.zeros(calls * self.k, inputs.shape[2])
        padded[:frames] = inputs[0]
        running = torch.zeros(calls * self.k)
        running[:frames] = 1.0
        h = torch.zeros(self.state_shape)
        c = torch.zeros(self.state_shape)
        for i in range(calls):
            window = slice(i * self.k, (i + 1) * self.k)
            h, c, logits, _ = self.steps.execute([padded[window], running[window], h, c])
        return logits.numpy()
