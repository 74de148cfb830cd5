"""Family: messages. Every one-line error says what a user needs: the exact figure, why
files were skipped, the file a full disk stopped; a scan with nothing usable fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.cli.training import data_cli
from emo_toolkit.data.datasets import load_dataset
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
