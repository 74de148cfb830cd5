"""Fault suite, families 7 and 8: data and the feature cache. File names need not be
UTF-8; a dataset that cannot train says so before any feature is computed; a bad
manifest or an empty folder is one clean line; damaged cache entries are computed
again; a second emo-train on the same --out is refused."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.cli.training import data_cli, train_cli
from emo_toolkit.train.rundir import RunDir
from tests.conftest import tone, write_wav
from tests.faults import assert_clean_error, command, invoke, json_lines

TINY = ["--extractor", "hubert_tiny", "--untrained", "--workers", "0", "--epochs", "1",
        "--embed-dim", "8", "--conv-channels", "8", "--lstm-hidden", "8", "--quiet"]


def _latin1(root: Path) -> Path:
    """A corpus whose label folder and file names are Latin-1 bytes, not UTF-8."""
    base = os.fsencode(root)
    for label in (b"col\xe8re", b"tristesse"):
        for spk in (b"spk1", b"spk2"):
            folder = os.path.join(base, label, spk)
            os.makedirs(folder, exist_ok=True)
            buf = io.BytesIO()  # soundfile itself cannot open such names
            sf.write(buf, tone(0.6), 16_000, format="WAV", subtype="PCM_16")
            with open(os.path.join(folder, b"\xe9t\xe9.wav"), "wb") as fh:
                fh.write(buf.getvalue())
    return root


def test_non_utf8_names_keep_their_class_and_their_audio(tmp_path: Path):
    corpus = _latin1(tmp_path / "c")
    result = invoke(data_cli, ["scan", corpus, "--report", tmp_path / "r.json"])
    assert result.exit_code == 0, result.output
    assert "clips    4 usable, 0 skipped" in result.output
    assert "col\\xe8re" in result.output  # the label, readable and distinct
    proc = command("emo-data", "scan", corpus)  # a real stdout, not a test capture
    assert proc.returncode == 0 and "col\\xe8re" in proc.stdout, proc.stderr


def test_predict_takes_non_utf8_file_names(tmp_path: Path, tiny_run: Path):
    corpus = _latin1(tmp_path / "c")
    proc = command("emo-predict", tiny_run, corpus)
    assert proc.returncode == 0, proc.stderr
    rows = json_lines(proc.stdout)
    assert len(rows) == 4 and all("label" in r for r in rows)


def test_a_one_class_dataset_stops_before_any_feature_is_computed(tmp_path: Path):
    for spk in ("spk1", "spk2"):
        write_wav(tmp_path / "c" / "anger" / spk / "a.wav", tone(0.6))
    cache = tmp_path / "cache"
    result = invoke(train_cli, [tmp_path / "c", "--out", tmp_path / "run", "--cache", cache,
                                *TINY])
    assert_clean_error(result, "at least 2 labels")
    assert not list(cache.rglob("*.npy"))


def test_a_manifest_with_an_enormous_field_is_one_clean_line(tmp_path: Path):
    write_wav(tmp_path / "a.wav", tone(0.5))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.wav," + "x" * 200_000 + "\n")
    assert_clean_error(invoke(data_cli, ["scan", manifest]), "m.csv", "CSV")
    manifest.write_text("path," + "y" * 200_000 + "\na.wav,angry\n")
    assert_clean_error(invoke(data_cli, ["scan", manifest]), "m.csv")


def test_an_empty_folder_given_to_predict_is_a_failure(tmp_path: Path, tiny_run: Path):
    (tmp_path / "empty").mkdir()
    good = write_wav(tmp_path / "good.wav", tone(0.5))
    result = invoke(predict_cli, [tiny_run, tmp_path / "empty", good])
    assert result.exit_code == 1 and "Traceback" not in result.output
    rows = json_lines(result.stdout)
    assert rows[0]["error"] == "no-audio" and "label" in rows[1]
    assert "1 of 2 file(s) failed" in result.output


def test_a_corpus_without_speakers_says_how_to_go_on(tmp_path: Path):
    for label in ("anger", "sadness"):
        for i in range(3):
            write_wav(tmp_path / "c" / label / f"{i}.wav", tone(0.5))
    line = assert_clean_error(invoke(train_cli, [tmp_path / "c", "--out", tmp_path / "run",
                                                 "--cache", tmp_path / "cache", *TINY]),
                              "6 of 6 clips have no speaker")
    for hint in ("--speaker-regex", "speaker column", "--protocol notebook"):
        assert hint in line


def _features(corpus: Path, cache: Path) -> str:
    result = invoke(data_cli, ["features", corpus, "--extractor", "hubert_tiny", "--untrained",
                               "--cache", cache, "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_damaged_cache_entries_are_computed_again(tmp_path: Path):
    corpus = tmp_path / "c"
    for i, label in enumerate(("anger", "sadness")):
        write_wav(corpus / label / "spk1" / "a.wav", tone(0.5, freq=300 + 10 * i))
        write_wav(corpus / label / "spk2" / "b.wav", tone(0.7, freq=400 + 10 * i))
    cache = tmp_path / "cache"
    assert "4 computed, 0 reused" in _features(corpus, cache)
    entries = sorted(cache.rglob("*.npy"))
    good = {p: p.read_bytes() for p in entries}
    entries[0].write_bytes(good[entries[0]][: len(good[entries[0]]) // 2])       # truncated
    np.save(entries[1], np.zeros((2, 3), np.float16))                           # wrong shape
    bad = np.load(entries[2]).copy()
    bad[0, 0, 0] = np.nan
    np.save(entries[2], bad)                                                     # NaN
    assert "3 computed, 1 reused" in _features(corpus, cache)
    assert {p: p.read_bytes() for p in entries} == good


def test_a_second_train_on_the_same_out_is_refused(tmp_path: Path, demo_corpus: Path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        result = invoke(train_cli, [demo_corpus, "--out", run.root, "--cache",
                                    tmp_path / "cache", *TINY])
        assert_clean_error(result, "is in use by process", str(os.getpid()))
    assert list(run.root.iterdir()) == []
