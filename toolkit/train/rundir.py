"""A run directory: created once, resumed by the same command, never silently overwritten.

Layout (every file written atomically; the names below are this module's constants):
    .emo-run.json    MARKER: what proves the folder is an emo-toolkit run (written first)
    config.json      CONFIG: the full configuration
    status.json      STATUS: running / failed / complete
    labels.json      LABELS: the ordered label set
    extractor.json   EXTRACTOR: name, weights sha256 or "untrained", layers, dim
    dataset.json     DATASET: corpus summary, skipped files, where the corpus is (absolute
                     and relative to the run: runs work from any folder, and moved)
    versions.json    VERSIONS: library versions
    metrics.json     METRICS: every split's WA/UA/F1, and mean ± std across folds
    model.json       MODEL: which split's head emo-predict uses (single-split protocols)
    splits/<name>/   in_split(name, ...): split.json (files per part), head.safetensors +
                     head.json, metrics.json, history.json, confusion.png, curves.png,
                     test_predictions.json, checkpoint.pt while training
    export/          emo-export's default output (and emo-bench's own exports)
    bench/           emo-bench's default output

One process at a time: `lock()` takes an exclusive lock (`.lock`, released by the
kernel when the process dies), so a second emo-train on the same --out is refused.
Only a folder with the marker is treated as a run (a non-empty folder without it is
refused before anything is created in it): `overwrite` clears only the layout's entries
(a file of the user's beside them stays), and the sweep deletes only killed writers'
temporary files (our naming, a dead PID). Starting is idempotent: a kill at any write,
then the same command again, ends in the files an uninterrupted run writes. A run that
stopped with an error is marked failed; the same command resumes it, other settings (or
`overwrite`) start it over.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emo_toolkit.runtime.checks import labels_error
from emo_toolkit.runtime.errors import EmoToolkitError
from emo_toolkit.runtime.io import (
    InputFileError,
    atomic_write_bytes,
    atomic_write_json,
    dead_temp_files,
    read_json_file,
    sha256_file,
)
from emo_toolkit.runtime.windows import TRAINING_DURATIONS, ClipDurations
from emo_toolkit.train.run_config import RunConfig

LOCK_FILE = ".lock"
STATES = ("running", "failed", "complete")
CONFIG, STATUS, LABELS, EXTRACTOR = "config.json", "status.json", "labels.json", "extractor.json"
DATASET, VERSIONS, METRICS, MODEL = "dataset.json", "versions.json", "metrics.json", "model.json"
SPLIT, HEAD_WEIGHTS, HEAD_CONFIG = "split.json", "head.safetensors", "head.json"
HISTORY, TEST_PREDICTIONS, CHECKPOINT = "history.json", "test_predictions.json", "checkpoint.pt"
CONFUSION, CURVES = "confusion.png", "curves.png"
MARKER, SPLITS, EXPORTS, BENCH = ".emo-run.json", "splits", "export", "bench"
CORPUS_ABSOLUTE, CORPUS_FROM_RUN = "corpus_absolute", "corpus_from_run"  # in dataset.json
MARKER_CONTENT = {"kind": "emo-toolkit run directory", "schema": 1}
# What a run owns at its top level: the only entries `overwrite` deletes.
RUN_ENTRIES = (MARKER, CONFIG, STATUS, LABELS, EXTRACTOR, DATASET, VERSIONS, METRICS, MODEL,
               SPLITS, EXPORTS, BENCH)


def in_split(split: str, name: str) -> str:
    """A split's file, relative to the run directory."""
    return f"splits/{split}/{name}"


class RunDirError(EmoToolkitError):
    """A run directory that cannot be created or resumed as asked."""


class RunLoadError(EmoToolkitError):
    """A run directory that cannot serve predictions (unfinished, damaged or tampered with)."""


class RunDir:
    def __init__(self, path: str | Path):
        self.root = Path(path)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def read_json(self, rel: str) -> Any:
        """A file's JSON; a missing, non-regular or malformed file is an InputFileError."""
        return read_json_file(self.path(rel))

    def write_json(self, rel: str, obj: Any) -> Path:
        return atomic_write_json(self.path(rel), obj)

    def write_bytes(self, rel: str, data: bytes) -> Path:
        return atomic_write_bytes(self.path(rel), data)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's exclusive lock; refuse at once if another process holds it."""
        if self.root.exists() and not self.root.is_dir():
            raise RunDirError(f"{self.root} exists and is not a folder; choose another --out")
        self._refuse_unless_ours()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunDirError(f"{self.root}: cannot create the run directory "
                              f"({e.strerror or e})") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another"
                raise RunDirError(f"{self.root} is in use by process {holder} (another emo-train "
                                  "on the same --out); wait for it or choose another --out") from e
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            try:
                yield
            finally:
                self.path(LOCK_FILE).unlink(missing_ok=True)  # still ours: we hold the lock
        finally:
            os.close(fd)

    def _entries(self) -> list[Path]:
        """What the folder holds, but for our lock and killed writers' temporary files."""
        if not self.root.is_dir():
            return []
        dead = set(dead_temp_files(self.root))
        return [p for p in self.root.iterdir() if p.name != LOCK_FILE and p not in dead]

    def _refuse_unless_ours(self) -> None:
        if self._entries() and not self.is_run():
            raise RunDirError(f"{self.root} exists, is not empty and is not a run directory "
                              f"(it has no {MARKER}); nothing was changed: choose another --out")

    def is_run(self) -> bool:
        """Whether the folder carries our marker (a regular file with the schema we write)."""
        try:
            return read_json_file(self.path(MARKER)) == MARKER_CONTENT
        except InputFileError:
            return False

    def status(self) -> dict[str, Any]:
        """status.json, or running when a kill left it unwritten."""
        if not self.path(STATUS).exists():
            return {"state": "running"}
        status = self.read_json(STATUS)
        if not isinstance(status, dict) or status.get("state") not in STATES:
            raise InputFileError(f"{self.path(STATUS)}: expected an object whose state "
                                 f"is one of {', '.join(STATES)}")
        return status

    def start(self, config: RunConfig, *, overwrite: bool = False) -> bool:
        """Create the run, or resume an unfinished one made with the same settings.

        Call under `lock()`. Returns True when resuming. Refuses a complete run, an
        unfinished run with other settings, and a non-empty folder that is not a run
        directory; `overwrite` replaces a run directory (never anything else), and a
        failed run with other settings is replaced too."""
        self._refuse_unless_ours()
        if self.is_run():  # the sweep needs the marker: an unmarked folder keeps even those
            for tmp in dead_temp_files(self.root, recursive=True):
                tmp.unlink(missing_ok=True)
        if self.exists(CONFIG):
            try:
                status = self.status()
                previous = RunConfig.from_json(self.read_json(CONFIG))
            except (InputFileError, ValueError) as e:
                if not overwrite:
                    raise RunDirError(f"{self.root} holds a damaged run ({e}); pass --overwrite "
                                      "to start it over") from e
                status, previous = {"state": "damaged"}, None
            diffs = config.differences(previous) if previous is not None else []
            state = status["state"]
            if not overwrite and state == "complete":
                raise RunDirError(f"{self.root} already holds a complete run; nothing was "
                                  "changed. Choose another --out, or pass --overwrite to "
                                  "replace it")
            if not overwrite and diffs and state != "failed":
                raise RunDirError(
                    f"{self.root} holds an unfinished run made with other settings "
                    f"({'; '.join(diffs)}). Rerun with the same options to resume it, pass "
                    "--overwrite to start over, or choose another --out")
            if overwrite or diffs:
                self._clear()
            else:
                self.write_json(CONFIG, config.to_json())  # runtime-only settings
                self._set_state("running")
                if not self.exists(VERSIONS):
                    self.write_json(VERSIONS, library_versions())
                return True
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_json(MARKER, MARKER_CONTENT)  # first: a kill after it leaves a run
        self.write_json(CONFIG, config.to_json())
        self._set_state("running")
        self.write_json(VERSIONS, library_versions())
        return False

    def fail(self, error: str) -> None:
        """Mark the run failed with the error that stopped it (the same command resumes)."""
        if self.exists(CONFIG) and self.status()["state"] != "complete":
            self._set_state("failed", error=error)

    def complete(self) -> None:
        self._set_state("complete", finished=_now())

    def _set_state(self, state: str, **details: str) -> None:
        started = self.status().get("started", _now())
        self.write_json(STATUS, {"state": state, "started": started, **details})

    # Reading a finished run: every file checked against its schema, so a tampered or
    # damaged run is one RunLoadError naming the file, never a traceback.

    def labels(self) -> list[str]:
        labels = self._load(LABELS)
        if (not isinstance(labels, list) or len(labels) < 2
                or not all(isinstance(x, str) and x for x in labels)
                or len(set(labels)) != len(labels)):
            raise self._bad(LABELS, "expected a list of at least 2 distinct names")
        problem = labels_error(labels)
        if problem:
            raise self._bad(LABELS, problem)
        return labels

    def config(self) -> RunConfig:
        try:
            return RunConfig.from_json(self._load(CONFIG))
        except ValueError as e:
            raise self._bad(CONFIG, str(e)) from e

    def extractor_info(self) -> dict[str, Any]:
        info = self._load(EXTRACTOR)
        ints = ("num_layers", "dim", "sample_rate", "min_samples")
        untrained = isinstance(info, dict) and info.get("weights") == "untrained"
        hashes = ("weights_sha256", "state_dict_sha256") if untrained else ("weights_sha256",)
        if (not isinstance(info, dict) or not all(isinstance(info.get(k), str)
                                                  for k in ("name", "weights", *hashes))
                or not all(isinstance(info.get(k), int) and info[k] > 0 for k in ints)):
            raise self._bad(EXTRACTOR, "expected name, weights, weights_sha256 and "
                            f"positive {', '.join(ints)}")
        return info

    def split_names(self) -> list[str]:
        """Splits with a trained head."""
        return sorted(p.parent.name for p in self.root.glob(in_split("*", HEAD_WEIGHTS)))

    def default_split(self) -> str | None:
        """model.json's split (single-split runs), None for cross-validation runs."""
        if not self.path(MODEL).exists():
            return None
        model = self._load(MODEL)
        if not isinstance(model, dict) or not isinstance(model.get("split"), str):
            raise self._bad(MODEL, 'expected {"split": NAME}')
        return model["split"]

    def head_config(self, split: str) -> Any:
        from emo_toolkit.train.head import HeadConfig

        try:
            return HeadConfig.from_json(self._load(in_split(split, HEAD_CONFIG)))
        except ValueError as e:
            raise self._bad(in_split(split, HEAD_CONFIG), str(e)) from e

    def head_state(self, split: str, head: Any) -> dict[str, Any]:
        """The split's weights, checked name by name and shape by shape against `head`."""
        from safetensors.torch import load_file

        from emo_toolkit.features.weights import WeightsError, safetensors_shapes

        rel = in_split(split, HEAD_WEIGHTS)
        try:
            shapes = safetensors_shapes(self.path(rel))
        except WeightsError as e:
            raise RunLoadError(str(e)) from e
        expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
        found = {k: shape for k, (_, shape) in shapes.items()}
        if found != expected:
            wrong = sorted(k for k in expected.keys() | found.keys()
                           if expected.get(k) != found.get(k))
            raise self._bad(rel, f"its tensors do not match {in_split(split, HEAD_CONFIG)} "
                            f"(e.g. {', '.join(wrong[:3])})")
        state = load_file(str(self.path(rel)))
        if not all(bool(v.isfinite().all()) for v in state.values() if v.is_floating_point()):
            raise self._bad(rel, "holds NaN or infinite weights")
        return state

    def corpus_fields(self, root: Path) -> dict[str, str]:
        """Where the corpus is, for dataset.json: absolute, and relative to the run (a run
        moved together with its corpus still finds it)."""
        absolute = root.resolve()
        return {CORPUS_ABSOLUTE: str(absolute),
                CORPUS_FROM_RUN: os.path.relpath(absolute, self.root.resolve())}

    def corpus_root(self, config: RunConfig, given: Path | None = None) -> Path:
        """The folder the run's file names are relative to, from any working folder: `given`
        (--corpus), else the first that exists of the absolute path dataset.json records,
        the recorded path relative to the run, and the configured source."""
        if given is not None:
            return given
        try:
            recorded = self.read_json(DATASET)
        except InputFileError:
            recorded = {}
        recorded = recorded if isinstance(recorded, dict) else {}
        candidates = [Path(recorded[CORPUS_ABSOLUTE])] if isinstance(
            recorded.get(CORPUS_ABSOLUTE), str) else []
        if isinstance(recorded.get(CORPUS_FROM_RUN), str):
            candidates.append(self.root / recorded[CORPUS_FROM_RUN])
        candidates.append(source_root(config))
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            raise RunLoadError(f"{self.root}: its corpus is in none of "
                               f"{', '.join(map(str, dict.fromkeys(candidates)))}; give the "
                               "corpus folder with --corpus")
        return found

    def test_clips(self, split: str, config: RunConfig, corpus: Path | None = None
                   ) -> list[tuple[Path, str]]:
        """The split's test files with their true labels (test_predictions.json), under the
        corpus_root (`corpus`: the folder the user gave)."""
        rel = in_split(split, TEST_PREDICTIONS)
        rows = self._load(rel)
        if not isinstance(rows, list) or not all(
                isinstance(r, dict) and isinstance(r.get("file"), str)
                and isinstance(r.get("true"), str) for r in rows):
            raise self._bad(rel, 'expected a list of {"file", "true", "predicted"}')
        root = self.corpus_root(config, corpus)
        return [(root / r["file"], r["true"]) for r in rows]

    def weights_digest(self, split: str) -> str:
        """One sha256 over what decides the split's outputs (the extractor's identity and
        weights digest, the labels, the head's config and weights): equal digests, equal
        models, wherever the run was moved."""
        h = hashlib.sha256()
        for rel in (EXTRACTOR, LABELS, in_split(split, HEAD_CONFIG), in_split(split, HEAD_WEIGHTS)):
            h.update(sha256_file(self.path(rel)).encode())
        return h.hexdigest()

    def training_durations(self, split: str) -> ClipDurations | None:
        """The durations of the clips the split's head was trained on (split.json), None for
        a run made before they were recorded."""
        rel = in_split(split, SPLIT)
        recorded = self._load(rel)
        obj = recorded.get(TRAINING_DURATIONS) if isinstance(recorded, dict) else None
        if obj is None:
            return None
        try:
            return ClipDurations.from_json(obj)
        except ValueError as e:
            raise self._bad(rel, f"{TRAINING_DURATIONS} {e}") from None

    def train_files(self, split: str, config: RunConfig, corpus: Path | None = None
                    ) -> list[Path]:
        """The split's training files (split.json), under the corpus_root: what an int8
        export calibrates its activation ranges on."""
        rel = in_split(split, SPLIT)
        recorded = self._load(rel)
        train = recorded.get("train") if isinstance(recorded, dict) else None
        if not isinstance(train, list) or not all(isinstance(f, str) for f in train):
            raise self._bad(rel, 'expected {"train": [FILE, ...]}')
        root = self.corpus_root(config, corpus)
        return [root / f for f in train]

    def _load(self, rel: str) -> Any:
        try:
            return self.read_json(rel)
        except InputFileError as e:
            raise RunLoadError(f"{self.root}: {e}") from e

    def _bad(self, rel: str, problem: str) -> RunLoadError:
        return RunLoadError(f"{self.path(rel)}: {problem}")

    def _clear(self) -> None:
        """Delete the run's own entries (RUN_ENTRIES), the marker kept and config.json last:
        a kill part-way leaves a run directory that --overwrite clears."""
        owned = [self.path(n) for n in RUN_ENTRIES if n != MARKER and n != CONFIG]
        for entry in [*owned, self.path(CONFIG)]:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()


def source_root(config: RunConfig) -> Path:
    """The corpus folder as configured (a manifest's folder), relative to where the command
    runs: what training names the files against."""
    source = Path(config.data.source)
    return source.parent if source.suffix.lower() == ".csv" or source.is_file() else source


def module_version(name: str) -> str:
    """A module's version, or "not installed" (a GPU image may lack onnx, say)."""
    try:
        return str(importlib.import_module(name).__version__)
    except ImportError:
        return "not installed"


def library_versions(*extra: str) -> dict[str, str]:
    """The versions a run (or a benchmark: `extra` modules) records."""
    import emo_toolkit

    return {"emo_toolkit": emo_toolkit.__version__, "python": platform.python_version(),
            **{name: module_version(name) for name in ("torch", "torchaudio", "numpy", *extra)},
            "platform": platform.platform()}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
