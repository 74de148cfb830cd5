"""How long a window of a recording or a stream is: by default as long as the clips the
model was trained on.

A model trained on clips of 1 to 4 s sees something else in a 10 s window: several
utterances, pauses and changes of emotion at once. So a run records the durations of
its training clips (`ClipDurations`, in the split's split.json), every artifact carries
them in its metadata (TRAINING_DURATIONS), and recordings and streams default to a
window of their high percentile (`default_window_s`), capped by what the artifact takes.
A window well outside the training range gets a warning (`window_warning`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TRAINING_DURATIONS = "training_durations"
"""The key of ClipDurations in a run's split.json and in an artifact's metadata."""

HIGH_PERCENTILE = 90
"""The percentile of the training clips' durations a default window is."""

MIN_WINDOW_S = 1.0
"""The shortest window (seconds): shorter windows leave the segmenter no room for pauses."""

UNKNOWN_WINDOW_S = 10.0
"""The default window of a model that records no training durations (made before they were
recorded)."""

WELL_OUTSIDE = 2.0
"""A window more than this factor beyond the longest training clip, or below the shortest,
is outside what the model was trained on."""


@dataclass(frozen=True)
class ClipDurations:
    """The durations, in seconds, of the clips a model was trained on."""

    count: int
    min: float
    median: float
    p90: float
    max: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> ClipDurations:
        values = np.asarray(list(seconds), dtype=np.float64)
        if values.size == 0:
            raise ValueError("no training clips to take durations from")
        return cls(int(values.size), _r(values.min()), _r(np.median(values)),
                   _r(np.percentile(values, HIGH_PERCENTILE)), _r(values.max()))

    @classmethod
    def from_json(cls, obj: Any) -> ClipDurations:
        """ValueError names what is wrong with a recorded set of durations."""
        if not isinstance(obj, Mapping):
            raise ValueError("is not a JSON object")
        try:
            d = cls(**{k: obj[k] for k in ("count", "min", "median", "p90", "max")})
        except KeyError as e:
            raise ValueError(f"lacks {e.args[0]!r}") from None
        numbers = (d.min, d.median, d.p90, d.max)
        if type(d.count) is not int or d.count < 1 or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                for x in numbers) or not 0 < d.min <= d.median <= d.p90 <= d.max:
            raise ValueError("needs a count >= 1 and durations 0 < min <= median <= p90 <= max")
        return d

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.count} training clips of {self.min:g} to {self.max:g} s, median "
                f"{self.median:g} s, {HIGH_PERCENTILE}th percentile {self.p90:g} s")


def default_window_s(durations: ClipDurations | None, longest_s: float | None) -> float:
    """The window for a model trained on clips of `durations` that takes inputs of at most
    `longest_s` seconds (None: any length)."""
    window = UNKNOWN_WINDOW_S if durations is None else max(MIN_WINDOW_S, durations.p90)
    return window if longest_s is None else min(window, longest_s)


def window_warning(window_s: float, durations: ClipDurations | None) -> str | None:
    """One line when a window is well outside the training clips' range, else None."""
    if durations is None:
        return None
    if window_s > WELL_OUTSIDE * durations.max or window_s < durations.min:
        return (f"a window of {window_s:g} s is outside what the model was trained on "
                f"({durations.describe()}): windows near {durations.p90:g} s match it")
    return None


def _r(x: float) -> float:
    return round(float(x), 3)
