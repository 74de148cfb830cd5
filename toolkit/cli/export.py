"""emo-export: a trained run as one graph, waveform -> probabilities, checked for parity."""

from __future__ import annotations

from pathlib import Path

import click

from emo_toolkit.cli.support import (
    DEVICE,
    FiniteFloat,
    GuardedCommand,
    common_options,
    info,
    usage_check,
)
from emo_toolkit.export.artifact import CALIBRATION_CLIPS
from emo_toolkit.export.formats import FORMATS, PRECISIONS, ArtifactFormat
from emo_toolkit.runtime.audio import MAX_RATE, MIN_RATE

OPTIONS = tuple(dict.fromkeys(f.option for f in FORMATS.values()))
FORMAT_SETS = {**{o: [f.name for f in FORMATS.values() if f.option == o] for o in OPTIONS},
               "all": list(FORMATS)}


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt",
              type=click.Choice([*OPTIONS, "all", "triton"]),
              default="onnx", show_default=True,
              help="onnx: one .onnx file (opset 17, dynamic batch and length); torchscript: a "
                   "traced module for torch.jit.load / torch::jit::load; pt2: a torch.export "
                   "ExportedProgram (.pt2) and an AOTInductor package (.aoti.pt2) compiled for "
                   "--device; executorch: an ExecuTorch program (.pte) lowered to XNNPACK, for "
                   "phones and boards (one clip per call, up to 20 s; needs the [edge] extra); "
                   "all: every one of them whose package is installed; triton: a Triton "
                   "Inference Server model repository around the ONNX export (default "
                   "RUN_DIR/export/triton).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32",
              show_default=True,
              help="fp32 must match eager within 1e-4. fp16 (every format) and bf16 (not onnx: "
                   "its Conv has no bf16) compute the SSL model in that precision, keeping the "
                   "group norm, the head and the softmax in fp32, and must agree with eager "
                   "fp32 on >= 99% of the run's test split; int8 (onnx: static QDQ "
                   "quantisation of every Conv, MatMul and Gemm, calibrated on training clips; "
                   "executorch: dynamic int8 linear layers) on >= 98%. A failed gate names the "
                   "clips that disagree.")
@click.option("--min-agreement", type=FiniteFloat(0.0, 1.0), default=None,
              help="accept a reduced-precision artifact whose top-1 agreement with eager fp32 "
                   "is at least this share (0-1) of the test split, instead of 0.99 (fp16, "
                   "bf16) or 0.98 (int8); the artifact's metadata records the figure")
@click.option("--calibration-clips", type=click.IntRange(1, 10_000),
              default=CALIBRATION_CLIPS, show_default=True,
              help="int8 ONNX: training clips (spread over the run's training split) whose "
                   "activation ranges set the quantisation; the metadata names them")
@click.option("--ragged", is_flag=True,
              help="give the graph a second input, lengths (int64 [batch]): clips of different "
                   "lengths share a zero-padded batch, each row giving what its clip gives "
                   "alone (file names get .ragged)")
@click.option("--input-sample-rate", type=click.IntRange(MIN_RATE, MAX_RATE), default=None,
              help="bake resampling from this rate to 16 kHz into the graph [default: 16000]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for the artifacts [default: RUN_DIR/export]")
@click.option("--split", default=None, help="which split's head (cross-validation runs)")
@click.option("--device", type=DEVICE, default="cpu", show_default=True,
              help="device the AOTInductor package is compiled for and TorchScript is traced "
                   "on (each runs there), and the parity check runs on")
@click.option("--force", is_flag=True, help="replace an existing artifact")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="the run's corpus folder, when it is no longer where the run "
              "recorded it (fp16 and int8 are gated on its test split) [default: the run's]")
@click.option("--triton-name", default="emotion", show_default=True,
              help="triton: the model's name (its folder in the repository)")
@click.option("--triton-max-batch", type=click.IntRange(1, 4096), default=8, show_default=True,
              help="triton: max_batch_size; the dynamic batcher prefers half of it and all of it")
@click.option("--triton-instances", type=click.IntRange(1, 64), default=1, show_default=True,
              help="triton: model instances (on CPU, or on the GPU --device names)")
def main(run_dir: Path, fmt: str, precision: str, min_agreement: float | None,
         calibration_clips: int, ragged: bool, input_sample_rate: int | None,
         out_dir: Path | None, split: str | None, device: str, force: bool,
         corpus: Path | None, triton_name: str, triton_max_batch: int,
         triton_instances: int) -> None:
    """Export RUN_DIR's recognizer (waveform -> HuBERT layers -> head -> logits, probs).

    Labels, sample rate, minimum length, extractor identity, head config,
    versions and the parity report go inside the artifact and into a JSON
    sidecar next to it. Every export is loaded back through its own runtime
    and compared with eager PyTorch on golden inputs; an export that fails
    leaves nothing at its path and exits with status 1.
    """
    from emo_toolkit.export.exporter import ExportResult, export_formats

    if min_agreement is not None and precision == "fp32":
        raise click.BadParameter("fp32 is gated on parity with eager (1e-4), not on agreement; "
                                 "--min-agreement applies to fp16, bf16 and int8",
                                 param_hint="'--min-agreement'")
    if fmt == "triton":
        from emo_toolkit.export.exporter import export_triton
        from emo_toolkit.export.triton import TritonOptions

        preferred = tuple(sorted({max(1, triton_max_batch // 2), triton_max_batch}))
        options = usage_check(lambda: TritonOptions(triton_name, triton_max_batch, preferred,
                                                    instances=triton_instances, device=device))
        result = export_triton(run_dir, options, precision=precision, out_dir=out_dir,
                               input_rate=input_sample_rate, split=split, force=force,
                               corpus=corpus, min_agreement=min_agreement,
                               calibration_clips=calibration_clips)
        info(result.report.summary())
        click.echo(f"wrote the Triton model repository {result.path.parent.parent.parent} "
                   f"(model {triton_name!r}: config.pbtxt, labels.txt, 1/model.onnx)")
        return
    def done(result: ExportResult) -> None:
        info(result.report.summary())
        click.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, exported in "
                   f"{result.export_seconds:.1f} s); metadata: {result.sidecar}")

    layout = "padded" if ragged else "clips"
    chosen = [f for f in FORMAT_SETS[fmt] if precision in FORMATS[f].precisions]
    if not chosen:
        offered = sorted({p for f in FORMAT_SETS[fmt] for p in FORMATS[f].precisions})
        raise click.BadParameter(f"{precision} is not available for {fmt}; available: "
                                 f"{', '.join(offered)}", param_hint="'--precision'")
    for name in FORMAT_SETS[fmt]:  # --format all skips, with a line, what it cannot export
        why = _skip_reason(FORMATS[name], name in chosen, fmt == "all", precision, layout)
        if why is not None:
            click.echo(f"skipping {name}: {why}", err=True)
            if name in chosen:
                chosen.remove(name)
    if not chosen:
        raise click.UsageError(f"nothing of --format {fmt} can be exported as asked (the "
                               "lines above say why)")
    export_formats(run_dir, chosen, precision=precision, out_dir=out_dir,
                   input_rate=input_sample_rate, split=split, force=force, device=device,
                   layout=layout, done=done, corpus=corpus, min_agreement=min_agreement,
                   calibration_clips=calibration_clips)


def _skip_reason(f: ArtifactFormat, offers_precision: bool, every_format: bool,
                 precision: str, layout: str) -> str | None:
    """Why a format of the chosen set is left out, or None when it is exported."""
    if not offers_precision:
        return f"{precision} is not available for it"
    if every_format and f.requires and not f.installed:
        return f"needs {f.requires[0]}, not installed (pip install 'emo-toolkit[{f.requires[1]}]')"
    if every_format and layout not in f.layouts:
        return "it takes whole clips only, not --ragged"
    return None
