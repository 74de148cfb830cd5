"""emo-predict --ray: an archive scored on a real Ray cluster (the session's service cluster,
and a two-node cluster on this machine) gives emo-predict's own rows, resumes after its
driver is killed, and refuses folders and inputs it must not write over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import soundfile as sf

from emo_toolkit.data.datasets import iter_audio_files, list_audio_files
from emo_toolkit.data.demo_corpus import speech_like
from tests.faults import BIN, assert_clean_exit, command
from tests.process import free_port
from tests.service import RAY_TOKEN, Service

pytest.importorskip("ray.data", reason="emo-predict --ray needs the [serve] extra")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, demo_corpus: Path) -> dict[str, Path]:
    """The demo corpus, a list of files with a corrupt one and a missing one, a folder
    without audio, and a 25 s recording that is cut into segments."""
    root = tmp_path_factory.mktemp("archive")
    (root / "empty").mkdir()
    bad = root / "bad.wav"
    bad.write_bytes(b"RIFF" + os.urandom(500))
    long = root / "long.flac"
    sf.write(str(long), speech_like(25.0, 3), 16_000)
    listed = root / "list.txt"
    listed.write_text(f"{long}\n{bad}\n{root / 'missing.wav'}\n")
    return {"corpus": demo_corpus, "empty": root / "empty", "list": listed}


def _local(model: Path, archive: dict[str, Path], out: Path, *extra: str) -> bytes:
    proc = command("emo-predict", "-q", model, archive["corpus"], archive["empty"],
                   "--files-from", archive["list"], "-o", out, "--window", "4", *extra)
    assert proc.returncode == 1, proc.stderr  # the bad, the missing file and the empty folder
    return out.read_bytes()


def _on_ray(model: Path, archive: dict[str, Path], out: Path, merged: Path, *extra: str,
            address: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return command("emo-predict", model, archive["corpus"], archive["empty"], "--files-from",
                   archive["list"], "--ray", "--address", address, "-o", out, "--merge",
                   merged, "--window", "4", *extra, env=RAY_TOKEN, timeout=timeout)


def test_scoring_on_ray_gives_emo_predicts_rows(service: Service, tiny_onnx: Path,
                                                archive: dict[str, Path], tmp_path: Path):
    for suffix, extra in ((".jsonl", ("--segments",)), (".csv", ())):
        local = _local(tiny_onnx, archive, tmp_path / f"local{suffix}", *extra)
        merged = tmp_path / f"merged{suffix}"
        proc = _on_ray(tiny_onnx, archive, tmp_path / f"out{suffix}", merged, "--workers", "2",
                       "--cpus-per-worker", "0.5", "--block-files", "16", *extra,
                       address=service.cluster)
        assert proc.returncode == 1, proc.stderr  # the same failures, the same status
        assert "3 of 64 file(s) failed" in proc.stderr and "Traceback" not in proc.stderr
        assert "window: 4 s (--window)" in proc.stderr
        assert merged.read_bytes() == local  # every row, in order, to the digit
    job = json.loads((tmp_path / "out.csv" / "job.json").read_text())
    assert job["files"] == 63 and job["scored_now"] == 63 and job["failed"] == 3
    assert sum(job["nodes"].values()) == 63


def test_a_killed_job_resumes_to_the_same_rows(service: Service, tiny_onnx: Path,
                                               archive: dict[str, Path], tmp_path: Path):
    """The driver killed (SIGKILL) after some shards are written; the same command then
    scores only the rest, and the rows are an uninterrupted run's, none twice."""
    local = _local(tiny_onnx, archive, tmp_path / "local.jsonl")
    out, merged = tmp_path / "out", tmp_path / "merged.jsonl"
    args = [str(BIN / "emo-predict"), str(tiny_onnx), str(archive["corpus"]),
            str(archive["empty"]), "--files-from", str(archive["list"]), "--ray", "--address",
            service.cluster, "-o", str(out), "--merge", str(merged), "--window", "4",
            "--block-files", "4", "--cpus-per-worker", "0.5"]
    proc = subprocess.Popen(args, env={**os.environ, **RAY_TOKEN}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(out.glob("part-*.jsonl"))) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "no shard was written"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("part-*.jsonl")))
    assert 3 <= done < 16 and not merged.exists()
    again = subprocess.run(args, env={**os.environ, **RAY_TOKEN}, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 1, again.stderr
    job = json.loads((out / "job.json").read_text())
    assert job["files"] == 63 and job["scored_now"] <= 63 - 4 * done
    assert merged.read_bytes() == local
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_two_nodes_score_one_job_and_serve(tiny_onnx: Path, archive: dict[str, Path],
                                           tmp_path: Path):
    """A cluster of two nodes on this machine (Ray's cluster utilities, one CPU each): the
    job's blocks are scored on both, and the rows are emo-predict's; then emo-serve joins
    the cluster (--address) with two replicas (a CPU each: one per node), answers, and on
    SIGTERM deletes its application and leaves the cluster running."""
    local = _local(tiny_onnx, archive, tmp_path / "local.jsonl")
    out, merged = tmp_path / "out", tmp_path / "merged.jsonl"
    clip = sorted(archive["corpus"].rglob("*.wav"))[0]
    port = free_port()
    script = textwrap.dedent(f"""
        import http.client, json, signal, subprocess, sys, time
        import ray
        from ray.cluster_utils import Cluster
        cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1}})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        proc = subprocess.run([{str(BIN / "emo-predict")!r}, {str(tiny_onnx)!r},
                               {str(archive["corpus"])!r}, {str(archive["empty"])!r},
                               "--files-from", {str(archive["list"])!r}, "--ray", "--address",
                               cluster.address, "-o", {str(out)!r}, "--merge",
                               {str(merged)!r}, "--window", "4", "--workers", "2",
                               "--block-files", "4"], capture_output=True, text=True)
        sys.stderr.write(proc.stderr)
        assert proc.returncode == 1, "scoring"
        serve = subprocess.Popen([{str(BIN / "emo-serve")!r}, {str(tiny_onnx)!r}, "--address",
                                  cluster.address, "--port", "{port}", "--replicas", "2"],
                                 stderr=subprocess.PIPE, text=True)
        line = ""
        while "emo-serve: ready" not in line:
            line = serve.stderr.readline()
            assert line or serve.poll() is None, "emo-serve ended"
        conn = http.client.HTTPConnection("127.0.0.1", {port}, timeout=60)
        conn.request("POST", "/predict", body=open({str(clip)!r}, "rb").read(),
                     headers={{"Content-Type": "audio/wav"}})
        answer = conn.getresponse()
        print(json.dumps({{"status": answer.status, "row": json.loads(answer.read())}}))
        ray.init(address=cluster.address, log_to_driver=False)
        replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["name"].startswith("SERVE_REPLICA::emo-serve#Model#")]
        assert len(replicas) == 2, replicas  # one CPU each: one on each node
        serve.send_signal(signal.SIGTERM)
        rest = serve.communicate(timeout=120)[1]
        assert serve.returncode == 0 and "stopped (SIGTERM)" in rest, rest
        assert len(ray.nodes()) == 2 and all(n["Alive"] for n in ray.nodes()), "cluster"
        ray.shutdown()
        cluster.shutdown()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **RAY_TOKEN, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    nodes = json.loads((out / "job.json").read_text())["nodes"]
    assert len(nodes) == 2 and all(n > 0 for n in nodes.values()), nodes
    assert merged.read_bytes() == local
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    offline = json.loads(command("emo-predict", "-q", tiny_onnx, clip).stdout)
    assert served["status"] == 200 and served["row"]["label"] == offline["label"]


def test_scoring_refuses_what_it_must_not_write_over(tiny_onnx: Path, archive: dict[str, Path],
                                                     tmp_path: Path):
    """Checked before any cluster starts: one line each."""
    corpus = archive["corpus"]
    assert_clean_exit(command("emo-predict", "ray", tiny_onnx, corpus), "-o DIR", code=2)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert_clean_exit(command("emo-predict", "ray", tiny_onnx, corpus, "-o", other),
                      "did not write")
    assert (other / "notes.txt").read_text() == "mine"
    assert_clean_exit(command("emo-predict", "ray", tiny_onnx, corpus, "-o", tmp_path / "o",
                              "--merge", tmp_path / "m.txt"), "m.txt", code=2)
    assert_clean_exit(command("emo-predict", tiny_onnx, corpus, "--workers", "2"),
                      "--workers is for `emo-predict ray`, not `emo-predict files`", code=2)
    # a shard that holds other files than this run's block: the inputs changed
    out = tmp_path / "shards"
    out.mkdir()
    (out / ".emo-predict-ray").touch()
    (out / "part-000000.jsonl").write_text(json.dumps({"file": "elsewhere.wav"}) + "\n")
    assert_clean_exit(command("emo-predict", "ray", tiny_onnx, corpus, "-o", out),
                      "part-000000.jsonl", "inputs changed")


def test_the_lazy_walk_gives_the_sorted_listing(tmp_path: Path):
    root = tmp_path / "tree"
    for rel in ("a/b.wav", "a.x/c.wav", "a b/d.flac", "B/e.WAV", "a/z/f.mp3", "a/z.wav",
                "ab.ogg", ".hidden/g.wav", "a/.h.wav", "notes.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "a" / "loop").symlink_to(root)  # followed once, never around again
    refused: list = []
    walked = list(iter_audio_files(root, refused.append))
    everything = sorted(Path(folder) / f for folder, dirs, files in os.walk(root)
                        for f in files if Path(f).suffix.lower() in {".wav", ".flac", ".mp3",
                                                                     ".ogg"}
                        and not f.startswith(".") and ".hidden" not in folder)
    assert walked == everything and len(walked) == 7 and not refused
    assert list_audio_files(root) == (walked, [])


def test_files_from_takes_lists_and_manifests(tiny_onnx: Path, demo_corpus: Path,
                                              tmp_path: Path):
    clips = sorted(demo_corpus.rglob("*.wav"))[:3]
    direct = command("emo-predict", "-q", tiny_onnx, *clips)
    manifest = demo_corpus.parent / "listed.csv"
    manifest.write_text("path,label\n" + "".join(f"{c.relative_to(manifest.parent)},x\n"
                                                 for c in clips))
    listed = tmp_path / "list.txt"
    listed.write_text("".join(f"{c}\n" for c in clips))
    for source in (manifest, listed):
        proc = command("emo-predict", "-q", tiny_onnx, "--files-from", source)
        assert proc.returncode == 0, proc.stderr
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [r["probabilities"] for r in rows] == \
            [json.loads(line)["probabilities"] for line in direct.stdout.splitlines()]
    no_path = tmp_path / "bad.csv"
    no_path.write_text("file,label\na.wav,x\n")
    assert_clean_exit(command("emo-predict", tiny_onnx, "--files-from", no_path),
                      "bad.csv", "path column")
    assert_clean_exit(command("emo-predict", tiny_onnx), "PATHS", code=2)
