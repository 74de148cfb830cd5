"""The rules the Python runtime and the C library share, read from rules.json beside this
module: limits on audio, the resampler's filter, the segmenter's constants, the default
window, the metadata keys and the reason codes of errors. cpp/CMakeLists.txt turns the same
file into the C header emo_rules.h, so Python and C cannot drift apart: each module that
applies a rule takes its value from here (tests/test_rules.py changes a value and sees
both follow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).with_name("rules.json")


def _load() -> dict[str, dict[str, Any]]:
    rules = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    return {group: values for group, values in rules.items() if isinstance(values, dict)}


RULES = _load()
AUDIO = RULES["audio"]
RESAMPLE = RULES["resample"]
SEGMENTS = RULES["segments"]
WINDOWS = RULES["windows"]
OPENVINO = RULES["openvino"]
METADATA = RULES["metadata"]
REASON: dict[str, str] = RULES["reason"]
"""Reason codes of errors, as emo-predict's rows and EmoLastErrorReason name them."""
