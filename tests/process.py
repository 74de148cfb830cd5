"""One command in a process of its own, measured: wall time and that command's own peak RSS.

The command runs under a small launcher process, which reports the peak from its
children's resource usage. Run directly from a large parent, the figure would be wrong:
Linux carries the high-water mark of the forked parent's memory across exec, so a child
of a process holding 500 MB reports at least 500 MB.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = """\
import resource, subprocess, sys, time
result, timeout, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.perf_counter()
try:
    code = subprocess.run(cmd, timeout=float(timeout) if timeout else None).returncode
except subprocess.TimeoutExpired:
    sys.exit(124)
wall = time.perf_counter() - start
with open(result, "w") as fh:
    fh.write(f"{wall} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass(frozen=True)
class Measured:
    proc: subprocess.CompletedProcess[str]
    wall_s: float
    peak_rss_mb: float


def run_measured(cmd: Sequence[str | Path], env: dict[str, str] | None = None,
                 timeout: float | None = None) -> Measured:
    """Run `cmd` with `env` added to this environment; subprocess.TimeoutExpired (the
    command killed) after `timeout` seconds."""
    args = [str(c) for c in cmd]
    with tempfile.TemporaryDirectory(prefix="emo-measure-") as tmp:
        result = Path(tmp) / "result"
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(result),
                               "" if timeout is None else str(timeout), *args],
                              capture_output=True, text=True, errors="backslashreplace",
                              env={**os.environ, **(env or {})})
        if not result.exists():
            if proc.returncode == 124:
                raise subprocess.TimeoutExpired(args, timeout or 0)
            raise OSError(f"{args[0]}: could not be run ({proc.stderr.strip()[-500:]})")
        wall, peak_kb = result.read_text().split()
    done = subprocess.CompletedProcess(args, proc.returncode, proc.stdout, proc.stderr)
    return Measured(done, float(wall), int(peak_kb) / 1024)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a run starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
