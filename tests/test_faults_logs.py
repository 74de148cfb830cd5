"""Fault suite, family 9 and the rule for every CLI: progress is plain lines when stderr is
not a terminal (none with TQDM_DISABLE or --quiet), every CLI has --version and a
quick --help, and an unexpected internal error is one line pointing at its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emo_toolkit.cli.training import data_cli
from emo_toolkit.runtime import progress
from tests.conftest import tone, write_wav
from tests.faults import BIN, command, error_line, invoke

CLIS = ["emo-data", "emo-train", "emo-predict", "emo-export", "emo-bench", "emo-serve"]


def _corpus(root: Path) -> Path:
    for label in ("anger", "sadness"):
        for i in range(3):
            write_wav(root / label / f"spk{i}" / "a.wav", tone(0.3))
    return root


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tmp_path: Path):
    corpus = _corpus(tmp_path / "c")
    env = {"TQDM_DISABLE": ""}
    proc = command("emo-data", "scan", corpus, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    assert "checking audio: 6/6 clip (100%)" in proc.stderr
    quiet = command("emo-data", "scan", corpus, "--quiet", env=env)
    assert quiet.returncode == 0 and "checking audio" not in quiet.stderr
    assert quiet.stdout == proc.stdout
    disabled = command("emo-data", "scan", corpus, env={"TQDM_DISABLE": "1"})
    assert disabled.returncode == 0 and "checking audio" not in disabled.stderr


def test_plain_progress_lines_are_periodic(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    bar = progress.progress_bar(3, "work", "item")
    for _ in range(3):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "work: 1/3 item (33%)", "work: 2/3 item (67%)", "work: 3/3 item (100%)",
        "work: 3/3 item (100%)"]


@pytest.mark.parametrize("cli", CLIS)
def test_every_cli_has_version_and_help(cli: str):
    version = subprocess.run([str(BIN / cli), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "emo-toolkit" in version.stdout
    helped = subprocess.run([str(BIN / cli), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--quiet" in helped.stdout


def test_help_and_option_checks_do_not_load_torch():
    """--help is quick: no torch (nor Ray, for emo-serve and emo-predict --ray)."""
    code = ("import sys\nfrom click.testing import CliRunner\n"
            "from emo_toolkit.cli.training import train_cli, data_cli\n"
            "from emo_toolkit.cli.predict import main as predict_cli\n"
            "from emo_toolkit.cli.export import main as e\n"
            "from emo_toolkit.cli.bench import main as b\n"
            "from emo_toolkit.cli.serve import main as s\n"
            "for cli in (train_cli, data_cli, predict_cli, e, b, s):\n"
            "    assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
            "r = CliRunner().invoke(train_cli, ['.', '--out', 'x', '--lr', 'nan'])\n"
            "assert r.exit_code == 2\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchaudio',\n"
            "                                                           'ray')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_an_internal_error_is_one_line_with_its_traceback_in_a_file(tmp_path: Path,
                                                                    monkeypatch):
    import emo_toolkit.cli.training

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(emo_toolkit.cli.training, "scan_dataset", broken)
    corpus = _corpus(tmp_path / "c")
    result = invoke(data_cli, ["scan", corpus])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = error_line(result.output)
    assert "internal error (ZeroDivisionError: a bug)" in line and "--debug" in line
    report = Path(line.split("the full traceback is in ")[1].split(". Rerun")[0])
    assert "Traceback" in report.read_text() and "a bug" in report.read_text()
    report.unlink()

    debug = invoke(data_cli, ["--debug", "scan", corpus])
    assert isinstance(debug.exception, ZeroDivisionError)


def test_ctrl_c_is_one_line(tmp_path: Path, monkeypatch):
    import emo_toolkit.cli.training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(emo_toolkit.cli.training, "scan_dataset", interrupted)
    result = invoke(data_cli, ["scan", _corpus(tmp_path / "c")])
    assert result.exit_code == 130 and result.output.strip() == "interrupted"
