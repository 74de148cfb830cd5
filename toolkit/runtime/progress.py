"""Progress on stderr: a live bar on a terminal, plain periodic lines anywhere else.

Bars redraw with carriage returns, which pile up in logs and CI output, so when
stderr is not a terminal progress is a line every `PLAIN_INTERVAL_S` seconds and
one at the end. `TQDM_DISABLE=1`, `--quiet` (`set_quiet`) or `enabled=False`
silence it entirely.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

PLAIN_INTERVAL_S = 10.0
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def _disabled_by_env() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines:
    """`desc: n/total unit (pct) postfix`, at most every PLAIN_INTERVAL_S, and at close."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False

    def _line(self) -> str:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done} {self.unit}{pct}{extra}, {time.monotonic() - self.start:.0f} s"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= PLAIN_INTERVAL_S:
            self.last = now
            print(self._line(), file=sys.stderr, flush=True)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            print(self._line(), file=sys.stderr, flush=True)


def progress_bar(total: int | None, desc: str, unit: str, *, enabled: bool = True,
                 initial: int = 0) -> Any:
    """An object with update(n), set_postfix_str(text) and close()."""
    if not enabled or _quiet or _disabled_by_env():
        return _Silent()
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial)
    return _Lines(total, desc, unit, initial)


def progress_iter(items: Iterable[T], total: int, desc: str, unit: str, *,
                  enabled: bool = True) -> Iterator[T]:
    bar = progress_bar(total, desc, unit, enabled=enabled)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
