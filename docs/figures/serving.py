"""emo-serve against the in-process Recognizer on the same clips (docs/benchmarks.md):

    python -m docs.figures.serving MODEL.onnx --out docs/figures/results/serving-hubert-base-cpu

1. Startup: from starting `emo-serve` (a local Ray cluster, its replicas) to its ready line
   and to the first answered request; and SIGTERM to exit.
2. Requests: 1 and then 8 concurrent clients, each sending the clips (WAV files) in turn
   for --seconds: requests per second, p50 and p99 latency and errors, through the
   service (HTTP on 127.0.0.1) and through one Recognizer in this process
   (`predict_recording` on the same files, the clients as threads). The overhead ratio
   is the service's p50 over the Recognizer's; the throughput ratio the service's
   requests per second over the Recognizer's.

3. Scoring an archive: `emo-predict --ray` with 1 and 2 workers (one runtime thread each,
   a local Ray cluster started by the command) on the same folder of clips, against
   `emo-predict` in one process: whole-command wall time (cluster start included) and
   the scaling ratio; the merged rows must equal emo-predict's byte for byte.

Every service answer is checked against the Recognizer's result for its clip (1e-5).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import soundfile as sf

from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.runtime.recognizer import Recognizer
from tests.process import free_port

BIN = Path(sys.executable).parent


def load(call: Callable[[int], tuple[int, str]], clients: int, seconds: float
         ) -> dict[str, Any]:
    """`clients` threads calling `call(i)` (i: the client's request counter) for `seconds`;
    call returns (HTTP status, what was wrong with the answer or ""). Counts every status
    and every wrong answer."""
    latencies: list[float] = []
    errors: list[str] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            start = time.perf_counter()
            status, error = call(i)
            with lock:
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if error:
                    errors.append(f"{status} {error}"[:200])
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "statuses": statuses,
            "errors": len(errors), "first_errors": errors[:5],
            "requests_per_s": len(latencies) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _post(port: int, body: bytes) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "audio/wav"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def service_figures(model: Path, clips: list[Path], expected: list[dict[str, float]],
                    seconds: float, replicas: int, threads: int, work: Path
                    ) -> dict[str, Any]:
    port, log = free_port(), work / "emo-serve.log"
    bodies = [c.read_bytes() for c in clips]
    began = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(BIN / "emo-serve"), str(model), "--port", str(port), "--replicas",
             str(replicas), "--threads", str(threads), "--cpus-per-replica",
             str((os.cpu_count() or 1) / replicas), "--num-cpus", str(os.cpu_count() or 1)],
            stdout=subprocess.DEVNULL, stderr=err)
    try:
        while "emo-serve: ready at" not in log.read_text():
            if proc.poll() is not None:
                raise click.ClickException(f"emo-serve stopped: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        ready_s = time.perf_counter() - began
        status, _ = _post(port, bodies[0])
        first_s = time.perf_counter() - began

        def call(i: int) -> tuple[int, str]:
            k = i % len(bodies)
            status, row = _post(port, bodies[k])
            if status != 200:
                return status, str(row.get("message") or "failed")
            worst = max(abs(row["probabilities"][label] - p) for label, p in
                        expected[k].items())
            return status, "" if worst <= 1e-5 else f"differs by {worst:.2g}"

        runs = [load(call, clients, seconds) for clients in (1, 8)]
    finally:
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    return {"replicas": replicas, "threads_per_replica": threads, "ready_s": ready_s,
            "first_answer_s": first_s, "first_status": status,
            "stop_s": time.perf_counter() - stopping, "exit_status": code, "runs": runs}


def in_process_figures(recognizer: Recognizer, clips: list[Path], seconds: float
                       ) -> list[dict[str, Any]]:
    def call(i: int) -> tuple[int, str]:
        recognizer.predict_recording(clips[i % len(clips)])
        return 200, ""

    return [load(call, clients, seconds) for clients in (1, 8)]


def scoring_figures(model: Path, folder: Path, work: Path) -> dict[str, Any]:
    def timed(mode: str, *args: str | Path) -> float:
        start = time.perf_counter()
        proc = subprocess.run([str(BIN / "emo-predict"), mode, "-q", str(model), str(folder),
                               *map(str, args)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise click.ClickException(f"emo-predict failed: {proc.stderr[-2000:]}")
        return time.perf_counter() - start

    local = timed("files", "-o", work / "local.jsonl")
    runs = []
    for workers in (1, 2):
        out, merged = work / f"shards-{workers}", work / f"merged-{workers}.jsonl"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        wall = timed("ray", "--workers", str(workers), "--threads", "1", "--block-files",
                     "4", "-o", out, "--merge", merged)
        job = json.loads((out / "job.json").read_text())
        runs.append({"workers": workers, "wall_s": wall, "cluster_start_s":
                     job["cluster_start_s"], "scoring_s": job["scoring_s"],
                     "identical": merged.read_bytes() == (work / "local.jsonl").read_bytes()})
    return {"files": len(list(folder.glob("*.wav"))), "local_wall_s": local, "runs": runs,
            "scaling": runs[0]["scoring_s"] / runs[1]["scoring_s"]}


def markdown(report: dict[str, Any]) -> str:
    local = report["in_process"]
    lines = [f"emo-serve figures, {report['created']}; machine: {describe(report['machine'])}.",
             "", f"Model: {report['model']} ({report['untrained']}); {report['clips']} clips of "
             f"{report['clip_seconds']:g} s (WAV), each setting for {report['seconds']:g} s. "
             "Service: R replicas x T runtime threads on a local Ray cluster, HTTP on "
             "127.0.0.1; in process: one Recognizer with the runtime's default threads, the "
             "clients as threads. Ratios: the service's p50 over the Recognizer's, the "
             "service's requests per second over the Recognizer's.", "",
             "| service | clients | service req/s | service p50 ms | service p99 ms | errors "
             "| in-process req/s | in-process p50 ms | in-process p99 ms | p50 ratio | "
             "throughput ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in report["service"]:
        name = f"{s['replicas']} x {s['threads_per_replica']}"
        for a, b in zip(s["runs"], local, strict=True):
            lines.append(f"| {name} | {a['clients']} | {a['requests_per_s']:.2f} | "
                         f"{a['p50_ms']:.0f} | {a['p99_ms']:.0f} | {a['errors']} | "
                         f"{b['requests_per_s']:.2f} | {b['p50_ms']:.0f} | {b['p99_ms']:.0f} | "
                         f"{a['p50_ms'] / b['p50_ms']:.2f} | "
                         f"{a['requests_per_s'] / b['requests_per_s']:.2f} |")
    lines += ["", "Startup (starting emo-serve to its ready line, to the first answer) and "
              "SIGTERM to exit:", ""]
    lines += [f"- {s['replicas']} x {s['threads_per_replica']}: ready {s['ready_s']:.1f} s, "
              f"first answer {s['first_answer_s']:.1f} s, stopped in {s['stop_s']:.1f} s "
              f"(status {s['exit_status']})" for s in report["service"]]
    scoring = report.get("scoring")
    if scoring:
        lines += ["", f"Scoring {scoring['files']} clips of {report['clip_seconds']:g} s with "
                  "`emo-predict --ray` (one runtime thread per worker, the command's own local "
                  "cluster; whole-command wall time):", "",
                  "| run | wall s | cluster start s | scoring s | rows equal emo-predict's |",
                  "|---|---:|---:|---:|---|",
                  f"| emo-predict, one process | {scoring['local_wall_s']:.1f} | - | - | - |"]
        lines += [f"| --ray, {r['workers']} worker(s) | {r['wall_s']:.1f} | "
                  f"{r['cluster_start_s']:.1f} | {r['scoring_s']:.1f} | "
                  f"{'yes' if r['identical'] else 'NO'} |" for r in scoring["runs"]]
        lines += ["", f"Scaling (scoring s, 1 worker over 2, blocks of 4 files): "
                  f"{scoring['scaling']:.2f}."]
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/bench-serving"), show_default=True)
@click.option("--seconds", type=float, default=20.0, show_default=True,
              help="how long each client count runs")
@click.option("--clip-seconds", type=float, default=3.0, show_default=True)
@click.option("--clips", "clip_count", type=int, default=8, show_default=True)
@click.option("--services", default="1x2,2x1", show_default=True,
              help="the service configurations: REPLICASxTHREADS, comma-separated")
@click.option("--scoring-clips", type=int, default=48, show_default=True,
              help="clips in the folder scored with emo-predict --ray (0: no scoring run)")
def main(model: Path, out: Path, work: Path, seconds: float, clip_seconds: float,
         clip_count: int, services: str, scoring_clips: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(clip_count):
        clips.append(work / f"clip{i}.wav")
        sf.write(str(clips[-1]), speech_like(clip_seconds, i), 16_000)
    recognizer = Recognizer.open(model)
    expected = [recognizer.predict_recording(c).probabilities for c in clips]  # and warm-up
    local = in_process_figures(recognizer, clips, seconds)
    del recognizer
    service = [service_figures(model, clips, expected, seconds, int(r), int(t), work)
               for r, t in (config.split("x") for config in services.split(","))]
    scoring = None
    if scoring_clips:
        folder = work / "archive"
        folder.mkdir(exist_ok=True)
        for i in range(scoring_clips):
            sf.write(str(folder / f"clip{i:03d}.wav"), speech_like(clip_seconds, 100 + i),
                     16_000)
        scoring = scoring_figures(model, folder, work)
    report = {"created": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info("cpu"),
              "model": model.name, "untrained": "UNTRAINED extractor" if Recognizer.open(
                  model).info.untrained else "trained", "clips": clip_count,
              "clip_seconds": clip_seconds, "seconds": seconds, "service": service,
              "in_process": local, "scoring": scoring}
    click.echo(write_figures(out, "serving", report, markdown(report)))


if __name__ == "__main__":
    main()
