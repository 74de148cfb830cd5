"""Family: one bad file never stops the others. Every per-file failure, whatever the
exception's type, is a row (emo-predict) or a skip with a reason (scan, training), and the
good files still get theirs."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.cli.training import data_cli
from emo_toolkit.data import scan
from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.data.scan import validate_dataset
from emo_toolkit.runtime import recognizer
from tests.conftest import tone, write_wav
from tests.faults import invoke, json_lines


def riff(fmt_fields: tuple[int, ...], data: bytes, data_size: int | None = None,
         fmt_size: int = 16) -> bytes:
    """A WAV file from its fields: (format, channels, rate, byte rate, block align, bits)."""
    fmt = struct.pack("<HHIIHH", *fmt_fields)
    size = len(data) if data_size is None else data_size
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt + b"data" +
            struct.pack("<I", size) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# Headers whose fields contradict each other (each one 44 to 144 bytes).
CONTRADICTIONS = {
    "block-align-over-data": riff((1, 1, 16000, 32000, 60000, 16), b"\0" * 10, 100),
    "zero-channels": riff((1, 0, 16000, 32000, 2, 16), b"\0" * 100),
    "zero-rate": riff((1, 1, 0, 0, 2, 16), b"\0" * 100),
    "zero-block-align-huge-data": riff((1, 1, 16000, 32000, 0, 16), b"\0" * 100, 0xFFFFFFF0),
    "fmt-size-past-the-end": riff((1, 1, 16000, 32000, 2, 16), b"\0" * 100, fmt_size=0x7FFFFFF0),
    "bits-zero": riff((1, 1, 16000, 32000, 2, 0), b"\0" * 100),
}


def corpus_with(root: Path, bad: dict[str, bytes]) -> tuple[list[Path], list[Path]]:
    """Two label folders of good clips, and the bad files among them."""
    good = [write_wav(root / label / f"{label}_{i}.wav", tone(0.6, freq=200 + 40 * i))
            for label in ("anger", "sadness") for i in range(2)]
    bad_paths = []
    for name, data in bad.items():
        path = root / "anger" / f"{name}.wav"
        path.write_bytes(data)
        bad_paths.append(path)
    return good, bad_paths


def test_contradicting_wav_headers_are_rows_and_skips(tmp_path: Path, tiny_onnx: Path):
    good, bad = corpus_with(tmp_path / "c", CONTRADICTIONS)
    result = invoke(predict_cli, [tiny_onnx, tmp_path / "c"])
    assert result.exit_code == 1, result.output
    rows = {Path(r["file"]).name: r for r in json_lines(result.stdout)}
    assert set(rows) == {p.name for p in good + bad}
    assert all("label" in rows[p.name] for p in good)
    for p in bad:
        assert rows[p.name]["error"] in ("corrupt", "truncated", "unsupported-rate"), rows[p.name]
        assert not re.search(r"\w+Error:", rows[p.name]["message"])  # a reason, not a bug
    summary = validate_dataset(load_dataset(tmp_path / "c"), progress=False)
    assert {s.path.name for s in summary.skipped} == {p.name for p in bad}
    assert len(summary.infos) == len(good)
    scanned = invoke(data_cli, ["scan", tmp_path / "c"])
    assert scanned.exit_code == 0, scanned.output
    assert all(p.name in scanned.output for p in bad)


def test_a_path_the_os_refuses_is_one_row(tmp_path: Path, tiny_onnx: Path):
    good = write_wav(tmp_path / "good.wav", tone(0.6))
    too_long = tmp_path / ("x" * 300 + ".wav")
    result = invoke(predict_cli, [tiny_onnx, good, too_long, good])
    assert result.exit_code == 1, result.output
    rows = json_lines(result.stdout)
    assert [("label" in r) for r in rows] == [True, False, True]
    assert rows[1]["error"] == "unreadable" and "File name too long" in rows[1]["message"]


@pytest.mark.parametrize("error", [ZeroDivisionError("division by zero"), KeyError("x"),
                                   MemoryError(), RuntimeError("a library bug")])
def test_any_exception_in_one_file_is_that_files_error(tmp_path: Path, tiny_onnx: Path,
                                                       monkeypatch, error: Exception):
    """Whatever a file raises on its way (a bug of ours or of a library), only that file fails."""
    good, _ = corpus_with(tmp_path / "c", {})
    victim = good[1]
    real_validate, real_check = scan.validate_audio, recognizer.check_min_samples

    def validate(path, *args, **kwargs):
        if Path(path) == victim:
            raise error
        return real_validate(path, *args, **kwargs)

    def check_min_samples(name, *args, **kwargs):  # runs on each segment of each file
        if Path(name) == victim:
            raise error
        return real_check(name, *args, **kwargs)

    monkeypatch.setattr(scan, "validate_audio", validate)
    summary = validate_dataset(load_dataset(tmp_path / "c"), progress=False)
    assert [(s.path, s.reason) for s in summary.skipped] == [(victim, "failed")]
    assert type(error).__name__ in summary.skipped[0].message
    assert len(summary.infos) == len(good) - 1

    monkeypatch.setattr(recognizer, "check_min_samples", check_min_samples)
    result = invoke(predict_cli, [tiny_onnx, *good])
    assert result.exit_code == 1, result.output
    rows = json_lines(result.stdout)
    assert [r.get("error") for r in rows] == [None, "failed", None, None]
    assert type(error).__name__ in rows[1]["message"]
