"""The console scripts, run as a user runs them (click's runner, real files)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from emo_toolkit.cli.training import data_cli
from tests.conftest import write_wav


def run(cli, args: list[str]):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_demo_then_scan_with_report(tmp_path: Path):
    out = tmp_path / "demo"
    result = run(data_cli, ["demo", str(out), "--speakers", "2", "--clips-per-emotion", "1"])
    assert result.exit_code == 0, result.output
    assert "10 clips, 2 speakers" in result.output and "smoke runs only" in result.output
    (out / "anger" / "spk01" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    report = tmp_path / "report.json"
    result = run(data_cli, ["scan", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "clips    10 usable, 1 skipped" in result.output
    assert "[corrupt]" in result.output and "broken.wav" in result.output
    assert json.loads(report.read_text())["skipped"][0]["reason"] == "corrupt"


def test_split_refuses_overlap_and_writes_file_lists(tmp_path: Path, demo_corpus: Path):
    result = CliRunner().invoke(data_cli, ["split", str(demo_corpus), "--protocol", "notebook"])
    assert result.exit_code == 1
    assert "6 speaker(s) would be in both train and test" in result.output

    out = tmp_path / "splits.json"
    result = run(data_cli, ["split", str(demo_corpus), "--protocol", "loso", "--out", str(out)])
    assert result.exit_code == 0, result.output
    splits = json.loads(out.read_text())["splits"]
    assert [s["held_out"] for s in splits] == [[f"spk0{i}"] for i in range(1, 7)]
    assert all(p.split("/")[1] == s["held_out"][0] for s in splits for p in s["test"])

    result = run(data_cli, ["split", str(demo_corpus), "--test-speakers", "spk01,spk02"])
    assert "speaker-holdout train 40 test 20 held out: spk01, spk02" in " ".join(
        result.output.split())


def test_split_warns_when_speakers_are_unknown(tmp_path: Path):
    for label in ("anger", "sadness"):
        for i in range(3):
            write_wav(tmp_path / label / f"{i}.wav")
    result = CliRunner().invoke(data_cli, ["split", str(tmp_path), "--protocol", "notebook"])
    assert result.exit_code == 0, result.output
    assert "warning: split 'notebook': speakers are unknown" in result.output
    result = CliRunner().invoke(data_cli, ["split", str(tmp_path)])
    assert result.exit_code == 1 and "6 of 6 clips have no speaker" in result.output


def test_bad_dataset_is_one_clear_error(tmp_path: Path):
    result = CliRunner().invoke(data_cli, ["scan", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path}: no audio files " \
        "(.aif, .aiff, .flac, .mp3, .oga, .ogg, .opus, .wav)"
