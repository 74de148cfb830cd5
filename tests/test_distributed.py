"""Feature extraction under torchrun: two processes share the work (gloo on CPU) into one
cache, and the cache equals what one process makes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolkit.distributed import Ranks, shard

BIN = Path(sys.executable).parent


def test_shards_cover_everything_once():
    items = list(range(11))
    shares = [shard(items, Ranks(r, 3)) for r in range(3)]
    assert sorted(x for share in shares for x in share) == items and all(shares)
    assert shard(items, Ranks()) == items


def features(corpus: Path, cache: Path, nproc: int) -> subprocess.CompletedProcess:
    command = [str(BIN / "emo-data"), "features", str(corpus), "--extractor", "hubert_tiny",
               "--untrained", "--cache", str(cache), "--workers", "0"]
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc}", "--no-python", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


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


def test_emo_train_refuses_to_run_as_several_processes(demo_corpus: Path, tmp_path: Path):
    """Until multi-process training exists, N copies must not race on one run directory."""
    from click.testing import CliRunner

    from toolkit.cli import train_cli

    result = CliRunner().invoke(train_cli, [str(demo_corpus), "--out", str(tmp_path / "run")],
                                env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert result.exit_code == 1 and "cannot run under torchrun yet" in result.output
    assert not (tmp_path / "run").exists()
