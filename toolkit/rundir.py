"""A run directory: created once, resumed by the same command, never silently overwritten."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from toolkit.errors import EmoToolkitError
from toolkit.io import atomic_write_bytes, atomic_write_json
from toolkit.run_config import RunConfig


class RunDirError(EmoToolkitError):
    """A run directory that cannot be created or resumed as asked."""


class RunDir:
    def __init__(self, path: str | Path):
        self.root = Path(path)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self, rel: str) -> bool:
        return self.path(rel).is_file()

    def read_json(self, rel: str) -> Any:
        return json.loads(self.path(rel).read_text())

    def write_json(self, rel: str, obj: Any) -> Path:
        return atomic_write_json(self.path(rel), obj)

    def write_bytes(self, rel: str, data: bytes) -> Path:
        return atomic_write_bytes(self.path(rel), data)

    def start(self, config: RunConfig) -> bool:
        """Create the run, or resume an unfinished one made with the same settings.

        Returns True when resuming. Refuses a complete run, a run with other
        settings, and a non-empty folder that is not a run directory.
        """
        if self.root.exists() and any(self.root.iterdir()):
            if not self.exists("config.json"):
                raise RunDirError(f"{self.root} exists, is not empty and is not a run directory; "
                                  "choose another --out")
            if self.read_json("status.json").get("state") == "complete":
                raise RunDirError(f"{self.root} already holds a complete run; nothing was "
                                  "changed. Choose another --out to train again")
            previous = RunConfig.from_json(self.read_json("config.json"))
            diffs = config.differences(previous)
            if diffs:
                raise RunDirError(
                    f"{self.root} holds an unfinished run made with other settings "
                    f"({'; '.join(diffs)}). Rerun with the same options to resume it, or "
                    "choose another --out")
            self.write_json("config.json", config.to_json())  # runtime-only settings may change
            return True
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_json("config.json", config.to_json())
        self.write_json("status.json", {"state": "running", "started": _now()})
        self.write_json("versions.json", library_versions())
        return False

    def complete(self) -> None:
        status = self.read_json("status.json")
        self.write_json("status.json", {**status, "state": "complete", "finished": _now()})


def library_versions() -> dict[str, str]:
    import numpy
    import torch
    import torchaudio

    import toolkit

    return {"emo_toolkit": toolkit.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "torchaudio": torchaudio.__version__,
            "numpy": numpy.__version__, "platform": platform.platform()}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
