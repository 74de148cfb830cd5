"""The rows emo-predict writes, as JSON lines or CSV: one home for their fields.

Per file, in order: with segments asked for, one row per segment (`segment`,
`start`, `end` in seconds, label, probabilities), then the file row (label and
duration-weighted mean probabilities over its segments, `duration`, `segments`);
or one error row (`error`, a stable reason code, and `message`). Every row says
`untrained`: true when the model's extractor has UNTRAINED weights (a smoke test).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from emo_toolkit.runtime.checks import printable
from emo_toolkit.runtime.io import to_json
from emo_toolkit.runtime.predictions import FileError, RecordingPrediction

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
"""Output file endings and the format each gives."""


def output_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the output's name must end in "
                         f"{', '.join(FORMATS)} (JSON lines or CSV)")
    return fmt


def rows(file: Path, result: RecordingPrediction | FileError, segments: bool,
         untrained: bool, precision: str | None = None) -> Iterator[dict[str, Any]]:
    """`untrained`: the model's, for error rows (results carry their own). `precision`:
    what the runtime computes in when the caller chose one other than the artifact's
    (bf16 on OpenVINO, say): every row then ends with it."""
    name = printable(str(file))  # a name that is not UTF-8 stays writable (escaped)
    said = {"precision": precision} if precision else {}
    if isinstance(result, FileError):
        yield {"file": name, **result.to_json(), "untrained": untrained, **said}
        return
    if segments:
        for i, part in enumerate(result.segments):
            yield {"file": name, "segment": i, **part.to_json(), **said}
    yield {"file": name, **result.to_json(), **said}


class RowWriter:
    """Writes rows to a text stream as JSON lines, or as CSV with one probability column
    per label (`p_<label>`)."""

    def __init__(self, stream: IO[str], fmt: str, labels: Sequence[str],
                 precision: bool = False):
        """`precision`: the rows say what the runtime computed in (a CSV column)."""
        self.stream, self.fmt, self.labels = stream, fmt, list(labels)
        self.csv: Any = None
        if fmt == "csv":
            columns = ["file", "segment", "start", "end", "duration", "segments", "label",
                       *(f"p_{label}" for label in self.labels), "error", "message",
                       "untrained", *(["precision"] if precision else [])]
            self.csv = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
            self.csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.csv is None:
            self.stream.write(to_json(row, indent=None) + "\n")
        else:
            flat = {k: str(v).lower() if isinstance(v, bool) else v  # as JSON spells them
                    for k, v in row.items() if k != "probabilities"}
            flat.update({f"p_{k}": v for k, v in row.get("probabilities", {}).items()})
            self.csv.writerow(flat)
        self.stream.flush()
