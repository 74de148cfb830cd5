"""Size, export time and parity of each artifact format for the full HuBERT-base pipeline.

    python -m docs.figures.export_figures --out docs/figures/results

HuBERT-base with UNTRAINED weights and the default head (5 labels): sizes, times
and parity depend on the architecture, not on the weights' values. The int8
gate is measured on 50 demo-corpus clips (the demo's test split stands in for
a run's test split); static int8 calibrates on the corpus's other clips.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path
from typing import Any

import click
import torch

from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.data.demo_corpus import DemoCorpusConfig, make_demo_corpus
from emo_toolkit.export import exporter
from emo_toolkit.export.artifact import Calibration, Exports
from emo_toolkit.export.graph import ExportGraph
from emo_toolkit.features.extractor import open_extractor
from emo_toolkit.train.head import EmotionHead, HeadConfig
from emo_toolkit.train.inference import EmotionRecognizer

VARIANTS = (("onnx", "fp32"), ("torchscript", "fp32"), ("pt2", "fp32"), ("aoti", "fp32"),
            ("onnx", "int8"), ("onnx", "int8-dynamic"))


def measure(work: Path, eval_clips: int) -> dict[str, Any]:
    corpus = make_demo_corpus(work / "corpus", DemoCorpusConfig(speakers=10,
                                                                clips_per_speaker_emotion=2),
                              progress=False)
    every = [c.path for c in load_dataset(corpus).clips]
    files, others = every[:eval_clips], every[eval_clips:]
    extractor = open_extractor("hubert_base", untrained=True)
    torch.manual_seed(0)
    head = EmotionHead(HeadConfig(extractor.num_layers, extractor.dim, 5)).eval()
    graph = ExportGraph(EmotionRecognizer(extractor, head, sorted(
        {c.label for c in load_dataset(corpus).clips})))
    metadata = exporter.base_metadata(graph, None, None, extractor.identity.to_json(),
                                      head.config.to_json())
    exports = Exports(graph, calibration=Calibration.from_files(
        others or files, exporter.CALIBRATION_CLIPS, graph.input_rate, graph.min_samples))
    rows = []
    for fmt, precision in VARIANTS:
        target = work / "out" / exporter.artifact_name(fmt, precision, graph.input_rate)
        # Record the int8 figure even when it misses the gate (min_agreement=0 writes it).
        result = exporter.export_graph(graph, fmt, precision, target, metadata,
                                       corpus_clip=files[0], eval_files=files, min_agreement=0.0,
                                       exports=exports)
        rows.append({"format": fmt, "precision": precision, "size_mb": result.size_bytes / 1e6,
                     "export_s": result.export_seconds,
                     "max_abs_diff": result.report.max_abs_diff,
                     "max_rel_diff": result.report.max_rel_diff,
                     "max_abs_logit": _max_logit(graph, files[0]),
                     "golden_top1": result.report.top1_agreement, "gate": result.gate})
        click.echo(f"{fmt} {precision}: {rows[-1]}", err=True)
    return {"model": "hubert_base (UNTRAINED weights) + default 3CNN+LSTM head, 5 labels",
            "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "machine": machine_info("cpu"),
            "threads": torch.get_num_threads(), "rows": rows}


def _max_logit(graph: ExportGraph, clip: Path) -> float:
    from emo_toolkit.export.graph import eager_outputs
    from emo_toolkit.runtime.audio import load_audio

    x = torch.from_numpy(load_audio(clip, graph.input_rate).samples)[None]
    return float(eager_outputs(graph, x)[0].abs().max())


def to_markdown(results: dict[str, Any]) -> str:
    lines = [*([f"machine: {describe(results['machine'])}", ""] if "machine" in results else []),
             f"{results['model']}; torch {results['torch']}, {results['threads']} CPU threads.",
             "", "| format | precision | size | export time | max abs Δlogit | max rel Δlogit | "
             "top-1 agreement (golden inputs) | gate |", "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        gate = r["gate"]
        if r["precision"] == "fp32":
            gate_text = "max abs Δ <= 1e-4: passed"
        else:
            share = gate["test_split_top1_agreement"]
            need = exporter.MIN_AGREEMENT[r["precision"]]
            verdict = "passed" if share >= need else "FAILED"
            gate_text = (f"{share:.0%} of {gate['test_split_clips']} clips agree "
                         f"(need {need:.0%}): {verdict}")
        lines.append(f"| {r['format']} | {r['precision']} | {r['size_mb']:.0f} MB | "
                     f"{r['export_s']:.1f} s | {r['max_abs_diff']:.1e} | {r['max_rel_diff']:.1e} | "
                     f"{r['golden_top1']:.0%} | {gate_text} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results"), show_default=True)
@click.option("--eval-clips", default=50, show_default=True)
def main(out_dir: Path, eval_clips: int) -> None:
    """Export HuBERT-base in every CPU format and record size, time and parity."""
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(Path(tmp), eval_clips)
    click.echo(write_figures(out_dir, "export-hubert-base-cpu", results, to_markdown(results)))


if __name__ == "__main__":
    main()
