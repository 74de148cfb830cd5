"""Helpers of the fault suite (tests/test_faults_*.py): run a command as a user would and
check the rule every CLI keeps: one line naming the file or option and the reason,
exit status 1 (usage errors 2), never a Python traceback, never a hang."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tests.process import run_measured

BIN = Path(sys.executable).parent


def invoke(cli: Any, args: Sequence[str | Path], env: dict[str, str] | None = None) -> Result:
    """Run a click command in this process, exceptions caught as the real entry point would."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, f"expected one error line, got:\n{output}"
    return lines[0]


def _one_error_line(output: str, needles: Sequence[str]) -> str:
    assert "Traceback" not in output, output
    line = error_line(output)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def assert_clean_error(result: Result, *needles: str, code: int = 1) -> str:
    """Exit `code`, no traceback, one `Error:` line holding every needle; returns that line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}")
    assert result.exit_code == code, f"exit {result.exit_code}:\n{result.output}"
    return _one_error_line(result.output, needles)


def _limits(address_space_gb: float | None = None,
            file_size_bytes: int | None = None) -> Callable[[], None]:
    """A preexec function setting the child's memory and file-size limits."""
    def apply() -> None:
        if address_space_gb is not None:
            size = int(address_space_gb * (1 << 30))
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if file_size_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_bytes, file_size_bytes))
    return apply


def command(name: str, *args: str | Path, env: dict[str, str] | None = None,
            timeout: float = 120, address_space_gb: float | None = None,
            file_size_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run a console script in a fresh process (with optional memory or file-size limits);
    a hang fails the test after `timeout` seconds."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **(env or {})}
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True,
                          errors="backslashreplace", timeout=timeout, env=full_env,
                          preexec_fn=_limits(address_space_gb, file_size_bytes))


def peak_rss_of(name: str, *args: str | Path, timeout: float = 300
                ) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a console script and measure its own peak resident memory (MB)."""
    m = run_measured([BIN / name, *args], env={"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"},
                     timeout=timeout)
    return m.proc, m.peak_rss_mb


def python(code: str, *, timeout: float = 120, address_space_gb: float | None = None
           ) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh process under an optional address-space limit."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_limits(address_space_gb),
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def assert_clean_exit(proc: subprocess.CompletedProcess[str], *needles: str,
                      code: int = 1) -> str:
    """The subprocess form of `assert_clean_error`."""
    assert proc.returncode == code, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return _one_error_line(proc.stderr, needles)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Strict JSON per line: NaN or Infinity would fail here."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in JSON output")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]


def copy_run(run: Path, dest: Path) -> Path:
    """A private copy of a run directory (its feature cache stays shared)."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("export", "bench"))
    return dest


def tree(root: Path, ignore: Callable[[Path], bool] = lambda p: False) -> dict[str, bytes]:
    """Every file under `root` (hidden ones included) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not ignore(p)}


def sidecar_metadata(artifact: Path) -> dict[str, Any]:
    """An artifact's sidecar without its digest, after checking the digest is the file's."""
    from emo_toolkit.runtime.formats.base import DIGEST_KEY, sidecar_path
    from emo_toolkit.runtime.io import sha256_file

    sidecar = json.loads(sidecar_path(artifact).read_text())
    assert sidecar.pop(DIGEST_KEY) == sha256_file(artifact)
    return sidecar


TRAIN_ONLY = ("torch", "torchaudio", "onnx", "onnxscript", "safetensors", "matplotlib")
"""What the [train] extra brings and a runtime install lacks."""


def without_train_stack(folder: Path) -> dict[str, str]:
    """Environment variables under which Python (and every process it starts, Ray's workers
    too) cannot import a TRAIN_ONLY package: a sitecustomize in `folder` refuses them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"BLOCKED = {TRAIN_ONLY!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)\n"
        "sys.meta_path.insert(0, Block())\n")
    return {"PYTHONPATH": str(folder)}


def in_child(fn: Callable[..., Any], *args: Any, timeout: float = 900) -> Any:
    """`fn(*args)` in a fresh interpreter (multiprocessing's spawn), its result returned and
    its exception raised here: for OpenVINO, whose CPU plugin's threads and kernels should
    not live on in the test process after the test. `fn` must be a module-level function."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply_async(fn, args).get(timeout)
