"""A Triton Inference Server model repository around the ONNX artifact.

    <root>/<name>/config.pbtxt     onnxruntime backend, I/O, dynamic batching, instances
    <root>/<name>/labels.txt       one label per line, referenced by both outputs
    <root>/<name>/1/model.onnx     the parity-checked ONNX export (version 1)
    <root>/<name>/1/model.onnx.json  its metadata sidecar

Lengths and batching: the graph treats every row of `waveform` as one whole
clip; zero padding would change the features (HuBERT's first group norm runs
over time: fairseq#3227, pytorch/audio#2242). The config therefore leaves `allow_ragged_batch` off,
and Triton's dynamic batcher only batches requests whose inputs have the same
shape: equal-length requests share a batch, others run in batches of their
own, and nothing is ever padded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export.artifact import INPUT_NAME, OUTPUT_NAMES
from toolkit.io import atomic_write_text

DEFAULT_NAME = "emotion"
LABELS_FILE = "labels.txt"


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
    return f"""# Written by emo-export --format triton. Every row of "{INPUT_NAME}" is one whole
# clip, mono float32 in [-1, 1] at the rate in 1/model.onnx.json; clips are never
# padded: ragged batching is off, so the dynamic batcher only batches requests of
# equal length.
name: "{options.name}"
backend: "onnxruntime"
max_batch_size: {options.max_batch_size}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ -1 ]
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
