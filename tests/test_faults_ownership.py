"""Family: never delete what we did not make. A command deletes or replaces only files it
can prove it made: a run directory by its marker and schema, temporary files by our naming
and a dead writer's PID (in that run only), emo-bench's work folder by its marker. Anything
else is refused with one line, and the user's files stay as they were, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emo_toolkit.cli.bench import main as bench_cli
from emo_toolkit.cli.training import train_cli
from emo_toolkit.train import rundir as rd
from tests.faults import assert_clean_error, copy_run, invoke, tree

TINY = ["--extractor", "hubert_tiny", "--untrained", "--workers", "0", "--epochs", "1",
        "--embed-dim", "8", "--conv-channels", "8", "--lstm-hidden", "8", "--quiet"]


def dead_pid() -> int:
    """The PID of a process that has ended (reaped, so not running)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def our_temp_name(target: str, pid: int) -> str:
    """A name as atomic_open gives its temporary files: .NAME.PID.RANDOM.tmp"""
    return f".{target}.{pid}.k3j9x0q1.tmp"


def users_folder(root: Path, pid: int) -> Path:
    """A folder of the user's that looks like a damaged run: a config.json, other files and
    subfolders, hidden files named like our temporaries (a dead PID), and a .lock."""
    root.mkdir()
    (root / "config.json").write_text('{"mine": true}')
    (root / "status.json").write_text("not json")
    (root / "notes.txt").write_text("keep me")
    (root / "splits").mkdir()
    (root / "splits" / "data.bin").write_bytes(os.urandom(64))
    (root / our_temp_name("config.json", pid)).write_text("hidden, but the user's")
    (root / "deep").mkdir()
    (root / "deep" / our_temp_name("x.json", pid)).write_text("also the user's")
    (root / ".lock").write_text("the user's lock file")
    return root


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_looks_like_a_damaged_run_is_refused_and_left_untouched(
        tmp_path: Path, demo_corpus: Path, overwrite: bool):
    user = users_folder(tmp_path / "mine", dead_pid())
    before = tree(user)
    args = [demo_corpus, "--out", user, *TINY, *(["--overwrite"] if overwrite else [])]
    assert_clean_error(invoke(train_cli, args), "is not a run directory", rd.MARKER,
                       "nothing was changed")
    assert tree(user) == before  # every file, hidden ones included, byte for byte


def test_overwrite_clears_only_what_the_run_made(tmp_path: Path, tiny_run: Path,
                                                 demo_corpus: Path):
    run = copy_run(tiny_run, tmp_path / "run")
    dead, live = dead_pid(), os.getpid()
    (run / "my-notes.txt").write_text("keep me")
    (run / "mine").mkdir()
    (run / "mine" / "figure.png").write_bytes(b"\x89PNG user data")
    kept_temp = run / our_temp_name("metrics.json", live)     # a writer still running
    kept_temp.write_text("in flight")
    swept = [run / our_temp_name("labels.json", dead),           # killed writers: ours
             run / "splits" / our_temp_name("history.json", dead)]
    for tmp in swept:
        tmp.write_text("left by a kill")
    not_ours = run / ".notes.tmp"                                # hidden, but not our naming
    not_ours.write_text("the user's")
    users = {p: p.read_bytes() for p in (run / "my-notes.txt", run / "mine" / "figure.png",
                                         kept_temp, not_ours)}
    cache = json.loads((run / "config.json").read_text())["extractor"]["cache"]
    result = invoke(train_cli, [demo_corpus, "--out", run, "--cache", cache, *TINY,
                                "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "status.json").read_text())["state"] == "complete"
    assert json.loads((run / "config.json").read_text())["head"]["embed_dim"] == 8
    assert {p: p.read_bytes() for p in users} == users
    assert not any(tmp.exists() for tmp in swept)
    assert json.loads((run / rd.MARKER).read_text()) == rd.MARKER_CONTENT


def test_a_run_without_its_marker_is_not_cleared(tmp_path: Path, tiny_run: Path,
                                                 demo_corpus: Path):
    """A run directory whose marker is gone or altered cannot be proven ours."""
    for name, marker in (("missing", None), ("altered", '{"kind": "something else"}'),
                         ("a folder", "dir")):
        run = copy_run(tiny_run, tmp_path / name)
        (run / rd.MARKER).unlink()
        if marker == "dir":
            (run / rd.MARKER).mkdir()
        elif marker is not None:
            (run / rd.MARKER).write_text(marker)
        before = tree(run)
        assert_clean_error(invoke(train_cli, [demo_corpus, "--out", run, *TINY, "--overwrite"]),
                           "is not a run directory")
        assert tree(run) == before, name


BENCH_QUICK = ["--backends", "eager", "--precision", "fp32", "--lengths", "0.5",
               "--batch-sizes", "1", "--eval-limit", "1"]


def test_bench_never_replaces_a_work_folder_it_did_not_make(tmp_path: Path, tiny_run: Path):
    out = tmp_path / "out"
    (out / "work").mkdir(parents=True)
    (out / "work" / "results.csv").write_text("the user's")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("the user's")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "work").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / ".emo-bench-work").write_text("")  # a marker behind a link is not enough
    for folder in (out, linked):
        before = tree(tmp_path)
        result = invoke(bench_cli, [tiny_run, "--out", folder, *BENCH_QUICK])
        assert_clean_error(result, "work", "was not made by emo-bench", "nothing was changed")
        assert tree(tmp_path) == before
        assert not (folder / "report.json").exists()


def test_bench_replaces_only_reports_it_wrote(tmp_path: Path, tiny_run: Path):
    """A report file of the user's name in --out: refused without --force, and refused with
    it (no marker proves it ours); emo-bench's own reports: --force replaces them."""
    user = tmp_path / "user"
    user.mkdir()
    (user / "report.md").write_text("the user's notes")
    (user / ".emo-bench-out").symlink_to(user / "report.md")  # a link is no marker
    before = tree(tmp_path)
    assert_clean_error(invoke(bench_cli, [tiny_run, "--out", user, *BENCH_QUICK]),
                       "report.md exists; pass --force")
    assert_clean_error(invoke(bench_cli, [tiny_run, "--out", user, *BENCH_QUICK, "--force"]),
                       "report.md", "not written by emo-bench", "nothing was changed")
    assert tree(tmp_path) == before
    ours = tmp_path / "ours"
    assert invoke(bench_cli, [tiny_run, "--out", ours, *BENCH_QUICK]).exit_code == 0
    assert_clean_error(invoke(bench_cli, [tiny_run, "--out", ours, *BENCH_QUICK]),
                       "report.json exists; pass --force")
    again = invoke(bench_cli, [tiny_run, "--out", ours, *BENCH_QUICK, "--force"])
    assert again.exit_code == 0, again.output


def test_a_folder_with_only_our_kind_of_temporary_keeps_it(tmp_path: Path, tiny_run: Path,
                                                           demo_corpus: Path):
    """Only a marked run is swept: before the marker, nothing proves such a file is ours."""
    out = tmp_path / "out"
    out.mkdir()
    stray = out / our_temp_name("notes.json", dead_pid())
    stray.write_text("maybe the user's")
    cache = json.loads((tiny_run / "config.json").read_text())["extractor"]["cache"]
    result = invoke(train_cli, [demo_corpus, "--out", out, "--cache", cache, *TINY])
    assert result.exit_code == 0, result.output
    assert stray.read_text() == "maybe the user's"
    assert json.loads((out / rd.MARKER).read_text()) == rd.MARKER_CONTENT
