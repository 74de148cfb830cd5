"""Value checks shared by every configuration: numbers finite and in range, device names.

Each raises ValueError naming the setting, so a dataclass's __post_init__ can
validate its fields in one line each, whether they came from the command line
or from a JSON file in a run directory.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d{1,3})?)$")


def check_int(name: str, value: Any, low: int, high: int) -> None:
    """An int (not a bool) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} must be at most {high}, got {value}")


def check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> None:
    """A finite number within the range; open ends exclude the bound."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {value:g}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_str(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def check_device(value: Any, name: str = "device") -> None:
    """cpu, cuda or cuda:N (whether this machine has it is checked where it is used)."""
    if not isinstance(value, str) or not DEVICE_PATTERN.match(value):
        raise ValueError(f"{name} must be cpu, cuda or cuda:N, got {value!r}")


def check_speaker_regex(value: str | None) -> None:
    if value is None:
        return
    try:
        pattern = re.compile(value)
    except re.error as e:
        raise ValueError(f"speaker regex {value!r} is not a valid regular expression ({e})") from e
    if "speaker" not in pattern.groupindex:
        raise ValueError(f"speaker regex {value!r} has no (?P<speaker>...) group")


def printable(name: str) -> str:
    """A file or folder name as text. Bytes that are not UTF-8 (which Python keeps as
    surrogates) become backslash escapes, so names can go into JSON, CSV, ONNX metadata and
    plots; the files themselves are still opened by their real names."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


LABEL_BREAKERS = ("Cc", "Zl", "Zp")  # control characters (\n, \r, U+0085), line/paragraph seps


def label_text(raw: str) -> str:
    """A label as every reader and writer keeps it: NFC-normalised (the same name typed on
    macOS and on Linux is one class) and stripped; a label with a control character or a
    line break is refused (it would split CSV rows and Triton's labels.txt)."""
    text = unicodedata.normalize("NFC", raw).strip()
    if not text or any(unicodedata.category(c) in LABEL_BREAKERS for c in text):
        raise ValueError(f"label {raw!r} is empty or holds a control character or line break")
    return text


def labels_error(labels: list[str]) -> str | None:
    """Why the first stored label that breaks label_text's rule does (it must already be in
    its form), or None."""
    for label in labels:
        try:
            if label_text(label) != label:
                return f"{label!r} is not NFC or not stripped"
        except ValueError as e:
            return str(e)
    return None
