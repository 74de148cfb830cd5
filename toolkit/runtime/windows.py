"""How long a window of a recording or a stream is: by default as long as the clips the
model was trained on.

A model trained on clips of 1 to 4 s sees something else in a 10 s window: several
utterances, pauses and changes of emotion at once. So a run records the durations of
its training clips (`ClipDurations`, in the split's split.json), every artifact carries
them in its metadata (TRAINING_DURATIONS), and recordings and streams default to a
window of their high percentile (`default_window_s`), capped by what the artifact takes.
A window well outside the training range gets a warning (`window_warning`).

A command resolves its window once (`resolve_window`, through `ModelInfo.window`) into a
`Window`: its samples at the model's rate and where they come from. Files, --ray workers,
streams, emo-serve's /info and its requests use that value, and every command describes it
in the same words, so what is reported is what runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emo_toolkit.runtime.audio import MAX_SECONDS
from emo_toolkit.runtime.checks import check_float
from emo_toolkit.runtime.rules import METADATA, WINDOWS

TRAINING_DURATIONS = str(METADATA["training_durations"])
"""The key of ClipDurations in a run's split.json and in an artifact's metadata."""

HIGH_PERCENTILE = int(WINDOWS["high_percentile"])
"""The percentile of the training clips' durations a default window is."""

MIN_WINDOW_S = float(WINDOWS["min_window_s"])
"""The shortest window (seconds): shorter windows leave the segmenter no room for pauses."""

UNKNOWN_WINDOW_S = float(WINDOWS["unknown_window_s"])
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


@dataclass(frozen=True)
class Window:
    """A window resolved for one model: `samples` at `sample_rate`, the seconds asked for
    (None: the default), and whether the artifact's longest input shortened it."""

    samples: int
    sample_rate: int
    asked_s: float | None = None
    capped: bool = False
    durations: ClipDurations | None = None

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def source(self) -> str:
        """Where the length comes from, as every command says it."""
        if self.capped:
            return (f"{'the default' if self.asked_s is None else f'{self.asked_s:g} s asked'}, "
                    "cut to the longest input this artifact takes")
        if self.asked_s is not None:
            return "asked"
        if self.durations is not None:
            return f"the default, from the model's {self.durations.describe()}"
        return "the default; this model records no training clip durations"

    def describe(self, option: str = "--window") -> str:
        """'3.7 s (the default, from ...)', with `option` naming where an asked one came from."""
        source = option if self.asked_s is not None and not self.capped else self.source
        return f"{self.seconds:g} s ({source})"

    @property
    def warning(self) -> str | None:
        return window_warning(self.seconds, self.durations)

    def to_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 6), "samples": self.samples,
                "default": self.asked_s is None, "capped": self.capped}


def resolve_window(seconds: float | None, *, sample_rate: int, max_samples: int | None,
                   durations: ClipDurations | None) -> Window:
    """The window of `seconds` (None: the default) for a model at `sample_rate` taking inputs
    of at most `max_samples` (None: any length), trained on clips of `durations`.
    ValueError for a length outside (0, MAX_SECONDS] (a segment is one clip)."""
    if seconds is not None:
        check_float("window", seconds, 0.0, MAX_SECONDS, low_open=True)
    samples = round((default_window_s(durations, None) if seconds is None else seconds)
                    * sample_rate)
    capped = max_samples is not None and samples > max_samples
    return Window(max_samples if capped else samples,  # type: ignore[arg-type]
                  sample_rate, None if seconds is None else float(seconds), capped, durations)


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
