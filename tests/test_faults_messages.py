"""Family: messages. Every one-line error says what a user needs: the exact figure, why
files were skipped, the file a full disk stopped; a scan with nothing usable fails."""

from __future__ import annotations

import errno
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.cli.training import data_cli
from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.runtime import audio
from emo_toolkit.runtime.audio import MAX_SECONDS, load_audio
from emo_toolkit.runtime.errors import DatasetError, TooLongAudioError
from tests.conftest import tone, write_wav
from tests.faults import assert_clean_error, invoke


def test_a_clip_just_over_the_limit_says_by_how_much(tmp_path: Path):
    path = write_wav(tmp_path / "long.wav", np.zeros(int((MAX_SECONDS + 0.02) * 8000),
                                                       np.float32), 8000)
    with pytest.raises(TooLongAudioError, match=rf"60\.02 s is longer than the {MAX_SECONDS:g} s"):
        load_audio(path)


def test_no_usable_clips_says_why(tmp_path: Path):
    for name in ("a.wav", "b.wav"):
        write_wav(tmp_path / "flat" / name, tone(0.6))
    with pytest.raises(DatasetError, match=r"2 file\(s\) skipped: 2 no-label \(e\.g\. a\.wav: "
                                           "file is not inside a label folder\\)"):
        load_dataset(tmp_path / "flat", layout="folders")


def test_a_scan_with_no_usable_clip_fails_naming_the_reasons(tmp_path: Path):
    for label in ("anger", "sadness"):
        (tmp_path / "c" / label).mkdir(parents=True)
        (tmp_path / "c" / label / "x.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot audio")
    result = invoke(data_cli, ["scan", tmp_path / "c"])
    assert_clean_error(result, "no usable clips", "2 file(s) skipped: 2 corrupt")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs: a real ENOSPC (needs mount rights: root in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_during_export_names_the_file_and_leaves_nothing(small_disk: Path,
                                                                     tiny_run: Path):
    result = invoke(export_cli, [tiny_run, "--format", "onnx", "--out", small_disk])
    line = assert_clean_error(result, "No space left on device")
    assert str(small_disk / "model.onnx") in line
    assert list(small_disk.iterdir()) == []


class _FailingDisk(io.FileIO):
    """A file whose reads fail with EIO from byte `after` on, as on a failing disk or a
    network share that went away (libsndfile then says "System error." or "malformed")."""

    def __init__(self, path: Path, after: int):
        super().__init__(path, "rb")
        self.after = after

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.tell() >= self.after:
            raise OSError(errno.EIO, "Input/output error")
        return super().readinto(buffer)


@pytest.mark.parametrize("after", [0, 20, 30_000])
def test_a_read_error_is_that_file_s_error_with_the_os_reason(tmp_path: Path, tiny_onnx: Path,
                                                              monkeypatch, capfd, after: int):
    """In the header, in the fmt chunk, or partway through the samples: the file gets an
    'unreadable' row naming the OS's reason (not 'corrupt', not a traceback from
    soundfile's callback), and the other files their results."""
    for name in ("anger/a.wav", "anger/bad.wav", "sadness/c.wav"):
        write_wav(tmp_path / "in" / name, tone(2.0))
    real = audio._open_raw
    monkeypatch.setattr(audio, "_open_raw", lambda path: _FailingDisk(path, after)
                        if path.name == "bad.wav" else real(path))
    result = invoke(predict_cli, [tiny_onnx, tmp_path / "in", "-q"])
    rows = {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 1 and set(rows) == {"a.wav", "bad.wav", "c.wav"}
    assert rows["bad.wav"]["error"] == "unreadable", rows["bad.wav"]
    assert "Input/output error" in rows["bad.wav"]["message"]
    assert "label" in rows["a.wav"] and "label" in rows["c.wav"]
    scan = invoke(data_cli, ["scan", tmp_path / "in"])
    assert scan.exit_code == 0 and "bad.wav" in scan.output, scan.output
    assert "Input/output error" in scan.output and "unreadable" in scan.output
    captured = capfd.readouterr()
    for text in (result.output, scan.output, captured.err, captured.out):
        assert "Traceback" not in text and "Exception ignored" not in text, text
