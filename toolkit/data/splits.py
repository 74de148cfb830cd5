"""Train/test splits: the notebook protocol, speaker-independent holdout, and group k-fold.

Every split ends in `_finish`, which enforces one rule: a speaker never sits in
both train and test unless the caller passes ``allow_speaker_overlap=True``; when
speakers are unknown, the split cannot be checked and a `SpeakerUnknownWarning`
says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emo_toolkit.data.datasets import Clip
from emo_toolkit.runtime.errors import SpeakerOverlapError, SpeakerUnknownWarning, SplitError

GroupBy = Literal["speaker", "session"]
PROTOCOLS = ("notebook", "holdout", "loso")

NOTEBOOK_PARTS = 5
"""The notebook shuffled the clips into 5 equal "sessions" and held out the 5th."""


@dataclass(frozen=True)
class Split:
    """Indices into a clip list. `held_out` names the test speakers/sessions, if any."""

    name: str
    train: tuple[int, ...]
    test: tuple[int, ...]
    held_out: tuple[str, ...] = ()

    def to_json(self, clips: Sequence[Clip], root: Path | None = None) -> dict[str, Any]:
        def name(i: int) -> str:
            p = clips[i].path
            inside = root is not None and p.is_relative_to(root)
            return str(p.relative_to(root)) if inside else str(p)

        return {
            "name": self.name,
            "held_out": list(self.held_out),
            "train": [name(i) for i in self.train],
            "test": [name(i) for i in self.test],
        }


def notebook_split(clips: Sequence[Clip], seed: int = 0, *,
                   allow_speaker_overlap: bool = False) -> Split:
    """The original protocol: shuffle with `seed`, cut 5 equal parts, hold out part 5."""
    if len(clips) < NOTEBOOK_PARTS:
        raise SplitError(
            f"the notebook split needs at least {NOTEBOOK_PARTS} clips, got {len(clips)}")
    order = np.random.default_rng(seed).permutation(len(clips))
    parts = np.array_split(order, NOTEBOOK_PARTS)
    train = np.concatenate(parts[:-1])
    return _finish("notebook", clips, train, parts[-1], (), allow_speaker_overlap)


def holdout_split(clips: Sequence[Clip], *, test_fraction: float = 0.2, seed: int = 0,
                  test_groups: Sequence[str] | None = None, group_by: GroupBy = "speaker",
                  allow_speaker_overlap: bool = False) -> Split:
    """Hold out whole speakers (or sessions): `test_groups`, or shuffled groups until
    at least `test_fraction` of the clips are in test."""
    groups = _groups(clips, group_by)
    names = sorted(set(groups))
    if len(names) < 2:
        raise SplitError(f"a {group_by}-independent split needs at least 2 {group_by}s, "
                         f"found {len(names)}")
    if test_groups is not None:
        unknown = sorted(set(test_groups) - set(names))
        if unknown:
            raise SplitError(f"unknown {group_by}(s) to hold out: {', '.join(unknown)}; "
                             f"known: {', '.join(names)}")
        chosen = sorted(set(test_groups))
        if len(chosen) == len(names):
            raise SplitError(f"holding out every {group_by} leaves nothing to train on")
    else:
        if not 0 < test_fraction < 1:
            raise SplitError(f"test_fraction must be between 0 and 1, got {test_fraction}")
        sizes = {n: groups.count(n) for n in names}
        chosen = []
        for n in np.random.default_rng(seed).permutation(names):
            if sum(sizes[c] for c in chosen) >= test_fraction * len(clips):
                break
            chosen.append(str(n))
        chosen = sorted(chosen[: len(names) - 1])
    test = [i for i, g in enumerate(groups) if g in chosen]
    train = [i for i, g in enumerate(groups) if g not in chosen]
    return _finish(f"{group_by}-holdout", clips, train, test, tuple(chosen), allow_speaker_overlap)


def group_kfold(clips: Sequence[Clip], *, folds: int | None = None, group_by: GroupBy = "speaker",
                seed: int = 0, allow_speaker_overlap: bool = False) -> list[Split]:
    """Leave-one-group-out (`folds=None`) or k folds of whole speakers/sessions.

    With k folds, groups are shuffled with `seed` and each goes to the fold with
    the fewest clips so far, so folds are balanced in clips, not only in groups.
    """
    groups = _groups(clips, group_by)
    names = sorted(set(groups))
    k = len(names) if folds is None else folds
    if len(names) < 2 or not 2 <= k <= len(names):
        raise SplitError(f"{k} folds need between 2 and {len(names)} {group_by}s "
                         f"(found {len(names)})")
    if k == len(names):
        assignment = [[n] for n in names]
    else:
        sizes = {n: groups.count(n) for n in names}
        assignment = [[] for _ in range(k)]
        totals = [0] * k
        rng = np.random.default_rng(seed)
        for n in sorted(rng.permutation(names), key=lambda n: -sizes[n]):
            j = int(np.argmin(totals))
            assignment[j].append(str(n))
            totals[j] += sizes[n]
    splits = []
    for j, held in enumerate(assignment, start=1):
        held_set = set(held)
        test = [i for i, g in enumerate(groups) if g in held_set]
        train = [i for i, g in enumerate(groups) if g not in held_set]
        splits.append(_finish(f"fold{j}-of-{k}", clips, train, test, tuple(sorted(held)),
                              allow_speaker_overlap))
    return splits


def speaker_overlap(clips: Sequence[Clip], train: Sequence[int], test: Sequence[int]) -> set[str]:
    """Speakers present in both parts (unknown speakers are not counted)."""
    train_speakers = {clips[i].speaker for i in train} - {None}
    test_speakers = {clips[i].speaker for i in test} - {None}
    return {s for s in train_speakers & test_speakers if s is not None}


def _groups(clips: Sequence[Clip], group_by: GroupBy) -> list[str]:
    values = [getattr(c, group_by) for c in clips]
    missing = sum(v is None for v in values)
    if missing:
        how = ("give each clip a session column in a CSV manifest" if group_by == "session" else
               "put each label's files in one sub-folder per speaker (label/speaker/clip.wav), "
               "read speakers from file names with --speaker-regex '(?P<speaker>...)', or use "
               "a CSV manifest with a speaker column")
        raise SplitError(f"{missing} of {len(clips)} clips have no {group_by}; a "
                         f"{group_by}-independent split needs every clip's {group_by}. To go on, "
                         f"{how}; or choose --protocol notebook (a random split that is not "
                         f"{group_by}-independent)")
    return values


def _finish(name: str, clips: Sequence[Clip], train: Sequence[int], test: Sequence[int],
            held_out: tuple[str, ...], allow_speaker_overlap: bool) -> Split:
    train_t = tuple(sorted(int(i) for i in train))
    test_t = tuple(sorted(int(i) for i in test))
    if not train_t or not test_t:
        raise SplitError(f"split {name!r} leaves an empty part (train {len(train_t)}, "
                         f"test {len(test_t)})")
    if any(c.speaker is None for c in clips):
        warnings.warn(
            f"split {name!r}: speakers are unknown for some clips, so it cannot be checked "
            "that no speaker is in both train and test; results may be speaker-dependent",
            SpeakerUnknownWarning, stacklevel=3,
        )
    overlap = speaker_overlap(clips, train_t, test_t)
    if overlap and not allow_speaker_overlap:
        raise SpeakerOverlapError(sorted(overlap))
    return Split(name, train_t, test_t, held_out)


def make_splits(protocol: str, clips: Sequence[Clip], *, seed: int = 0,
                group_by: GroupBy = "speaker", folds: int | None = None,
                test_fraction: float = 0.2, test_groups: Sequence[str] | None = None,
                allow_speaker_overlap: bool = False) -> list[Split]:
    """One entry point for every protocol: `notebook` and `holdout` give one split,
    `loso` gives one per fold."""
    if protocol == "notebook":
        return [notebook_split(clips, seed, allow_speaker_overlap=allow_speaker_overlap)]
    if protocol == "holdout":
        return [holdout_split(clips, test_fraction=test_fraction, seed=seed,
                              test_groups=test_groups, group_by=group_by,
                              allow_speaker_overlap=allow_speaker_overlap)]
    if protocol == "loso":
        return group_kfold(clips, folds=folds, group_by=group_by, seed=seed,
                           allow_speaker_overlap=allow_speaker_overlap)
    raise SplitError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def carve_validation(clips: Sequence[Clip], train: Sequence[int], fraction: float,
                     seed: int = 0) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """Split `train` into (train, validation, how): whole speakers when every training clip's
    speaker is known and there are at least two, otherwise a seeded random share."""
    subset = [clips[i] for i in train]
    speakers = {c.speaker for c in subset}
    if None not in speakers and len(speakers) >= 2:
        inner = holdout_split(subset, test_fraction=fraction, seed=seed)
        return (tuple(train[i] for i in inner.train), tuple(train[i] for i in inner.test),
                f"speakers {', '.join(inner.held_out)}")
    n_val = max(1, round(fraction * len(train)))
    if len(train) < 2:
        raise SplitError("need at least 2 training clips to carve a validation set")
    order = np.random.default_rng(seed).permutation(len(train))
    val = tuple(sorted(int(train[i]) for i in order[:n_val]))
    rest = tuple(sorted(int(train[i]) for i in order[n_val:]))
    return rest, val, f"random {n_val} clips (speakers unknown or fewer than 2)"
