"""Family: text that breaks formats. Manifests are parsed by the csv module's own line
handling; labels follow one rule everywhere (NFC, no control characters or line breaks);
every writer round-trips what it writes, file names that are not UTF-8 included."""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from pathlib import Path

import pytest

from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.data.datasets import load_dataset, read_manifest
from emo_toolkit.runtime.checks import label_text
from tests.conftest import tone, write_wav
from tests.faults import assert_clean_error, copy_run, invoke, json_lines


def test_manifest_cells_may_hold_newlines_and_unicode_line_separators(tmp_path: Path):
    for name in ("a", "b", "c", "d", "e"):
        write_wav(tmp_path / f"{name}.wav", tone(0.6))
    (tmp_path / "manifest.csv").write_text(
        'path,label,speaker\n'
        '"a.wav",angry,"spk\n1"\n'          # a quoted newline inside a cell
        'b.wav,sad,spk\u20282\n'            # U+2028 LINE SEPARATOR: a character
        'c.wav,angry,spk\x853\n'            # U+0085 NEXT LINE: a character
        '"d.wav","an\ngry",spk4\n'          # a label with a newline: refused
        'e.wav,sa\u2029d,spk5\n',           # U+2029 PARAGRAPH SEPARATOR in a label
        encoding="utf-8")
    ds = read_manifest(tmp_path / "manifest.csv")
    assert [(c.path.name, c.label, c.speaker) for c in ds.clips] == [
        ("a.wav", "angry", "spk\n1"), ("b.wav", "sad", "spk\u20282"),
        ("c.wav", "angry", "spk\x853")]
    assert [(s.path.name, s.reason) for s in ds.skipped] == [("d.wav", "bad-label"),
                                                            ("e.wav", "bad-label")]
    assert "line 6" in ds.skipped[0].message  # the record's line, after the quoted newline


def test_labels_that_differ_only_in_unicode_normalisation_are_one_class(tmp_path: Path):
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    for folder, spk in ((nfc, "s1"), (nfd, "s2"), ("sad", "s1"), ("sad ", "s2")):
        write_wav(tmp_path / "c" / folder / spk / "x.wav", tone(0.6))
    ds = load_dataset(tmp_path / "c")
    assert sorted(set(c.label for c in ds.clips)) == [nfc, "sad"]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\nc/{nfc}/s1/x.wav,{nfd}\nc/sad/s1/x.wav, sad\n",
                        encoding="utf-8")
    assert [c.label for c in read_manifest(manifest).clips] == [nfc, "sad"]
    for bad in ("", "  ", "a\tb", "a\rb", "line\u2028break", "\x00"):
        with pytest.raises(ValueError, match="label"):
            label_text(bad)


def test_a_run_or_artifact_with_a_broken_label_is_refused(tmp_path: Path, tiny_run: Path):
    run = copy_run(tiny_run, tmp_path / "run")
    labels = json.loads((run / "labels.json").read_text())
    (run / "labels.json").write_text(json.dumps([labels[0] + "\nshift", *labels[1:]]))
    assert_clean_error(invoke(export_cli, [run, "--format", "triton", "--out", tmp_path / "t"]),
                       "labels.json", "line break")
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").rglob("labels.txt"))


def test_every_writer_round_trips_odd_file_names(tmp_path: Path, tiny_onnx: Path):
    """Names with commas, quotes, newlines and bytes that are not UTF-8, through JSON lines
    and CSV: read back, each row names its file (escaped where it is not UTF-8)."""
    folder = tmp_path / "clips"
    names = ['a,b "c".wav', "new\nline.wav", "tab\there.wav",
             os.fsdecode(b"latin1-\xe9t\xe9.wav")]
    for i, name in enumerate(names):  # soundfile cannot name a file that is not UTF-8
        made = write_wav(folder / f"{i}.wav", tone(0.6, freq=200 + 30 * i))
        os.rename(os.fsencode(made), os.fsencode(folder / name))
    escaped = {n.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
               for n in names}
    assert "latin1-\\xe9t\\xe9.wav" in escaped
    table = tmp_path / "rows.csv"
    out = invoke(predict_cli, [tiny_onnx, folder, "-o", table])
    assert out.exit_code == 0, out.output
    with table.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {Path(r["file"]).name for r in rows} == escaped and all(r["label"] for r in rows)
    lines = tmp_path / "rows.jsonl"
    assert invoke(predict_cli, [tiny_onnx, folder, "-o", lines]).exit_code == 0
    assert {Path(r["file"]).name for r in json_lines(lines.read_text(encoding="utf-8"))} \
        == escaped
