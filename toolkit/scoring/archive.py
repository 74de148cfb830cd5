"""Scoring an archive on a Ray cluster (`emo-predict ray`), resumable.

    inputs (files, folders walked lazily in emo-predict's order, --files-from lists)
      │  cut into blocks of `block_files` files, numbered in input order
      ▼
    OUT/todo.jsonl: the blocks not yet scored, one JSON line each (on disk, not in memory)
      │  read as a stream by Ray Data; map_batches over a pool of actors, one per CPU or
      ▼  GPU slot, each holding a Recognizer
    OUT/part-NNNNNN.jsonl: one block's emo-predict rows, in input order, written
                           atomically by the actor that scored it

A block whose shard is there is not scored again, so the same command after a crash or
Ctrl-C finishes the job, and its shards hold what an uninterrupted run writes. Folders that
hold no audio or cannot be listed get emo-predict's error rows in OUT/listing.jsonl.
`merge_shards` concatenates listing and shards in order: emo-predict's own output for the inputs.
OUT must be a folder every node can write (a shared file system on a cluster of machines).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from emo_toolkit.runtime.checks import printable
from emo_toolkit.runtime.errors import EmoToolkitError
from emo_toolkit.runtime.io import atomic_open, atomic_write_json
from emo_toolkit.runtime.output import RowWriter, rows
from emo_toolkit.runtime.predictions import FileError
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.runtime.settings import setting
from emo_toolkit.runtime.windows import Window

MARKER = ".emo-predict-ray"
"""Marks OUT as a scoring folder: a rerun may resume in it, nothing else is written over."""
SHARD = "part-{:06d}.jsonl"
LISTING = "listing.jsonl"
TODO = "todo.jsonl"
JOB = "job.json"
DEFAULT_BLOCK_FILES = 64


@dataclass(frozen=True)
class ScoringOptions:
    """How each block is scored, and by how many actors. emo-predict's options are made from
    these fields (batch_size and segments for files too)."""

    window: Window | None = None  # resolved by the command (announce_window); None: the default
    batch_size: int = setting(1, "segments run together, up to this many: of any lengths when "
                              "the model takes lengths (exports with --ragged, runs), else of "
                              "equal length only (padding without lengths would change the "
                              "result)", range=(1, 256))
    segments: bool = setting(False, "also write one row per segment (start, end, label, "
                             "probabilities)")
    precision_said: bool = False  # rows end with "precision" (a run-time precision)
    workers: int = setting(1, "actors scoring at once, each with its own model",
                           range=(1, 4096))
    cpus_per_worker: float = setting(1.0, "CPUs Ray reserves for each actor",
                                     range=(0.0, 1024.0))
    gpus_per_worker: float = setting(0.0, "GPUs Ray reserves for each actor",
                                     range=(0.0, 64.0))
    block_files: int = setting(DEFAULT_BLOCK_FILES, "files per block (a shard, the unit of "
                               "work and of resuming)", range=(1, 100_000))


@dataclass(frozen=True)
class RayRun:
    """What one run on the cluster did: files scored per node id, the seconds to join or
    start the cluster, and the seconds from submitting the blocks to the last shard."""

    nodes: dict[str, int]
    start_s: float = 0.0
    score_s: float = 0.0


@dataclass(frozen=True)
class ScoringSummary:
    files: int            # inputs, this run's and those scored before
    scored_now: int       # files scored by this run (the rest were in shards already)
    failed: int           # files (and folders) that got an error row
    shards: int
    run: RayRun


class ScoringFolderError(EmoToolkitError):
    """OUT cannot take this job (another folder's files, or another job's shards)."""


def prepare_folder(out: Path) -> None:
    """OUT empty or missing, or a scoring folder of an earlier run: never another folder."""
    if out.exists() and not out.is_dir():
        raise ScoringFolderError(f"{out}: not a folder; --ray writes shards into a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ScoringFolderError(f"{out}: holds files that emo-predict --ray did not write; "
                                 "give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()


def plan_blocks(files: Iterable[Path], out: Path, block_files: int) -> tuple[int, int, int]:
    """Write OUT/todo.jsonl: the blocks whose shard is missing. A shard that is there must
    hold the block's files (the inputs of this run), else ScoringFolderError. Returns
    (files, blocks, files to score)."""
    total = blocks = todo_files = 0
    with atomic_open(out / TODO, text=True) as todo:
        for n, block in enumerate(_chunks(files, block_files)):
            total += len(block)
            blocks += 1
            shard = out / SHARD.format(n)
            names = [printable(str(p)) for p in block]  # as rows name them
            if shard.is_file():
                _check_shard(shard, names)
                continue
            todo.write(json.dumps({"block": n, "files": [os.fsdecode(p) for p in block]},
                                  ensure_ascii=True) + "\n")
            todo_files += len(block)
    return total, blocks, todo_files


def score_on_ray(open_model: Callable[[], Recognizer], out: Path, options: ScoringOptions,
                 address: str | None, progress: Callable[[int], None]) -> RayRun:
    """Score OUT/todo.jsonl's blocks on the cluster at `address` (None: a local one);
    `progress` hears the files of each finished block."""
    import ray
    import ray.data

    began = time.perf_counter()
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=True)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI shows its own, in files
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        started = time.perf_counter()
        if (out / TODO).stat().st_size == 0:
            return RayRun({}, started - began)
        actor: dict[str, Any] = {"num_cpus": options.cpus_per_worker}
        if options.gpus_per_worker:
            actor["num_gpus"] = options.gpus_per_worker
        blocks = ray.data.read_text(str(out / TODO), num_cpus=0)  # reading takes no slot
        results = blocks.map_batches(
            BlockScorer, fn_constructor_args=(open_model, str(out), options), batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=options.workers), **actor)
        nodes: dict[str, int] = {}
        for row in results.iter_rows():
            nodes[str(row["node"])] = nodes.get(str(row["node"]), 0) + int(row["files"])
            progress(int(row["files"]))
        return RayRun(nodes, started - began, time.perf_counter() - started)
    finally:
        ray.shutdown()


class BlockScorer:
    """An actor of the pool: one Recognizer, a block of files per call, its shard written
    atomically."""

    def __init__(self, open_model: Callable[[], Recognizer], out: str, options: ScoringOptions):
        import ray

        self.recognizer, self.out, self.options = open_model(), Path(out), options
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"block": [], "files": [], "failed": [], "node": []}
        for line in batch["text"]:
            job = json.loads(str(line))
            failed = self.score(int(job["block"]), [Path(p) for p in job["files"]])
            out["block"].append(int(job["block"]))
            out["files"].append(len(job["files"]))
            out["failed"].append(failed)
            out["node"].append(self.node)
        return out

    def score(self, block: int, files: list[Path]) -> int:
        info, o = self.recognizer.info, self.options
        said = info.precision if o.precision_said else None
        failed = 0
        with atomic_open(self.out / SHARD.format(block), text=True) as fh:
            writer = RowWriter(fh, "jsonl", self.recognizer.labels)
            for path, result in self.recognizer.predict_files(files, o.window, o.batch_size):
                failed += isinstance(result, FileError)
                for row in rows(path, result, o.segments, info.untrained, said):
                    writer.write(row)
        return failed


def write_listing(out: Path, not_run: list[tuple[Path, FileError]], untrained: bool,
                  said: str | None) -> None:
    """emo-predict's error rows for folders without audio or that could not be listed."""
    with atomic_open(out / LISTING, text=True) as fh:
        writer = RowWriter(fh, "jsonl", [])
        for path, error in not_run:
            for row in rows(path, error, False, untrained, said):
                writer.write(row)


def merged_rows(out: Path) -> Iterator[dict[str, Any]]:
    """Every row of the job in emo-predict's order: the listing's, then the shards'."""
    parts = [out / LISTING] if (out / LISTING).is_file() else []
    n = 0
    while (out / SHARD.format(n)).is_file():
        parts.append(out / SHARD.format(n))
        n += 1
    for part in parts:
        with part.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def merge_shards(out: Path, stream: IO[str], fmt: str, labels: list[str], precision: bool) -> int:
    """Write the job's rows to `stream` as emo-predict -o writes them; the failed count."""
    writer = RowWriter(stream, fmt, labels, precision=precision)
    failed = 0
    for row in merged_rows(out):
        failed += "error" in row
        writer.write(row)
    return failed


def record_job(out: Path, summary: ScoringSummary) -> None:
    atomic_write_json(out / JOB, {"files": summary.files, "scored_now": summary.scored_now,
                                  "failed": summary.failed, "shards": summary.shards,
                                  "nodes": summary.run.nodes,
                                  "cluster_start_s": round(summary.run.start_s, 3),
                                  "scoring_s": round(summary.run.score_s, 3)})


def count_failed(out: Path) -> int:
    return sum("error" in row for row in merged_rows(out))


def _chunks(items: Iterable[Path], size: int) -> Iterator[list[Path]]:
    it = iter(items)
    while block := list(itertools.islice(it, size)):
        yield block


def _check_shard(shard: Path, names: list[str]) -> None:
    """A shard of an earlier run must hold this block's files, in order."""
    with shard.open(encoding="utf-8") as fh:
        held = [row["file"] for row in map(json.loads, filter(str.strip, fh))
                if "segment" not in row]
    if held != names:
        raise ScoringFolderError(
            f"{shard}: holds the results of other inputs than this run's block "
            f"({held[:1]} ... against {names[:1]} ...); the inputs changed since that run: "
            "give a new folder to score them")
