"""What emo-bench measures and how: one frozen dataclass, its fields the command's options
(emo_toolkit.cli.support.dataclass_options), so the command and the library share every
default and check. No torch here: `emo-bench --help` imports none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emo_toolkit.bench import backends as bk
from emo_toolkit.runtime.audio import MAX_SECONDS
from emo_toolkit.runtime.checks import check_device, check_float, check_int
from emo_toolkit.runtime.settings import setting


@dataclass(frozen=True)
class BenchConfig:
    run_dir: Path
    out_dir: Path
    device: str = setting("cpu", "cpu, or cuda[:N]; cuda on a machine without CUDA exits with "
                          "status 2")
    backends: tuple[str, ...] = setting(bk.BACKEND_NAMES, "comma-separated; eager fp32 always "
                                        "runs, as the reference", choices=bk.BACKEND_NAMES)
    precisions: tuple[str, ...] | None = setting(
        None, "comma-separated from " + ",".join(bk.PRECISIONS) + " [default: all; on a CPU "
        "without native fp16/bf16 matmuls those are skipped unless named here]",
        option="precision", choices=bk.PRECISIONS)
    lengths_s: tuple[float, ...] = setting((1.0, 3.0, 10.0, 30.0), "audio lengths in seconds",
                                           option="lengths")
    batch_sizes: tuple[int, ...] = setting((1, 8), "batch sizes of the grid")
    warmup: int = setting(1, "untimed calls before each cell", range=(0, 1000))
    cell_budget_s: float = setting(3.0, "seconds of timed calls per cell (at least "
                                   "--min-repeats calls)", option="cell_budget",
                                   range=(0.0, 3600.0))
    min_repeats: int = setting(2, "timed calls per cell, at least", range=(1, 100_000))
    max_repeats: int = setting(200, "timed calls per cell, at most", range=(1, 100_000))
    split: str | None = setting(None, "which split's head (cross-validation runs)")
    eval_folder: Path | None = setting(None, "labelled clips for accuracy parity [default: the "
                                       "run's test split]",
                                       path={"exists": True, "file_okay": False})
    eval_limit: int | None = setting(None, "use only the first N eval clips", range=(1, None))
    artifacts: tuple[Path, ...] = setting(
        (), "folder with artifacts exported from RUN_DIR, searched before RUN_DIR/export "
        "(repeatable); missing ones are exported into OUT/artifacts",
        path={"file_okay": False}, show_default=False)
    force: bool = setting(False, "replace an existing report")
    ragged: bool = setting(False, "benchmark graphs that take lengths (artifacts exported "
                           "with --ragged; eager and compiled models run their padded path)")
    ragged_clips: int = setting(8, "the ragged cell: this many clips, evenly from 1 to 10 s, "
                                "in one call as the runtime batches them (0: no ragged cell)",
                                range=(0, 1024))
    max_padding: float | None = setting(
        None, "the ragged cell through a lengths graph: the largest share of a padded batch "
        "that may be padding (1.0: all clips in one call) [default: the runtime's, 0 on "
        "CPU, 0.25 on CUDA]", range=(0.0, 1.0))
    corpus: Path | None = setting(None, "the run's corpus folder, when it is no longer where "
                                  "the run recorded it (its test split is the eval set) "
                                  "[default: the run's]",
                                  path={"exists": True, "file_okay": False})

    def __post_init__(self) -> None:
        for name in self.backends:
            bk.backend(name)
        for p in self.precisions or ():
            if p not in bk.PRECISIONS:
                raise ValueError(f"unknown precision {p!r}; choose from {', '.join(bk.PRECISIONS)}")
        if not self.lengths_s or not self.batch_sizes:
            raise ValueError("give at least one audio length and one batch size")
        for seconds in self.lengths_s:
            check_float("audio length (s)", seconds, 0.0, MAX_SECONDS, low_open=True)
        for size in self.batch_sizes:
            check_int("batch size", size, 1, 1024)
        check_device(self.device)
        check_float("cell budget (s)", self.cell_budget_s, 0.0, 3600.0)
        check_int("ragged cell clips", self.ragged_clips, 0, 1024)
        if self.max_padding is not None:
            check_float("max padding", self.max_padding, 0.0, 1.0)
        if self.warmup < 0 or self.min_repeats < 1 or self.max_repeats < self.min_repeats:
            raise ValueError("need warmup >= 0 and 1 <= min_repeats <= max_repeats")
