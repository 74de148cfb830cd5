"""Fault suite, family 3: files that are not what they seem. Reads never hang on a FIFO
or read a device; writes go only to regular files or new paths (never replacing a
device, FIFO or folder); unusable output folders and full disks are one clean line."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.cli.training import data_cli, train_cli
from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.data.scan import validate_dataset
from emo_toolkit.runtime import audio
from emo_toolkit.runtime.io import OutputError, atomic_write_text
from tests.conftest import tone, write_wav
from tests.faults import (
    assert_clean_error,
    assert_clean_exit,
    command,
    copy_run,
    invoke,
)


def small_corpus(root: Path) -> Path:
    for label in ("anger", "sadness"):
        for spk in ("spk1", "spk2"):
            write_wav(root / label / spk / f"{label}.wav", tone(0.6))
    return root


def test_a_file_that_vanishes_between_listing_and_decoding_is_skipped(tmp_path: Path):
    ds = load_dataset(small_corpus(tmp_path / "c"))
    gone = ds.clips[0].path
    gone.unlink()
    summary = validate_dataset(ds, progress=False)
    assert [(s.path, s.reason) for s in summary.skipped] == [(gone, "unreadable")]
    assert len(summary.infos) == 3


def test_an_io_error_while_reading_is_skipped_not_fatal(tmp_path: Path, monkeypatch):
    ds = load_dataset(small_corpus(tmp_path / "c"))
    broken = ds.clips[1].path
    real = audio._check_riff_truncation

    def failing(path: Path) -> None:
        if path == broken:
            raise OSError(errno.EIO, "Input/output error", str(path))
        real(path)

    monkeypatch.setattr(audio, "_check_riff_truncation", failing)
    summary = validate_dataset(ds, progress=False)
    assert [(s.path, s.reason) for s in summary.skipped] == [(broken, "unreadable")]
    assert "Input/output error" in summary.skipped[0].message


@pytest.mark.parametrize(("name", "reason"), [
    ("labels.json", "not a regular file"), ("splits/speaker-holdout/head.json",
                                            "not a regular file"),
    ("status.json", "not a regular file"), ("config.json", "no config.json")])
def test_a_fifo_in_a_run_directory_never_hangs(tmp_path: Path, tiny_run: Path, name: str,
                                               reason: str):
    run = copy_run(tiny_run, tmp_path / "run")
    (run / name).unlink()
    os.mkfifo(run / name)
    clip = write_wav(tmp_path / "clip.wav", tone(0.5))
    proc = command("emo-predict", run, clip, timeout=120)
    assert_clean_exit(proc, Path(name).name, reason)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_run_file_linked_to_a_device_is_refused(tmp_path: Path, tiny_run: Path, device: str):
    run = copy_run(tiny_run, tmp_path / "run")
    (run / "labels.json").unlink()
    (run / "labels.json").symlink_to(device)
    clip = write_wav(tmp_path / "clip.wav", tone(0.5))
    result = invoke(predict_cli, [run, clip])
    assert_clean_error(result, "labels.json", "not a regular file")


def _device_node(path: Path) -> Path:
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_a_report_never_replaces_what_is_not_a_regular_file(tmp_path: Path, kind: str):
    corpus = small_corpus(tmp_path / "c")
    target = tmp_path / "report.json"
    if kind == "device":
        _device_node(target)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    before = target.lstat()
    result = invoke(data_cli, ["scan", corpus, "--report", target])
    if kind == "folder":  # click's own check of the option comes first
        assert_clean_error(result, str(target), "is a directory", code=2)
    else:
        assert_clean_error(result, str(target), "refusing to replace it")
    after = target.lstat()
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_symlinked_report_updates_the_file_it_names(tmp_path: Path):
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_report_under_a_regular_file_is_one_clean_line(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c")
    (tmp_path / "file").write_text("x")
    result = invoke(data_cli, ["scan", corpus, "--report", tmp_path / "file" / "r.json"])
    assert_clean_error(result, "file")


def test_a_full_disk_is_one_clean_line_and_leaves_nothing(tmp_path: Path):
    corpus = small_corpus(tmp_path / "c")
    out = tmp_path / "out"
    out.mkdir()
    proc = command("emo-data", "scan", corpus, "--report", out / "report.json",
                   file_size_bytes=200)
    line = assert_clean_exit(proc, "report.json")
    assert "too large" in line.lower()
    assert list(out.iterdir()) == []


def test_training_output_and_cache_folders_that_cannot_be_made(tmp_path: Path,
                                                               demo_corpus: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    tiny = ["--extractor", "hubert_tiny", "--untrained", "--workers", "0", "--epochs", "1"]
    result = invoke(train_cli, [demo_corpus, "--out", blocker / "run", *tiny,
                                "--cache", tmp_path / "cache"])
    assert_clean_error(result, "file")
    result = invoke(train_cli, [demo_corpus, "--out", tmp_path / "run", *tiny,
                                "--cache", blocker / "cache"])
    assert_clean_error(result, "cache")
    assert blocker.read_text() == "x"


def test_atomic_writes_refuse_devices_directly(tmp_path: Path):
    node = _device_node(tmp_path / "node")
    with pytest.raises(OutputError, match="not a regular file"):
        atomic_write_text(node, "x")
    assert stat.S_ISCHR(node.lstat().st_mode)
