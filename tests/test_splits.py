"""Splits: the notebook protocol, speaker holdout, group k-fold, and the overlap rule."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from emo_toolkit.data.datasets import Clip
from emo_toolkit.data.splits import group_kfold, holdout_split, make_splits, notebook_split
from emo_toolkit.runtime.errors import SpeakerOverlapError, SpeakerUnknownWarning, SplitError


def clips(speakers: int = 6, per_speaker: int = 10, sessions: int | None = None,
          known: bool = True) -> list[Clip]:
    out = []
    for s in range(speakers):
        for i in range(per_speaker):
            out.append(Clip(
                Path(f"/data/spk{s}/{i}.wav"),
                ("angry", "sad", "happy")[i % 3],
                f"spk{s}" if known else None,
                f"ses{s % sessions}" if sessions else None,
            ))
    return out


def test_notebook_split_is_five_equal_parts_holding_out_the_fifth():
    data = clips(known=False)
    with pytest.warns(SpeakerUnknownWarning, match="cannot be checked"):
        split = notebook_split(data, seed=7)
    assert len(split.test) == 12 and len(split.train) == 48
    assert set(split.train).isdisjoint(split.test)
    assert set(split.train) | set(split.test) == set(range(60))
    with pytest.warns(SpeakerUnknownWarning):
        again, other = notebook_split(data, seed=7), notebook_split(data, seed=8)
    assert again == split and other.test != split.test


def test_notebook_split_refuses_known_speaker_overlap_unless_allowed():
    data = clips()
    with pytest.raises(SpeakerOverlapError, match=r"6 speaker\(s\) would be in both train and "
                                                  r"test: spk0, .*--allow-speaker-overlap"):
        notebook_split(data, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # speakers are known: no warning either
        split = notebook_split(data, seed=0, allow_speaker_overlap=True)
    assert len(split.test) == 12


def test_holdout_keeps_speakers_apart_and_reaches_the_fraction():
    data = clips(speakers=10, per_speaker=10)
    split = holdout_split(data, test_fraction=0.25, seed=1)
    train_speakers = {data[i].speaker for i in split.train}
    test_speakers = {data[i].speaker for i in split.test}
    assert train_speakers.isdisjoint(test_speakers)
    assert set(split.held_out) == test_speakers
    assert len(split.test) == 30  # whole speakers of 10 clips until >= 25 %
    assert holdout_split(data, test_fraction=0.25, seed=1) == split


def test_holdout_with_named_speakers_and_errors():
    data = clips()
    split = holdout_split(data, test_groups=["spk2", "spk4"])
    assert split.held_out == ("spk2", "spk4") and len(split.test) == 20
    with pytest.raises(SplitError, match=r"unknown speaker.*spk9"):
        holdout_split(data, test_groups=["spk9"])
    with pytest.raises(SplitError, match="leaves nothing to train on"):
        holdout_split(data, test_groups=[f"spk{i}" for i in range(6)])
    with pytest.raises(SplitError, match="60 of 60 clips have no speaker"):
        holdout_split(clips(known=False))
    with pytest.raises(SplitError, match="at least 2 speakers"):
        holdout_split(clips(speakers=1))


def test_leave_one_speaker_out_puts_each_speaker_in_test_once():
    data = clips()
    folds = group_kfold(data)
    assert [f.held_out for f in folds] == [(f"spk{i}",) for i in range(6)]
    for f in folds:
        assert {data[i].speaker for i in f.test} == set(f.held_out)
        assert set(f.held_out).isdisjoint({data[i].speaker for i in f.train})
    assert sorted(i for f in folds for i in f.test) == list(range(60))


def test_k_folds_of_speakers_are_balanced():
    data = clips(speakers=6, per_speaker=10)
    folds = group_kfold(data, folds=3, seed=5)
    assert [len(f.test) for f in folds] == [20, 20, 20]
    assert sorted(s for f in folds for s in f.held_out) == [f"spk{i}" for i in range(6)]
    with pytest.raises(SplitError, match="7 folds need between 2 and 6 speakers"):
        group_kfold(data, folds=7)


def test_session_folds_refuse_a_speaker_in_two_sessions():
    data = clips(speakers=4, sessions=2)  # spk0, spk2 in ses0; spk1, spk3 in ses1
    folds = group_kfold(data, group_by="session")
    assert [f.held_out for f in folds] == [("ses0",), ("ses1",)]
    mixed = [*data, Clip(Path("/data/x.wav"), "sad", "spk0", "ses1")]
    with pytest.raises(SpeakerOverlapError, match="spk0"):
        group_kfold(mixed, group_by="session")
    assert len(group_kfold(mixed, group_by="session", allow_speaker_overlap=True)) == 2


def test_make_splits_dispatches_and_serialises():
    data = clips()
    assert len(make_splits("loso", data)) == 6
    [split] = make_splits("holdout", data, test_groups=["spk1"])
    out = split.to_json(data, Path("/data"))
    assert out["held_out"] == ["spk1"] and "spk1/0.wav" in out["test"]
    assert len(out["train"]) == 50
    with pytest.raises(SplitError, match="unknown protocol"):
        make_splits("random", data)
