"""emo-bench's choice: which artifact, runtime and precision ran fastest on a machine while
passing its agreement gate, as a small JSON file that emo-predict takes in place of a model
(`emo-predict OUT/choice.json FILES`) and `Recognizer.from_choice` opens.

The model's path is kept relative to the choice file when it lies under the choice's
folder (emo-bench's --out), so the folder can be moved or copied to another machine whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emo_toolkit.runtime.errors import ArtifactError
from emo_toolkit.runtime.io import InputFileError, read_json_file

CHOICE_KIND = "emo-bench choice"
CHOICE_FILE = "choice.json"


@dataclass(frozen=True)
class Choice:
    """How to open the chosen model (Recognizer.open's arguments) and what was measured."""

    model: str                      # the artifact (or run directory), as written
    runtime: str | None = None      # None: the format's own runtime
    precision: str | None = None    # None: the artifact's exported precision
    device: str = "cpu"
    threads: int | None = None      # None: the runtime's default, as measured
    measured: dict[str, Any] = field(default_factory=dict)  # the cell, ratios, gate, machine

    def model_path(self, choice_file: Path) -> Path:
        path = Path(self.model)
        return path if path.is_absolute() else choice_file.parent / path

    def open_options(self) -> dict[str, Any]:
        """Recognizer.open's keyword arguments (beyond the path)."""
        return {"device": self.device, "runtime": self.runtime, "precision": self.precision,
                "threads": self.threads}

    def to_json(self) -> dict[str, Any]:
        return {"kind": CHOICE_KIND, "schema": 1, **asdict(self)}

    @classmethod
    def for_model(cls, model: Path, choice_file: Path, **fields: Any) -> Choice:
        """A choice whose model path is relative to `choice_file` when it lies beside it."""
        try:
            written = str(model.resolve().relative_to(choice_file.parent.resolve()))
        except ValueError:
            written = str(model.resolve())
        return cls(model=written, **fields)


def is_choice_file(path: Path) -> bool:
    return path.suffix == ".json" and path.is_file()


def read_choice(path: Path) -> Choice:
    """A choice file, checked field by field; ArtifactError names the first bad one."""
    try:
        raw = read_json_file(path)
    except InputFileError as e:
        raise ArtifactError(str(e)) from e
    if not isinstance(raw, dict) or raw.get("kind") != CHOICE_KIND:
        raise ArtifactError(f"{path}: not an emo-bench choice file (no \"kind\": "
                            f"\"{CHOICE_KIND}\")")
    if raw.get("schema") != 1:
        raise ArtifactError(f"{path}: choice schema {raw.get('schema')!r}; this toolkit reads 1")
    kinds = {"model": (str,), "runtime": (str, type(None)), "precision": (str, type(None)),
             "device": (str,), "threads": (int, type(None)), "measured": (dict,)}
    for name, allowed in kinds.items():
        value = raw.get(name)
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise ArtifactError(f"{path}: field {name!r} is {value!r}")
    if raw["threads"] is not None and not 1 <= raw["threads"] <= 1024:
        raise ArtifactError(f"{path}: field 'threads' is {raw['threads']}; 1 to 1024, or null")
    return Choice(**{name: raw[name] for name in kinds})
