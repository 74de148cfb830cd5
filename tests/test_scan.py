"""Checking a whole corpus: bad files are skipped with their reason, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.data.scan import format_summary, validate_dataset, write_report
from tests.conftest import tone, write_wav


def corpus_with_bad_files(root: Path) -> Path:
    write_wav(root / "anger" / "spk1" / "good1.wav", tone(1.0))
    write_wav(root / "anger" / "spk2" / "good2.wav", tone(2.0, rate=44_100), rate=44_100)
    write_wav(root / "sadness" / "spk1" / "good3.flac", tone(0.5))
    (root / "sadness" / "spk2").mkdir(parents=True)
    (root / "sadness" / "spk2" / "empty.wav").write_bytes(b"")
    (root / "sadness" / "spk2" / "garbage.wav").write_bytes(np.random.default_rng(1).bytes(999))
    write_wav(root / "sadness" / "spk2" / "short.wav", tone(1.0)[:100])
    nan = tone(0.5)
    nan[5] = np.nan
    write_wav(root / "anger" / "spk1" / "nan.wav", nan, subtype="FLOAT")
    full = write_wav(root / "anger" / "spk1" / "cut.wav", tone(1.0)).read_bytes()
    (root / "anger" / "spk1" / "cut.wav").write_bytes(full[:1000])
    return root


def test_bad_files_are_skipped_and_reported(tmp_path: Path):
    root = corpus_with_bad_files(tmp_path / "corpus")
    summary = validate_dataset(load_dataset(root), progress=False)
    assert sorted(i.clip.path.name for i in summary.infos) == ["good1.wav", "good2.wav",
                                                               "good3.flac"]
    assert sorted((s.path.name, s.reason) for s in summary.skipped) == [
        ("cut.wav", "truncated"), ("empty.wav", "empty-file"), ("garbage.wav", "corrupt"),
        ("nan.wav", "non-finite"), ("short.wav", "too-short"),
    ]
    assert summary.counts() == {"angry": {"spk1": 1, "spk2": 1}, "sad": {"spk1": 1}}
    assert summary.durations()["all"]["total"] == 3.5
    assert summary.durations()["angry"]["max"] == 2.0

    report = json.loads(write_report(summary, tmp_path / "out" / "report.json").read_text())
    assert report["num_clips"] == 3 and report["labels"] == ["angry", "sad"]
    assert report["sample_rates"] == {"16000": 2, "44100": 1}
    assert {s["reason"] for s in report["skipped"]} == {
        "truncated", "empty-file", "corrupt", "non-finite", "too-short"}
    assert all(s["path"].startswith(str(root)) and s["message"] for s in report["skipped"])

    text = format_summary(summary)
    assert "clips    3 usable, 5 skipped" in text
    assert "[too-short]" in text and "short.wav: 100 samples" in text
    assert "angry" in text and "spk2" in text


def test_summary_of_demo_corpus(demo_corpus: Path):
    summary = validate_dataset(load_dataset(demo_corpus), progress=False)
    text = format_summary(summary)
    assert "layout   folders" in text and "speakers 6\n" in text
    assert "skipped files: none" in text
    assert all(row == {f"spk0{i}": 2 for i in range(1, 7)} for row in summary.counts().values())
