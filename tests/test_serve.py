"""emo-serve on a real local Ray cluster, over loopback HTTP: served rows equal emo-predict's,
bad requests get their 4xx, concurrent clients all get correct answers, a killed replica is
replaced without lost requests, metrics are exported, and SIGTERM stops everything.

One service (and its cluster) per test session: the `service` fixture (tests/service.py)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from docs.figures.serving import load
from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.runtime.formats.base import sidecar_path
from emo_toolkit.runtime.recognizer import Recognizer
from tests.faults import assert_clean_exit, command, invoke, json_lines
from tests.service import (
    MAX_BODY_MB,
    MAX_DURATION_S,
    RAY_TOKEN,
    REQUEST_TIMEOUT_S,
    Service,
)

pytest.importorskip("ray.serve", reason="emo-serve needs the [serve] extra")

RATE = 16_000


def _wav(path: Path, x: np.ndarray, rate: int = RATE) -> bytes:
    sf.write(str(path), x, rate)
    return path.read_bytes()


def _same_rows(served: list[dict[str, Any]], offline: list[dict[str, Any]]) -> None:
    assert len(served) == len(offline)
    for a, b in zip(served, offline, strict=True):
        assert {k: v for k, v in a.items() if k not in ("file", "probabilities")} == \
            {k: v for k, v in b.items() if k not in ("file", "probabilities")}
        for label, p in b["probabilities"].items():
            assert a["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_served_rows_equal_emo_predicts(service: Service, tiny_onnx: Path, demo_corpus: Path,
                                        tmp_path: Path):
    clips = sorted(demo_corpus.rglob("*.wav"))[:6]
    long = tmp_path / "long.flac"
    x = np.concatenate([speech_like(2.5, i) for i in range(8)] +
                       [np.zeros(RATE // 2, np.float32)])
    sf.write(str(long), np.stack([x, 0.5 * x], axis=1), 22_050)  # stereo, resampled
    for path, kind in [*((c, "audio/wav") for c in clips), (long, "audio/flac")]:
        out = invoke(predict_cli, [tiny_onnx, path, "--window", "4", "--segments"])
        assert out.exit_code == 0, out.output
        offline = json_lines(out.stdout)
        status, rows = service.post(f"/predict?segments=true&window=4&name={path.name}",
                                    path.read_bytes(), kind)
        assert status == 200, rows
        _same_rows(rows, offline)
        status, row = service.post(f"/predict?window=4&name={path.name}", path.read_bytes(),
                                   "application/octet-stream")
        assert status == 200 and row["file"] == path.name
        _same_rows([row], offline[-1:])
    assert offline[-1]["segments"] > 2  # the long recording was cut
    # raw samples (float32, 2 channels at 22.05 kHz) equal the Python API on the same array
    stereo = np.stack([x, -x], axis=1)[: 22_050 * 7].astype(np.float32)
    status, row = service.post("/predict?rate=22050&channels=2&window=4",
                               stereo.astype("<f4").tobytes(), "audio/x-float32")
    expected = Recognizer.open(tiny_onnx).predict_recording(stereo, 22_050, window=4)
    assert status == 200 and row["segments"] == len(expected.segments)
    for label, p in expected.probabilities.items():
        assert row["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_info_health_and_readiness(service: Service, tiny_onnx: Path):
    assert service.request("GET", "/healthz") == (200, {"status": "ok"})
    assert service.request("GET", "/readyz") == (200, {"ready": True})
    status, info = service.request("GET", "/info")
    assert status == 200 and info["labels"] == ["angry", "disgust", "fear", "happy", "sad"]
    assert info["untrained"] is True and info["sample_rate"] == RATE
    assert info["precision"] == "fp32" and info["replicas"] == 2
    assert info["max_body_mb"] == MAX_BODY_MB and info["max_duration_s"] == MAX_DURATION_S
    # no --window: the model's default, from its training clips' durations
    durations = json.loads(sidecar_path(tiny_onnx).read_text())["training_durations"]
    assert info["window_s"] == max(1.0, durations["p90"])


def _bad_requests(tmp_path: Path) -> list[tuple[str, str, bytes, str, int, str]]:
    """(what, path, body, content type, status, error code) for every kind of bad request."""
    good = _wav(tmp_path / "ok.wav", speech_like(1.0, 1))
    nan = speech_like(1.0, 2)
    nan[100] = np.nan
    loud = speech_like(1.0, 3) * 500
    return [
        ("corrupt", "/predict", b"RIFF\x00\x00" + os.urandom(2000), "audio/wav", 422, "corrupt"),
        ("truncated", "/predict", good[:len(good) // 2], "audio/wav", 422, "truncated"),
        ("empty", "/predict", b"", "audio/wav", 422, "empty-file"),
        ("too short", "/predict", _wav(tmp_path / "short.wav", speech_like(0.01, 4)),
         "audio/wav", 422, "too-short"),
        ("too long", "/predict", _wav(tmp_path / "long.flac", np.zeros((MAX_DURATION_S + 5)
                                                                       * 8_000, np.float32),
                                      8_000), "audio/flac", 422, "too-long"),
        ("NaN samples", "/predict?rate=16000", nan.astype("<f4").tobytes(), "audio/x-float32",
         422, "non-finite"),
        ("out of range", "/predict?rate=16000", loud.astype("<f4").tobytes(),
         "audio/x-float32", 422, "out-of-range"),
        ("unsupported rate", "/predict", _wav(tmp_path / "2k.wav", speech_like(1.0, 5), 2_000),
         "audio/wav", 422, "unsupported-rate"),
        ("content type", "/predict", good, "text/plain", 415, "unsupported-media-type"),
        ("no content type", "/predict", good, "", 415, "unsupported-media-type"),
        ("oversized", "/predict", b"\x00" * (MAX_BODY_MB * 1_000_000 + 1), "audio/wav", 413,
         "body-too-large"),
        ("raw without rate", "/predict", nan.tobytes(), "audio/x-float32", 400, "bad-query"),
        ("ragged raw", "/predict?rate=16000&channels=2", b"\x00" * 12, "audio/x-float32", 400,
         "bad-request"),
        ("bad window", "/predict?window=nan", good, "audio/wav", 400, "bad-query"),
        ("unknown option", "/predict?sgements=true", good, "audio/wav", 400, "bad-query"),
    ]


def test_every_bad_request_gets_its_4xx_and_the_service_stays_up(service: Service,
                                                                 tmp_path: Path):
    for what, path, body, ctype, status, code in _bad_requests(tmp_path):
        got, row = service.post(path, body, ctype)
        assert (got, row.get("error")) == (status, code), (what, got, row)
        assert row["message"] and "Traceback" not in row["message"], (what, row)
    assert service.request("GET", "/predict")[0] == 405
    assert service.request("GET", "/nowhere")[0] == 404
    status, row = service.post("/predict", _wav(tmp_path / "ok.wav", speech_like(1.0, 1)))
    assert status == 200 and row["segments"] == 1
    assert _replicas(service) == 2  # no replica died on the way


def test_a_request_over_its_timeout_gets_408(service: Service):
    """A client that sends its body slower than the timeout allows."""
    with socket.create_connection((service.host, service.port), timeout=30) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        start = time.monotonic()
        reply = b""
        while time.monotonic() - start < REQUEST_TIMEOUT_S + 20:
            try:
                s.sendall(b"\x00" * 10)
            except OSError:
                break
            s.settimeout(0.5)
            try:
                reply += s.recv(4096)
            except TimeoutError:
                continue
            if reply:
                break
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]


def _load(service: Service, bodies: list[tuple[bytes, dict[str, Any]]], clients: int,
          seconds: float, allowed: tuple[int, ...] = (200,)) -> dict[str, Any]:
    """docs/figures/serving.py's load on the service; every answer is checked against its
    expected row, a failed connection (a lost request) counts as status -1."""
    def call(i: int) -> tuple[int, str]:
        body, expected = bodies[i % len(bodies)]
        try:
            status, row = service.post("/predict", body)
        except OSError as e:
            return -1, str(e)
        if status != 200:
            return status, "" if status in allowed else str(row)
        worst = max(abs(row["probabilities"][k] - v) for k, v in
                    expected["probabilities"].items())
        wrong = row["label"] != expected["label"] or worst > 1e-5
        return status, f"differs by {worst:.2g}" if wrong else ""

    return load(call, clients, seconds)


def _expected_bodies(service: Service, tiny_onnx: Path, tmp_path: Path
                     ) -> list[tuple[bytes, dict[str, Any]]]:
    recognizer, out = Recognizer.open(tiny_onnx), []
    for i, seconds in enumerate((1.0, 1.5, 2.0, 3.0)):
        path = tmp_path / f"c{i}.wav"
        body = _wav(path, speech_like(seconds, 10 + i))
        expected = recognizer.predict_recording(path)
        out.append((body, {"label": expected.label, "probabilities": expected.probabilities}))
    return out


def test_concurrent_clients_all_get_correct_answers(service: Service, tiny_onnx: Path,
                                                    tmp_path: Path):
    report = _load(service, _expected_bodies(service, tiny_onnx, tmp_path), clients=8,
                   seconds=10)
    print(f"\n8 clients, 10 s: {report}")
    assert report["errors"] == 0 and set(report["statuses"]) == {200}, report
    assert report["requests"] >= 16


def test_a_killed_replica_is_replaced_and_no_request_is_lost(service: Service, tiny_onnx: Path,
                                                             tmp_path: Path):
    bodies = _expected_bodies(service, tiny_onnx, tmp_path)
    killed: list[str] = []
    killer = threading.Timer(3.0, lambda: killed.append(_kill_a_replica(service)))
    killer.start()
    report = _load(service, bodies, clients=4, seconds=10, allowed=(200, 503))
    killer.join()
    print(f"\nkilled {killed} under load: {report}")
    assert killed and killed[0] not in _ray(service, "print([a['name'] for a in replicas])")
    assert report["errors"] == 0, report  # 200 with the right answer, or a clear 503
    assert report["statuses"].get(-1, 0) == 0 and report["statuses"].get(200, 0) >= 8, report
    deadline = time.monotonic() + 60
    while _replicas(service) < 2:
        assert time.monotonic() < deadline, "the killed replica was not replaced"
        time.sleep(1)
    status, _ = service.post("/predict", bodies[0][0])
    assert status == 200


def test_metrics_reach_rays_prometheus_exporter(service: Service, tmp_path: Path):
    """Runs after the load tests (file order): their batches are in the histogram."""
    service.post("/predict", _wav(tmp_path / "m.wav", speech_like(1.0, 7)))
    deadline, text = time.monotonic() + 40, ""
    names = ("ray_emo_requests_total{", "ray_emo_request_seconds_bucket{",
             "ray_emo_batch_size_bucket{")  # as docs/serving.md names them
    while not all(n in text for n in names) and time.monotonic() < deadline:
        time.sleep(2)
        host_port = service.metrics.split("//")[1].split("/")[0].split(":")
        conn = http.client.HTTPConnection(host_port[0], int(host_port[1]), timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    assert all(n in text for n in names), [n for n in names if n not in text]
    assert 'status="200"' in text and 'path="/predict"' in text

    def total(series: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(series + "{"))

    # the concurrent clients of the tests before had their segments batched together
    assert total("ray_emo_batch_size_sum") > total("ray_emo_batch_size_count") > 0


def test_emo_serve_refuses_what_it_cannot_serve_in_one_line(tmp_path: Path, tiny_onnx: Path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert_clean_exit(command("emo-serve", broken), "broken.onnx")
    assert_clean_exit(command("emo-serve", tiny_onnx, "--address", "auto", "--num-cpus", "2"),
                      "--num-cpus", code=2)
    assert_clean_exit(command("emo-serve", tiny_onnx, "--replicas", "0"), "--replicas",
                      code=2)


def _ray(service: Service, code: str) -> str:
    """Python run as a driver of the service's cluster (kept out of the test process: a
    driver takes over its signal handlers)."""
    script = ("import ray, logging\n"
              f"ray.init(address={service.cluster!r}, logging_level=logging.ERROR, "
              "log_to_driver=False)\n"
              "replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)\n"
              "            if a['name'].startswith('SERVE_REPLICA::emo-serve#Model#')]\n"
              + code)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **RAY_TOKEN})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _replicas(service: Service) -> int:
    return int(_ray(service, "print(len(replicas))"))


def _kill_a_replica(service: Service) -> str:
    return _ray(service, "a = replicas[0]\n"
                  "ray.kill(ray.get_actor(a['name'], namespace=a['namespace']), no_restart=True)\n"
                  "print(a['name'])")


def test_a_serving_install_brings_no_torch(tmp_path: Path):
    """`pip install 'emo-toolkit[cpu,serve]'`, resolved by pip against the package index as
    on a fresh machine (--dry-run, --ignore-installed): Ray comes, torch does not."""
    root = Path(__file__).resolve().parent.parent
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run",
                           "--ignore-installed", "--report", str(report), f"{root}[cpu,serve]"],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"ray", "onnxruntime", "emo-toolkit"} <= names, sorted(names)
    assert not names & {"torch", "torchaudio", "onnx", "nvidia-cudnn-cu12"}, sorted(names)
