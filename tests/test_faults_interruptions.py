"""Fault suite, family 5: interruptions. The process is killed (SIGKILL) at every write
point in turn (emo_toolkit.runtime.io.write_point: the temporary file written, not yet renamed),
then the same command runs again; it must end in exactly the files of an
uninterrupted run, with no temporary file, lock or checkpoint left over."""

from __future__ import annotations

import json
import os
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from emo_toolkit.data.demo_corpus import DemoCorpusConfig, make_demo_corpus
from emo_toolkit.runtime.io import FAULT_ENV, FAULT_TRACE_ENV
from tests.faults import command, tree

TINY = ["--extractor", "hubert_tiny", "--untrained", "--epochs", "2", "--embed-dim", "8",
        "--conv-channels", "8", "--lstm-hidden", "8", "--workers", "0", "--test-fraction", "0.5",
        "--quiet"]
TIMED = {"status.json": ("started", "finished")}  # the only fields allowed to differ


def _normalised(files: dict[str, bytes]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, data in files.items():
        if Path(name).name in TIMED:
            obj = json.loads(data)
            out[name] = {k: v for k, v in obj.items() if k not in TIMED[Path(name).name]}
        elif Path(name).name == "config.json":  # holds the (per-case) cache folder
            obj = json.loads(data)
            obj["extractor"].pop("cache")
            out[name] = obj
        elif Path(name).name == "dataset.json":  # where the corpus is, seen from the run
            obj = json.loads(data)
            obj.pop("corpus_from_run")
            out[name] = obj
        else:
            out[name] = data
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two labels, two speakers, one clip each: the fewest write points a run can have."""
    root = make_demo_corpus(tmp_path_factory.mktemp("kill") / "corpus",
                            DemoCorpusConfig(seed=5, speakers=2, clips_per_speaker_emotion=1),
                            progress=False)
    for folder in ("disgust", "fear", "happiness"):
        shutil.rmtree(root / folder)
    return root


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[dict[str, object], dict[str, bytes], list[str]]:
    """An uninterrupted run: its files, its cache, and the list of its write points."""
    work = tmp_path_factory.mktemp("reference")
    trace = work / "trace.txt"
    proc = command("emo-train", corpus, "--out", work / "run", "--cache", work / "cache", *TINY,
                   env={FAULT_TRACE_ENV: str(trace)})
    assert proc.returncode == 0, proc.stderr
    points = [line.split("\t", 1)[1] for line in trace.read_text().splitlines()]
    return (_normalised(tree(work / "run")), tree(work / "cache"), points)


def _kill_then_resume(corpus: Path, work: Path, k: int) -> str | None:
    """None when point k behaves; otherwise what went wrong."""
    args = [corpus, "--out", work / "run", "--cache", work / "cache", *TINY]
    killed = command("emo-train", *args, env={FAULT_ENV: str(k)})
    if killed.returncode != -signal.SIGKILL:
        return f"not killed (exit {killed.returncode}): {killed.stderr[-500:]}"
    resumed = command("emo-train", *args)
    if resumed.returncode != 0 or "Traceback" in resumed.stderr:
        return f"rerun failed (exit {resumed.returncode}): {resumed.stderr[-500:]}"
    return None


def test_a_kill_at_every_write_point_then_a_rerun_gives_the_uninterrupted_run(
        corpus: Path, reference: tuple[dict[str, object], dict[str, bytes], list[str]],
        tmp_path: Path):
    run_files, cache_files, points = reference
    assert len(points) >= 20  # config, status, versions, ..., cache entries, checkpoints, ...
    assert any(p.endswith(".npy") for p in points) and any("checkpoint" in p for p in points)
    with ThreadPoolExecutor(max_workers=2) as pool:  # each case in processes of its own
        outcomes = list(pool.map(lambda k: _kill_then_resume(corpus, tmp_path / f"k{k}", k),
                                 range(1, len(points) + 1)))
    failures = [f"point {k} ({points[k - 1]}): {why}"
                for k, why in enumerate(outcomes, start=1) if why]
    assert not failures, "\n".join(failures)
    for k in range(1, len(points) + 1):
        work = tmp_path / f"k{k}"
        got = _normalised(tree(work / "run"))
        assert got.keys() == run_files.keys(), f"point {k} ({points[k - 1]}): files differ"
        differing = [name for name in got if got[name] != run_files[name]]
        assert not differing, f"point {k} ({points[k - 1]}): {differing} differ"
        assert tree(work / "cache") == cache_files, f"point {k}: the cache differs"


def test_a_kill_between_artifact_and_sidecar_is_repaired_by_the_same_export(tmp_path: Path,
                                                                             tiny_run: Path):
    out = tmp_path / "export"
    trace = tmp_path / "trace.txt"
    proc = command("emo-export", tiny_run, "--out", out, env={FAULT_TRACE_ENV: str(trace)})
    assert proc.returncode == 0, proc.stderr
    points = [line.split("\t", 1)[1] for line in trace.read_text().splitlines()]
    assert [Path(p).name for p in points] == ["model.onnx", "model.onnx.json"]
    for k in (1, 2):
        case = tmp_path / f"k{k}"
        killed = command("emo-export", tiny_run, "--out", case, env={FAULT_ENV: str(k)})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        rerun = command("emo-export", tiny_run, "--out", case)
        assert rerun.returncode == 0, rerun.stderr
        assert sorted(p.name for p in case.iterdir()) == ["model.onnx", "model.onnx.json"]
        meta = json.loads((case / "model.onnx.json").read_text())
        assert meta["parity"]["gate"]["passed"]


def test_a_killed_report_or_demo_corpus_is_made_whole_by_the_same_command(tmp_path: Path):
    corpus = tmp_path / "corpus"
    args = ["demo", corpus, "--speakers", "1", "--clips-per-emotion", "1", "--quiet"]
    killed = command("emo-data", *args, env={FAULT_ENV: "1"})
    assert killed.returncode == -signal.SIGKILL
    assert not corpus.exists() and any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert command("emo-data", *args).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]

    report = tmp_path / "report.json"
    killed = command("emo-data", "scan", corpus, "--report", report, env={FAULT_ENV: "1"})
    assert killed.returncode == -signal.SIGKILL and not report.exists()
    assert command("emo-data", "scan", corpus, "--report", report).returncode == 0
    assert json.loads(report.read_text())["num_clips"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "report.json"]


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_leave_no_temporary_file_and_keep_the_old_output(
        signame: str, tiny_run: Path, tiny_onnx: Path, tmp_path: Path):
    """What docker, systemd, `timeout` and a closed terminal send: the command unwinds as for
    Ctrl-C (exit 128 + the signal), its temporary files go, the previous output stays."""
    from emo_toolkit.runtime.io import FAULT_SIGNAL_ENV
    from tests.conftest import tone, write_wav

    signum = signal.Signals[signame]
    env = {FAULT_ENV: "1", FAULT_SIGNAL_ENV: signame}
    clips = [write_wav(tmp_path / f"c{i}.wav", tone(0.6, freq=200 + 50 * i)) for i in range(3)]
    out = tmp_path / "rows"
    out.mkdir()
    (out / "rows.csv").write_text("yesterday's rows\n")
    proc = command("emo-predict", tiny_onnx, *clips, "-o", out / "rows.csv", env=env)
    assert proc.returncode == 128 + signum, proc.stderr
    assert f"terminated ({signame})" in proc.stderr and "Traceback" not in proc.stderr
    assert tree(out) == {"rows.csv": b"yesterday's rows\n"}  # no .tmp beside it

    exports = tmp_path / "exports"
    proc = command("emo-export", tiny_run, "--format", "torchscript", "--out", exports,
                   env=env)
    assert proc.returncode == 128 + signum, proc.stderr
    assert f"terminated ({signame})" in proc.stderr and "Traceback" not in proc.stderr
    assert tree(exports) == {}, "the export left files behind"


def test_closed_standard_streams(tiny_onnx: Path, tmp_path: Path):
    """A closed stderr drops messages but not the result; a closed stdout is one clean
    line (the results could not be written), and -o still works; --quiet prints only results
    and errors; a --timeline that cannot be drawn keeps the -o rows."""
    import subprocess

    from tests.conftest import tone, write_wav
    from tests.faults import BIN

    clip = write_wav(tmp_path / "c.wav", tone(0.6))
    predict = [str(BIN / "emo-predict"), str(tiny_onnx), str(clip)]
    no_err = subprocess.run(predict, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, timeout=120, preexec_fn=lambda: os.close(2))
    assert no_err.returncode == 0 and '"label"' in no_err.stdout
    no_out = subprocess.run(predict, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=120, preexec_fn=lambda: os.close(1))
    assert no_out.returncode == 1
    assert no_out.stderr.strip().splitlines()[-1] == \
        "Error: standard output is closed; write the results with -o FILE"
    to_file = subprocess.run([*predict, "-o", str(tmp_path / "r.csv")],
                             stderr=subprocess.PIPE, text=True, timeout=120,
                             preexec_fn=lambda: os.close(1))
    assert to_file.returncode == 0 and (tmp_path / "r.csv").read_text().count("\n") == 2

    quiet = command("emo-predict", "-q", tiny_onnx, clip, "-o", tmp_path / "q.csv")
    assert quiet.returncode == 0 and quiet.stdout == ""
    assert [line for line in quiet.stderr.splitlines() if "UNTRAINED" not in line] == []

    drawn = command("emo-predict", tiny_onnx, clip, "-o", tmp_path / "t.csv", "--timeline",
                    clip / "t.png")  # under a regular file: the drawing fails
    assert drawn.returncode == 1 and "t.png" in drawn.stderr.splitlines()[-1], drawn.stderr
    assert (tmp_path / "t.csv").read_text().count("\n") == 2, drawn.stderr
