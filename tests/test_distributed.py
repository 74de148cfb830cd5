"""torchrun: two processes (gloo on CPU) share feature extraction into one cache and train
the head with DDP; cache and model equal what one process makes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emo_toolkit.features.distributed import Ranks, shard
from tests.process import free_port

BIN = Path(sys.executable).parent


def test_shards_cover_everything_once():
    items = list(range(11))
    shares = [shard(items, Ranks(r, 3)) for r in range(3)]
    assert sorted(x for share in shares for x in share) == items and all(shares)
    assert shard(items, Ranks()) == items


def launch(command: list[str], nproc: int) -> subprocess.CompletedProcess:
    """`command` as one process, or as `nproc` processes started by torchrun on this node."""
    if nproc > 1:
        command = [str(BIN / "torchrun"), "--standalone", f"--nproc-per-node={nproc}",
                   "--no-python", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def features(corpus: Path, cache: Path, nproc: int) -> subprocess.CompletedProcess:
    command = [str(BIN / "emo-data"), "features", str(corpus), "--extractor", "hubert_tiny",
               "--untrained", "--cache", str(cache), "--workers", "0"]
    return launch(command, nproc)


@pytest.mark.skipif(not (BIN / "emo-data").exists(), reason="needs the installed emo-data")
def test_two_processes_fill_the_cache_one_process_would(demo_corpus: Path, tmp_path: Path):
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_corpus, corpus)
    (corpus / "anger" / "spk01" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    two = features(corpus, tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes, each extracting its share" in two.stderr
    [summary] = [line for line in two.stdout.splitlines() if "computed" in line]  # rank 0 only
    clips = len(list(demo_corpus.rglob("*.wav")))
    assert f"{clips} computed, 0 reused" in summary and "1 skipped" in summary
    assert two.stderr.count("skipped [corrupt]") == 1  # the merged list, printed once
    one = features(corpus, tmp_path / "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    entries = {p.name: p for p in (tmp_path / "two").rglob("*.npy")}
    single = {p.name: p for p in (tmp_path / "one").rglob("*.npy")}
    assert len(entries) == clips and set(entries) == set(single)
    for name, path in entries.items():
        # Same numbers up to fp16 rounding: torchrun runs each process with one thread, which
        # sums in another order than the two-thread single process.
        a, b = np.load(path).astype(np.float32), np.load(single[name]).astype(np.float32)
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-2, name
    assert not [p for p in (tmp_path / "two").rglob("*") if ".tmp" in p.name]
    again = features(corpus, tmp_path / "two", 2)  # a rerun computes nothing
    assert again.returncode == 0 and f"0 computed, {clips} reused" in again.stdout


TRAIN = ["--extractor", "hubert_tiny", "--untrained", "--workers", "0", "--epochs", "5",
         "--batch-size", "8", "--class-weighted", "--embed-dim", "32", "--conv-channels", "16",
         "--lstm-hidden", "32"]


def train(corpus: Path, out: Path, cache: Path, nproc: int) -> subprocess.CompletedProcess:
    command = [str(BIN / "emo-train"), str(corpus), "--out", str(out), "--cache", str(cache),
               *TRAIN]
    return launch(command, nproc)


def train_on_two_nodes(corpus: Path, out: Path, cache: Path) -> list[tuple[int, str, str]]:
    """Two torchrun agents of one process each, meeting through c10d rendezvous as on two
    machines: ranks 0 and 1, both LOCAL_RANK 0. Returns (status, stdout, stderr) per node."""
    port = free_port()
    command = [str(BIN / "torchrun"), "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=emo-test", "--no-python",
               str(BIN / "emo-train"), str(corpus), "--out", str(out), "--cache", str(cache),
               *TRAIN]
    # Both "machines" share this one's cores: one thread each, as torchrun sets for several
    # processes per node (oversubscribed OpenMP threads made this twice as slow).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    return [(node.returncode, *output) for node, output in zip(nodes, outputs, strict=True)]


def head_probabilities(run: Path, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    from safetensors.torch import load_file

    from emo_toolkit.train.head import EmotionHead, HeadConfig

    split = run / "splits" / "speaker-holdout"
    head = EmotionHead(HeadConfig.from_json(json.loads((split / "head.json").read_text())))
    head.load_state_dict(load_file(split / "head.safetensors"))
    with torch.no_grad():
        return torch.softmax(head.eval()(features, lengths), dim=-1)


@pytest.mark.skipif(not (BIN / "emo-train").exists(), reason="needs the installed emo-train")
def test_two_processes_train_the_model_one_process_trains(demo_corpus: Path, tmp_path: Path):
    """torchrun with 2 gloo processes: sharded extraction, DDP on shared global batches,
    rank 0 writing alone; then one process on the same cached features. The documented
    tolerance: same metrics, training losses within 1e-4, probabilities within 1e-3."""
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_corpus, corpus)
    (corpus / "anger" / "spk01" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    next((corpus / "fear" / "spk02").glob("*.wav")).unlink()  # an odd count: shares pad
    cache = tmp_path / "cache"
    two = train(corpus, tmp_path / "two", cache, 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes: each trains on 4 of every 8 clips" in two.stderr
    assert two.stdout.count("speaker-holdout") == 1  # rank 0 alone reports
    one = train(corpus, tmp_path / "one", cache, 1)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "extracting 0 clips" in one.stderr  # the two processes cached every clip

    split = json.loads((tmp_path / "two" / "splits/speaker-holdout/split.json").read_text())
    assert len(split["train"]) % 2 == 1  # so DistributedSampler padded, and that was tested
    tree = {p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")}
    assert tree == {p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")}
    assert not [p for p in tree if "tmp" in p.name or p.name == "checkpoint.pt"]
    assert json.loads((tmp_path / "two" / "status.json").read_text())["state"] == "complete"

    m1, m2 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    for key in ("wa", "ua", "macro_f1", "num_clips", "best_epoch"):
        assert m1["splits"]["speaker-holdout"][key] == m2["splits"]["speaker-holdout"][key], key
    h1, h2 = (json.loads((tmp_path / r / "splits/speaker-holdout/history.json").read_text())
              for r in ("one", "two"))
    assert len(h1) == len(h2) == 5
    for a, b in zip(h1, h2, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (a, b)
        assert a["train_ua"] == b["train_ua"] and a["val_ua"] == b["val_ua"], (a, b)
    torch.manual_seed(0)
    features, lengths = torch.randn(6, 3, 40, 128), torch.tensor([40, 31, 25, 18, 12, 7])
    p1, p2 = (head_probabilities(tmp_path / r, features, lengths) for r in ("one", "two"))
    assert (p1 - p2).abs().max() < 1e-3
    assert ((tmp_path / "one" / "splits/speaker-holdout/test_predictions.json").read_text()
            == (tmp_path / "two" / "splits/speaker-holdout/test_predictions.json").read_text())

    again = train(corpus, tmp_path / "two", cache, 2)  # rank 0 refuses; no rank waits for it
    assert again.returncode != 0
    assert again.stderr.count("already holds a complete run") == 1

    # Stopped after epoch 2 as one process, resumed on two nodes: the uninterrupted result.
    stopped = stop_after_epoch(2, corpus, tmp_path / "resumed", cache)
    assert (tmp_path / "resumed" / "splits/speaker-holdout/checkpoint.pt").is_file(), stopped
    nodes = train_on_two_nodes(corpus, tmp_path / "resumed", cache)
    assert [status for status, _, _ in nodes] == [0, 0], [err[-3000:] for _, _, err in nodes]
    assert sum("resuming after epoch 2" in err for _, _, err in nodes) == 1  # rank 0's log
    assert sum(out.count("speaker-holdout") for _, out, _ in nodes) == 1
    h3 = json.loads((tmp_path / "resumed" / "splits/speaker-holdout/history.json").read_text())
    assert [h["epoch"] for h in h3] == [1, 2, 3, 4, 5]
    for a, b in zip(h1, h3, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (a, b)
    p3 = head_probabilities(tmp_path / "resumed", features, lengths)
    assert (p1 - p3).abs().max() < 1e-3


def stop_after_epoch(epoch: int, corpus: Path, out: Path, cache: Path) -> str:
    """emo-train as one process (in this one), stopped once epoch `epoch`'s checkpoint is
    written, as a kill at that moment would."""
    from unittest import mock

    from click.testing import CliRunner

    import emo_toolkit.train.loop
    from emo_toolkit.cli.training import train_cli

    save = emo_toolkit.train.loop._save_checkpoint

    def save_then_stop(path, head, optimizer, state):
        save(path, head, optimizer, state)
        if state["epoch"] == epoch:
            raise RuntimeError("stopped for the test")

    with mock.patch.object(emo_toolkit.train.loop, "_save_checkpoint", save_then_stop):
        result = CliRunner().invoke(train_cli, [str(corpus), "--out", str(out), "--cache",
                                                str(cache), *TRAIN, "--debug"])  # re-raised
    assert isinstance(result.exception, RuntimeError), result.output
    return result.output


def test_a_global_batch_that_does_not_divide_is_refused_before_any_work(demo_corpus: Path,
                                                                        tmp_path: Path):
    from click.testing import CliRunner

    from emo_toolkit.cli.training import train_cli

    result = CliRunner().invoke(train_cli, [str(demo_corpus), "--out", str(tmp_path / "run"),
                                            "--batch-size", "16"],
                                env={"RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0"})
    assert result.exit_code == 2 and "make it a multiple of 3" in result.output
    assert not (tmp_path / "run").exists()
