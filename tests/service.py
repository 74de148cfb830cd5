"""emo-serve as the tests run it: one service and its local Ray cluster per test session
(the `service` fixture of conftest.py), and a small HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults import BIN, without_train_stack
from tests.process import free_port

MAX_DURATION_S = 90
MAX_BODY_MB = 4
REQUEST_TIMEOUT_S = 6
RAY_TOKEN = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
"""The cluster's token (Ray's token authentication), shared with the tests' drivers."""


@dataclass
class Service:
    url: str
    host: str
    port: int
    cluster: str
    metrics: str
    proc: subprocess.Popen
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = None, timeout: float = 60) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")

    def post(self, path: str, body: bytes, content_type: str = "audio/wav") -> tuple[int, Any]:
        return self.request("POST", path, body, content_type)


@contextmanager
def running_service(model: Path, folder: Path) -> Iterator[Service]:
    """`emo-serve` with 2 replicas on its own local 2-CPU Ray cluster, where no process can
    import the training stack (serving an .onnx needs no torch); stopped with SIGTERM at the
    end, which must end it cleanly and leave no process of its cluster."""
    log, torch_free = folder / "emo-serve.log", without_train_stack(folder / "blocker")
    port, metrics = free_port(), free_port()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(BIN / "emo-serve"), str(model), "--port", str(port), "--num-cpus", "2",
             "--replicas", "2", "--cpus-per-replica", "0.5", "--threads", "1",
             "--metrics-port", str(metrics), "--max-body-mb", str(MAX_BODY_MB),
             "--max-duration", str(MAX_DURATION_S), "--request-timeout",
             str(REQUEST_TIMEOUT_S)], stdout=subprocess.DEVNULL, stderr=err,
            env={**os.environ, "OMP_NUM_THREADS": "1", **RAY_TOKEN, **torch_free})
    deadline = time.monotonic() + 180
    while "emo-serve: ready at" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"emo-serve did not start:\n{log.read_text()}")
        time.sleep(0.5)
    ready = next(line for line in log.read_text().splitlines() if "emo-serve: ready" in line)
    cluster = ready.split("Ray cluster ")[1].split(";")[0]
    yield Service(f"http://127.0.0.1:{port}", "127.0.0.1", port, cluster,
                  f"http://127.0.0.1:{metrics}/metrics", proc, log)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=90)
    text = log.read_text()
    assert code == 0 and "stopped (SIGTERM)" in text and "Traceback" not in text, text
    leftover = subprocess.run(["pgrep", "-f", f"session_.*_{proc.pid}"], capture_output=True,
                              text=True).stdout.split()
    assert not leftover, f"processes of the stopped cluster are left: {leftover}"
