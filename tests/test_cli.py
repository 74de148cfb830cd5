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


def test_every_option_comes_from_the_config_it_sets():
    """The options of emo-predict's subcommands and emo-serve are generated from the
    dataclasses they set: one definition, so the same name has the same help, default and
    type everywhere (ModelSpec and WindowOption in all four; ScoringOptions' batch size in
    files and ray), and each config's setting is an option of the commands that set it."""
    from dataclasses import fields

    from emo_toolkit.cli.models import ModelSpec, WindowOption
    from emo_toolkit.cli.predict import main as predict
    from emo_toolkit.cli.serve import main as serve
    from emo_toolkit.cli.streaming import StreamOptions
    from emo_toolkit.scoring.archive import ScoringOptions
    from emo_toolkit.serve.options import Cluster, Endpoint, ServeOptions
    from emo_toolkit.serve.protocol import Limits

    commands = {"files": predict.commands["files"], "ray": predict.commands["ray"],
                "stream": predict.commands["stream"], "serve": serve}
    configs = {"files": (ModelSpec, WindowOption), "ray": (ModelSpec, WindowOption,
                                                           ScoringOptions),
               "stream": (ModelSpec, WindowOption, StreamOptions),
               "serve": (ModelSpec, WindowOption, ServeOptions, Cluster, Endpoint, Limits)}
    for name, command in commands.items():
        params = {p.name: p for p in command.params}
        for config in configs[name]:
            for f in fields(config):
                if "help" not in f.metadata:
                    continue  # not a setting: the command fills it in
                option = params[f.metadata.get("option", f.name)]
                assert option.help == f.metadata["help"], (name, f.name)
                default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) \
                    else f.default
                assert option.default == default, (name, f.name)
    files = {p.name for p in commands["files"].params}
    assert {"batch_size", "segments"} <= files and not {"workers", "hop", "merge"} & files


def test_subcommands_and_the_older_spellings_run_the_same(tiny_onnx: Path, tmp_path: Path):
    """`emo-predict stream` and `emo-predict MODEL --stream` (and `files`, and the bare
    MODEL) print the same lines; the older spelling says which subcommand it is."""
    from tests.faults import command

    clip = write_wav(tmp_path / "clip.wav", np_speech(3.0))
    new = command("emo-predict", "stream", tiny_onnx, clip, "--window", "1")
    old = command("emo-predict", tiny_onnx, "--stream", clip, "--window", "1")
    assert new.returncode == old.returncode == 0, old.stderr
    assert new.stdout == old.stdout and len(new.stdout.splitlines()) >= 3
    assert "note: `emo-predict MODEL ... --stream` is `emo-predict stream MODEL ...` now" in \
        old.stderr and "note:" not in new.stderr
    files = command("emo-predict", "files", tiny_onnx, clip)
    bare = command("emo-predict", tiny_onnx, clip)
    assert files.stdout == bare.stdout and "note:" not in bare.stderr
    for sub in ("files", "ray", "stream"):
        shown = command("emo-predict", sub, "--help")
        assert shown.returncode == 0 and f"Usage: emo-predict {sub} [OPTIONS] MODEL" in \
            shown.stdout


def np_speech(seconds: float):
    from emo_toolkit.data.demo_corpus import speech_like

    return speech_like(seconds, 4)
