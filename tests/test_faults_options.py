"""Fault suite, family 6: options. Every option is checked (finite, in range, bounded)
before anything is created; a run that failed is marked failed, the same command
resumes it, other settings or --overwrite start it over."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest

from emo_toolkit.cli.bench import main as bench_cli
from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.cli.training import data_cli, train_cli
from tests.conftest import tone, write_wav
from tests.faults import assert_clean_error, copy_run, invoke

TINY = ["--extractor", "hubert_tiny", "--untrained", "--workers", "0", "--epochs", "1",
        "--embed-dim", "8", "--conv-channels", "8", "--lstm-hidden", "8", "--quiet"]

TRAIN_OPTIONS = [
    ["--workers", "-1"], ["--workers", "1000"], ["--seed", "-5"], ["--seed", "1e3"],
    ["--speaker-regex", "("], ["--speaker-regex", "(?P<name>x)"], ["--device", "tpu"],
    ["--device", "cuda:x"], ["--kernel-sizes", "100001"], ["--kernel-sizes", "4"],
    ["--kernel-sizes", "3,a"], ["--kernel-sizes", "0"], ["--epochs", "0"],
    ["--batch-size", "0"], ["--max-batch", "0"], ["--folds", "1"], ["--lstm-layers", "99"],
    ["--embed-dim", "0"], ["--lstm-hidden", "100000"], ["--patience", "0"],
    ["--test-fraction", "1"], ["--val-fraction", "0"], ["--lstm-dropout", "1"],
]


@pytest.mark.parametrize("option", TRAIN_OPTIONS, ids=lambda o: " ".join(o))
def test_bad_train_options_are_usage_errors_before_anything_is_made(
        tmp_path: Path, demo_corpus: Path, option: list[str]):
    out, cache = tmp_path / "run", tmp_path / "cache"
    result = invoke(train_cli, [demo_corpus, "--out", out, "--cache", cache, *option])
    line = assert_clean_error(result, code=2)
    name = option[0].lstrip("-").replace("-", "_")
    assert option[0] in line or name in line or name.split("_")[0] in line, line
    assert not out.exists() and not cache.exists()


@pytest.mark.parametrize("args", [
    ["features", "--batch-seconds", "nan"], ["features", "--batch-seconds", "0"],
    ["features", "--device", "tpu"], ["features", "--workers", "-1"],
    ["demo", "--speakers", "0"], ["demo", "--seed", "-1"], ["split", "--seed", "-5"],
    ["split", "--speaker-regex", "["], ["split", "--test-fraction", "nan"],
], ids=lambda a: " ".join(a))
def test_bad_data_options_are_usage_errors(tmp_path: Path, demo_corpus: Path,
                                           args: list[str]):
    where = tmp_path / "new" if args[0] == "demo" else demo_corpus
    result = invoke(data_cli, [args[0], where, *args[1:], *(
        ["--cache", tmp_path / "cache"] if args[0] == "features" else [])])
    assert_clean_error(result, args[1], code=2)
    assert not (tmp_path / "new").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args", [
    ["--device", "tpu"], ["--input-sample-rate", "-8000"], ["--input-sample-rate", "0"],
    ["--input-sample-rate", "10000000"], ["--triton-max-batch", "0"],
], ids=lambda a: " ".join(a))
def test_bad_export_options_are_usage_errors(tmp_path: Path, tiny_run: Path, args: list[str]):
    result = invoke(export_cli, [tiny_run, "--out", tmp_path / "out", *args])
    assert_clean_error(result, args[0], code=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [
    ["--device", "tpu"], ["--lengths", "nan"], ["--lengths", "1e9"], ["--lengths", "-1"],
    ["--batch-sizes", "0"], ["--cell-budget", "inf"], ["--min-repeats", "0"],
], ids=lambda a: " ".join(a))
def test_bad_bench_options_are_usage_errors(tmp_path: Path, tiny_run: Path, args: list[str]):
    result = invoke(bench_cli, [tiny_run, "--out", tmp_path / "out", *args])
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


def test_predict_refuses_an_unknown_device(tmp_path: Path, tiny_run: Path):
    clip = write_wav(tmp_path / "c.wav", tone(0.5))
    assert_clean_error(invoke(predict_cli, [tiny_run, clip, "--device", "tpu"]), "--device",
                       code=2)


def _two_label_corpus(root: Path, broken_label: str | None = None) -> Path:
    for label in ("anger", "sadness"):
        for spk in ("spk1", "spk2", "spk3"):
            path = write_wav(root / label / spk / "clip.wav", tone(0.6, freq=200 + 50 * len(spk)))
            if label == broken_label:
                path.write_bytes(b"RIFF....WAVEjunk")
    return root


def test_a_failed_run_is_marked_failed_and_other_settings_start_it_over(tmp_path: Path):
    corpus = _two_label_corpus(tmp_path / "corpus", broken_label="sadness")
    out = tmp_path / "run"
    args = [corpus, "--out", out, "--cache", tmp_path / "cache", *TINY]
    assert_clean_error(invoke(train_cli, args), "at least 2 labels")
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "at least 2 labels" in status["error"]
    assert not (out / ".lock").exists()

    # the same command resumes (and fails the same way, not "already running")
    assert_clean_error(invoke(train_cli, args), "at least 2 labels")
    # after the corpus is mended, other settings start the failed run over
    _two_label_corpus(corpus)
    result = invoke(train_cli, [*args, "--lr", "0.002"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "status.json").read_text())["state"] == "complete"
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.002


def test_overwrite_replaces_a_run_and_nothing_else(tmp_path: Path, tiny_run: Path,
                                                  demo_corpus: Path):
    run = copy_run(tiny_run, tmp_path / "run")
    (run / "export").mkdir()
    (run / "export" / "stale.onnx").write_text("old")
    cache = json.loads((run / "config.json").read_text())["extractor"]["cache"]  # features ready
    args = [demo_corpus, "--out", run, "--cache", cache, *TINY]
    assert_clean_error(invoke(train_cli, args), "already holds a complete run", "--overwrite")
    result = invoke(train_cli, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (run / "export").exists()
    assert json.loads((run / "config.json").read_text())["head"]["embed_dim"] == 8

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert_clean_error(invoke(train_cli, [demo_corpus, "--out", mine, *TINY, "--overwrite"]),
                       "is not a run directory")
    assert (mine / "notes.txt").read_text() == "keep me"


def _commands(group: click.Command) -> list[click.Command]:
    subs = getattr(group, "commands", {})
    return [group, *(c for sub in subs.values() for c in _commands(sub))]


def test_every_float_option_of_every_cli_refuses_nan_and_infinities():
    """The family, not an example: any float option (click's FloatRange lets NaN through)."""
    seen = 0
    for cli in (train_cli, data_cli, predict_cli, export_cli, bench_cli):
        for command in _commands(cli):
            for param in command.params:
                if isinstance(param.type, click.types.FloatParamType):
                    seen += 1
                    for value in ("nan", "NaN", "inf", "-inf", "1e999"):
                        with pytest.raises(click.BadParameter):
                            param.type.convert(value, param, None)
    assert seen >= 8  # --window, --lr, --dropout, --batch-seconds, --cell-budget, ...


def test_api_values_are_checked_and_named(tiny_onnx: Path, tmp_path: Path):
    from emo_toolkit.runtime.errors import ArtifactError, NonFiniteAudioError
    from emo_toolkit.runtime.recognizer import Recognizer
    from tests.conftest import onnx_without_metadata

    r = Recognizer.open(tiny_onnx)
    x = (0.1 * np.sin(np.arange(16_000) / 7)).astype(np.float32)
    want = r.predict(x, 16_000).probabilities
    for rate in (16_000.0, np.int64(16_000), np.float32(16_000)):  # whole numbers of Hz
        assert r.predict(x, rate).probabilities == want
    for rate in ("16000", b"16000", True, 16_000.5, float("nan"), None):
        with pytest.raises(ValueError, match="sample_rate must be a whole number"):
            r.predict(x, rate)
    for window in (float("inf"), float("nan"), -1.0, 0.0):
        with pytest.raises(ValueError, match="window"):
            r.predict_recording(x, 16_000, window=window)
    for one in ("a.wav", Path("a.wav")):
        with pytest.raises(TypeError, match="paths must be an iterable of paths"):
            list(r.predict_files(one))
    for bad in (np.nan, np.inf, 1e30):  # never a non-finite or absurd input, on any path
        batch = np.zeros((2, 16_000), np.float32)
        batch[1, 5] = bad
        with pytest.raises((NonFiniteAudioError, ValueError)):
            r.logits(batch)

    import onnx

    for name, raw in (("list", "[1, 2]"), ("string", '"x"'),
                      ("max-below-min", json.dumps({**json.loads(
                          onnx.load(str(tiny_onnx)).metadata_props[0].value),
                          "max_samples": 10}))):
        model = onnx.load(str(onnx_without_metadata(tiny_onnx, tmp_path / f"{name}.onnx")))
        entry = model.metadata_props.add()
        entry.key, entry.value = "emo_toolkit", raw
        onnx.save(model, str(tmp_path / f"{name}.onnx"))
        with pytest.raises(ArtifactError, match="metadata"):
            Recognizer.open(tmp_path / f"{name}.onnx")


def test_a_run_works_from_any_folder_and_when_moved_with_its_corpus(
        tmp_path: Path, tiny_run: Path, demo_corpus: Path, monkeypatch):
    """dataset.json records the corpus absolutely and relative to the run; when it is gone,
    one line names the paths tried and the option that gives it."""
    import shutil

    from emo_toolkit.train.rundir import RunDir, RunLoadError

    home = tmp_path / "home"
    shutil.copytree(demo_corpus, home / "corpus")
    cache = json.loads((tiny_run / "config.json").read_text())["extractor"]["cache"]
    monkeypatch.chdir(home)  # trained with relative paths, as users type them
    result = invoke(train_cli, ["corpus", "--out", "run", "--cache", cache, *TINY,
                                "--test-fraction", "0.25"])
    assert result.exit_code == 0, result.output

    def test_files(run: Path, corpus: Path | None = None) -> list[Path]:
        r = RunDir(run)
        config = r.config()
        return [f for f, _ in r.test_clips(r.default_split(), config, corpus)]

    expected = test_files(home / "run")
    assert expected and all(f.is_file() for f in expected)
    monkeypatch.chdir(tmp_path)  # elsewhere: "corpus" no longer resolves from here
    assert [f.resolve() for f in test_files(home / "run")] == [f.resolve() for f in expected]

    moved = tmp_path / "moved"  # run and corpus moved together
    shutil.move(home, moved)
    files = test_files(moved / "run")
    assert all(f.is_file() and moved in f.parents for f in files) and len(files) == len(expected)

    shutil.move(moved / "corpus", tmp_path / "archive")  # the corpus alone moved away
    with pytest.raises(RunLoadError, match="--corpus") as e:
        test_files(moved / "run")
    assert str(home / "corpus") in str(e.value) and "moved/run/../corpus" in str(e.value)
    assert all(f.is_file() for f in test_files(moved / "run", tmp_path / "archive"))
    assert_clean_error(invoke(export_cli, [moved / "run", "--precision", "int8", "--out",
                                           tmp_path / "x"]), "--corpus", str(home / "corpus"))
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


@pytest.mark.parametrize(("args", "exported", "skipped"), [
    (["--format", "all", "--ragged"], ["onnx", "torchscript", "pt2", "aoti"],
     ["executorch: it takes whole clips only, not --ragged"]),
    (["--format", "all", "--precision", "int8", "--ragged"], ["onnx"],
     ["executorch: it takes whole clips only", "torchscript: int8 is not available"]),
    (["--format", "all", "--precision", "bf16"], ["torchscript", "pt2", "aoti"],
     ["onnx: bf16 is not available", "executorch: bf16 is not available"]),
])
def test_format_all_skips_with_a_line_what_cannot_take_an_option(
        tiny_run: Path, monkeypatch, args: list[str], exported: list[str], skipped: list[str]):
    """What --format all hands the exporter, and the line each skipped format gets (the
    export itself is tested elsewhere: here it only records what it was asked)."""
    from emo_toolkit.export import exporter

    asked = {}
    monkeypatch.setattr(exporter, "export_formats",
                        lambda run, fmts, **kw: asked.update(fmts=fmts, layout=kw["layout"]))
    result = invoke(export_cli, [tiny_run, *args])
    assert result.exit_code == 0, result.output
    assert asked["fmts"] == exported
    assert asked["layout"] == ("padded" if "--ragged" in args else "clips")
    for line in skipped:
        assert f"skipping {line}" in result.output


def test_executorch_alone_with_ragged_is_refused(tiny_run: Path, tmp_path: Path):
    result = invoke(export_cli, [tiny_run, "--format", "executorch", "--ragged", "--out",
                                 tmp_path / "x"])
    assert result.exit_code != 0 and "without --ragged" in result.output
