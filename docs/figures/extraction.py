"""Feature extraction and cache benchmark.

For the tiny and the full-size HuBERT-base architecture (untrained weights: the
speed and memory of the architecture do not depend on the weights' values):
- throughput, one clip at a time vs length-bucketed padded batches;
- cache size per second of audio (fp16 storage);
- peak RSS of a process that caches N demo clips, and of one that then
  iterates all N cached entries as training batches, for N = 100 and 1000.

    python -m docs.figures.extraction --out docs/figures/results
    # writes extraction-<device>.json and .md

Each memory figure comes from a fresh child process (its own peak RSS).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures

MODELS = ("hubert_tiny", "hubert_base")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _paths(corpus: Path, n: int) -> list[Path]:
    from emo_toolkit.data.datasets import load_dataset

    clips = load_dataset(corpus).clips
    if len(clips) < n:
        raise click.ClickException(f"{corpus} has {len(clips)} clips, {n} needed")
    return [c.path for c in clips[:n]]


def child_extract(model: str, corpus: Path, n: int, cache_root: Path, max_batch: int,
                  device: str) -> dict[str, Any]:
    from emo_toolkit.features.extractor import open_extractor
    from emo_toolkit.features.featurize import cache_for, extract_to_cache

    extractor = open_extractor(model, untrained=True, device=device)
    cache = cache_for(extractor, cache_root)
    report = extract_to_cache(_paths(corpus, n), extractor, cache, max_batch=max_batch,
                              progress=False, num_workers=1)
    return {
        "clips": report.computed, "wall_s": report.wall_seconds,
        "audio_s": report.audio_seconds, "clips_per_s": report.clips_per_second,
        "audio_s_per_s": report.realtime_factor, "cache_bytes": cache.size_bytes(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_iterate(model: str, corpus: Path, n: int, cache_root: Path) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader

    from emo_toolkit.features.cache import CacheKey, FeatureCache
    from emo_toolkit.features.feature_dataset import CachedFeatures, pad_batch
    from emo_toolkit.runtime.io import sha256_file

    [folder] = [p for p in cache_root.iterdir() if p.name.startswith(model)]
    key = CacheKey(**{k: v for k, v in json.loads((folder / "key.json").read_text()).items()
                      if k != "note"})
    cache = FeatureCache(cache_root, key)
    shas = [sha256_file(p) for p in _paths(corpus, n)]
    data = CachedFeatures(cache, shas, [0] * n)
    start, frames = time.perf_counter(), 0
    for feats, lengths, _ in DataLoader(data, batch_size=16, shuffle=True, collate_fn=pad_batch,
                                        generator=torch.Generator().manual_seed(0)):
        frames += int(lengths.sum())
        feats.mean()  # touch the data as training would
    return {"clips": n, "frames": frames, "wall_s": time.perf_counter() - start,
            "peak_rss_mb": _peak_rss_mb()}


def _run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "docs.figures.extraction", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_benchmark(out_dir: Path, device: str, throughput_clips: dict[str, int],
                  memory_clips: tuple[int, ...], work: Path) -> dict[str, Any]:
    from emo_toolkit.data.demo_corpus import DemoCorpusConfig, make_demo_corpus

    need = max(*memory_clips, *throughput_clips.values())
    per = -(-need // (8 * 5))
    corpus = make_demo_corpus(work / "corpus", DemoCorpusConfig(speakers=8,
                                                                clips_per_speaker_emotion=per))
    results: dict[str, Any] = {"device": device, "machine": machine_info(device),
                               "weights": "UNTRAINED (random init): speed and memory do not "
                               "depend on weight values",
                               "throughput": [], "memory": []}
    for model in MODELS:
        n = throughput_clips[model]
        for label, max_batch in (("one at a time", 1), ("bucketed batches (<=16)", 16)):
            with tempfile.TemporaryDirectory(dir=work) as cache:
                r = _run_child("extract", model, str(corpus), str(n), cache, str(max_batch), device)
            r.update(model=model, mode=label,
                     cache_bytes_per_audio_s=r["cache_bytes"] / r["audio_s"])
            results["throughput"].append(r)
            click.echo(f"{model} {label}: {r['clips_per_s']:.2f} clips/s, "
                       f"{r['audio_s_per_s']:.2f} audio-s/s", err=True)
        for n in memory_clips:
            with tempfile.TemporaryDirectory(dir=work) as cache:
                made = _run_child("extract", model, str(corpus), str(n), cache,
                                  "16" if device.startswith("cuda") else "1", device)
                read = _run_child("iterate", model, str(corpus), str(n), cache)
            results["memory"].append({"model": model, "clips": n,
                                      "audio_s": made["audio_s"],
                                      "cache_mb": made["cache_bytes"] / 1e6,
                                      "extract_peak_rss_mb": made["peak_rss_mb"],
                                      "iterate_peak_rss_mb": read["peak_rss_mb"],
                                      "iterate_wall_s": read["wall_s"]})
            click.echo(f"{model} memory N={n}: {results['memory'][-1]}", err=True)
    write_figures(out_dir, f"extraction-{device.split(':')[0]}", results, to_markdown(results))
    return results


def to_markdown(results: dict[str, Any]) -> str:
    lines = [f"Machine: {describe(results['machine'])}; device {results['device']}; "
             "weights UNTRAINED (random init).", "",
             "| model | mode | clips | clips/s | audio-s/s | cache bytes per audio-s |",
             "|---|---|---|---|---|---|"]
    for r in results["throughput"]:
        lines.append(f"| {r['model']} | {r['mode']} | {r['clips']} | {r['clips_per_s']:.2f} | "
                     f"{r['audio_s_per_s']:.2f} | {r['cache_bytes_per_audio_s'] / 1e3:.1f} kB |")
    lines += ["", "| model | clips | audio | cache on disk | peak RSS, extracting | "
              "peak RSS, iterating the cache |", "|---|---|---|---|---|---|"]
    for r in results["memory"]:
        lines.append(f"| {r['model']} | {r['clips']} | {r['audio_s'] / 60:.1f} min | "
                     f"{r['cache_mb']:.0f} MB | {r['extract_peak_rss_mb']:.0f} MB | "
                     f"{r['iterate_peak_rss_mb']:.0f} MB |")
    return "\n".join(lines) + "\n"


@click.group(invoke_without_command=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results"), show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--tiny-clips", default=240, show_default=True, help="throughput sample, tiny model")
@click.option("--base-clips", default=48, show_default=True,
              help="throughput sample, full HuBERT-base")
@click.option("--memory-clips", default="100,1000", show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="scratch folder for the corpus and caches [default: a temporary folder]")
@click.pass_context
def main(ctx: click.Context, out_dir: Path, device: str, tiny_clips: int, base_clips: int,
         memory_clips: str, work: Path | None) -> None:
    """Benchmark feature extraction and the feature cache."""
    if ctx.invoked_subcommand is not None:
        return
    sizes = tuple(int(n) for n in memory_clips.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        root = work or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        results = run_benchmark(out_dir, device, {"hubert_tiny": tiny_clips,
                                                  "hubert_base": base_clips}, sizes, root)
    click.echo(to_markdown(results))


@main.command("extract", hidden=True)
@click.argument("model")
@click.argument("corpus", type=click.Path(path_type=Path))
@click.argument("n", type=int)
@click.argument("cache", type=click.Path(path_type=Path))
@click.argument("max_batch", type=int)
@click.argument("device")
def _extract(model: str, corpus: Path, n: int, cache: Path, max_batch: int, device: str) -> None:
    click.echo(json.dumps(child_extract(model, corpus, n, cache, max_batch, device)))


@main.command("iterate", hidden=True)
@click.argument("model")
@click.argument("corpus", type=click.Path(path_type=Path))
@click.argument("n", type=int)
@click.argument("cache", type=click.Path(path_type=Path))
def _iterate(model: str, corpus: Path, n: int, cache: Path) -> None:
    click.echo(json.dumps(child_iterate(model, corpus, n, cache)))


if __name__ == "__main__":
    main()
