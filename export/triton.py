"""A Triton Inference Server model repository around the ONNX artifact.

    <root>/<name>/config.pbtxt     onnxruntime backend, I/O, dynamic batching, instances
    <root>/<name>/labels.txt       one label per line, referenced by both outputs
    <root>/<name>/1/model.onnx     the parity-checked ONNX export (version 1)
    <root>/<name>/1/model.onnx.json  its metadata sidecar

Lengths and batching: requests of different lengths share batches through
Triton's ragged batching. The `waveform` input allows ragged batches, so the
dynamic batcher combines requests of any lengths and the backend hands the
model their samples end to end, 1-D; the batch input `lengths`
(BATCH_ELEMENT_COUNT, int32) gives each request's sample count. The graph is
exported with the "concatenated" layout: it rebuilds the zero-padded batch and
runs the lengths path, so every request gets what its clip gives alone. Each
request carries one clip, shape [1, samples].
(Triton's ragged batching: docs/user_guide/ragged_batching.md of
triton-inference-server/server.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emo_toolkit.runtime.formats.base import INPUT_NAME, LENGTHS_NAME, OUTPUT_NAMES
from emo_toolkit.runtime.io import atomic_write_text

DEFAULT_NAME = "emotion"
LABELS_FILE = "labels.txt"
LAYOUT = "concatenated"  # the graph's input layout: what ragged batching hands the model


@dataclass(frozen=True)
class TritonOptions:
    name: str = DEFAULT_NAME
    max_batch_size: int = 8
    preferred_batch_sizes: tuple[int, ...] = (4, 8)
    max_queue_delay_us: int = 2000
    instances: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"bad Triton model name {self.name!r}")
        if self.max_batch_size < 1 or self.instances < 1:
            raise ValueError("max_batch_size and instances must be at least 1")
        if any(b < 1 or b > self.max_batch_size for b in self.preferred_batch_sizes):
            raise ValueError("preferred batch sizes must lie in 1..max_batch_size")


def config_pbtxt(options: TritonOptions, num_labels: int) -> str:
    """The model configuration, in protobuf text format (Triton's model_config.proto)."""
    gpu = options.device.startswith("cuda")
    gpu_ids = ""
    if gpu and ":" in options.device:
        gpu_ids = f"\n    gpus: [ {int(options.device.split(':')[1])} ]"
    outputs = ",\n".join(
        f'  {{\n    name: "{name}"\n    data_type: TYPE_FP32\n    dims: [ {num_labels} ]\n'
        f'    label_filename: "{LABELS_FILE}"\n  }}' for name in OUTPUT_NAMES)
    preferred = ", ".join(str(b) for b in options.preferred_batch_sizes)
    return f"""# Written by emo-export --format triton. Each request is one clip, [1, samples],
# mono float32 in [-1, 1] at the rate in 1/model.onnx.json. Requests of different
# lengths share batches: "{INPUT_NAME}" is a ragged input (the backend hands the model
# the clips end to end) and "{LENGTHS_NAME}" gives each request's sample count.
name: "{options.name}"
backend: "onnxruntime"
max_batch_size: {options.max_batch_size}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ -1 ]
    allow_ragged_batch: true
  }}
]
batch_input [
  {{
    kind: BATCH_ELEMENT_COUNT
    target_name: "{LENGTHS_NAME}"
    data_type: TYPE_INT32
    source_input: "{INPUT_NAME}"
  }}
]
output [
{outputs}
]
dynamic_batching {{
  preferred_batch_size: [ {preferred} ]
  max_queue_delay_microseconds: {options.max_queue_delay_us}
}}
instance_group [
  {{
    count: {options.instances}
    kind: {"KIND_GPU" if gpu else "KIND_CPU"}{gpu_ids}
  }}
]
"""


def model_dir(root: Path, options: TritonOptions) -> Path:
    return root / options.name


def write_repository_files(root: Path, options: TritonOptions, labels: list[str]) -> Path:
    """config.pbtxt and labels.txt; the ONNX file goes to <root>/<name>/1/model.onnx."""
    folder = model_dir(root, options)
    (folder / "1").mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / LABELS_FILE, "".join(f"{label}\n" for label in labels))
    atomic_write_text(folder / "config.pbtxt", config_pbtxt(options, len(labels)))
    return folder
