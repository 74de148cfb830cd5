"""Extraction into the cache: reuse, batching equality, bad files, streaming dataset, CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from emo_toolkit.cli.training import data_cli
from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.features.extractor import open_extractor
from emo_toolkit.features.feature_dataset import CachedFeatures, MissingFeaturesError, pad_batch
from emo_toolkit.features.featurize import cache_for, extract_to_cache, plan_batches
from tests.conftest import tone, write_wav


@pytest.fixture(scope="module")
def tiny():
    return open_extractor("hubert_tiny", untrained=True)


def demo_paths(demo_corpus: Path, n: int) -> list[Path]:
    return [c.path for c in load_dataset(demo_corpus).clips][:n]


def test_plan_batches_respects_budget_and_covers_every_clip():
    lengths = [16_000, 48_000, 400, 32_000, 16_000, 47_000, 8_000]
    batches = plan_batches(lengths, max_batch_samples=100_000, max_batch=3)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for b in batches:
        assert len(b) <= 3
        assert max(lengths[i] for i in b) * len(b) <= 100_000 or len(b) == 1
        assert lengths[b[0]] == max(lengths[i] for i in b)
    assert batches[0] == [1, 5]  # the two longest share a batch; a third would bust the budget
    assert plan_batches([5, 5, 5], 100, 1) == [[0], [1], [2]]


def test_second_run_computes_nothing_and_new_files_only_once(tmp_path: Path, demo_corpus: Path,
                                                            tiny):
    paths = demo_paths(demo_corpus, 12)
    cache = cache_for(tiny, tmp_path)
    first = extract_to_cache(paths[:8], tiny, cache, progress=False, num_workers=0)
    assert (first.computed, first.reused) == (8, 0)
    stamps = {p: p.stat().st_mtime_ns for p in cache.dir.glob("*/*.npy")}
    second = extract_to_cache(paths, tiny, cache, progress=False, num_workers=0)
    assert (second.computed, second.reused) == (4, 8)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    third = extract_to_cache(paths, tiny, cache_for(tiny, tmp_path), progress=False)
    assert (third.computed, third.reused) == (0, 12)
    assert len(list(cache.dir.glob("*/*.npy"))) == 12


def test_batched_extraction_equals_one_at_a_time(tmp_path: Path, demo_corpus: Path, tiny):
    paths = demo_paths(demo_corpus, 10)
    single = cache_for(tiny, tmp_path / "single", storage="fp32")
    batched = cache_for(tiny, tmp_path / "batched", storage="fp32")
    one = extract_to_cache(paths, tiny, single, max_batch=1, progress=False, num_workers=0)
    many = extract_to_cache(paths, tiny, batched, max_batch=8, batch_seconds=40,
                            progress=False, num_workers=2)
    assert one.audio_sha256 == many.audio_sha256
    for sha in one.audio_sha256.values():
        a, b = single.get(sha), batched.get(sha)
        assert a.shape == b.shape and a.shape[0] == 3 and a.shape[2] == 128
        assert np.abs(a - b).max() < 1e-4


def test_bad_files_are_skipped_not_fatal(tmp_path: Path, demo_corpus: Path, tiny, caplog):
    good = demo_paths(demo_corpus, 2)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnothing")
    short = write_wav(tmp_path / "short.wav", tone(0.5)[:100])
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    caplog.set_level(logging.INFO, logger="emo_toolkit.features.featurize")
    report = extract_to_cache([good[0], broken, short, empty, good[1]], tiny,
                              cache_for(tiny, tmp_path / "c"), max_batch=4, progress=False)
    assert report.computed == 2
    assert sorted((s.path.name, s.reason) for s in report.skipped) == [
        ("broken.wav", "corrupt"), ("empty.wav", "empty-file"), ("short.wav", "too-short")]
    assert set(report.audio_sha256) == set(good)
    assert all("[hubert_tiny UNTRAINED]" in r.getMessage() for r in caplog.records)
    assert any("short.wav" in r.getMessage() for r in caplog.records)


def test_identical_audio_is_computed_once(tmp_path: Path, tiny):
    a = write_wav(tmp_path / "a.wav", tone(1.0))
    b = tmp_path / "copy.wav"
    b.write_bytes(a.read_bytes())
    report = extract_to_cache([a, b], tiny, cache_for(tiny, tmp_path / "c"), progress=False)
    assert report.computed == 1 and report.audio_sha256[a] == report.audio_sha256[b]


def test_cached_features_stream_as_a_dataset(tmp_path: Path, demo_corpus: Path, tiny):
    paths = demo_paths(demo_corpus, 6)
    cache = cache_for(tiny, tmp_path)
    report = extract_to_cache(paths, tiny, cache, progress=False, num_workers=0)
    shas = [report.audio_sha256[p] for p in paths]
    data = CachedFeatures(cache, shas, list(range(6)))
    x, y = data[2]
    assert x.dtype.is_floating_point and x.shape[:1] == (3,) and x.shape[2] == 128 and y == 2
    batches = list(DataLoader(data, batch_size=4, collate_fn=pad_batch))
    feats, lengths, labels = batches[0]
    assert feats.shape[:2] == (4, 3) and feats.shape[2] == int(lengths.max())
    assert labels.tolist() == [0, 1, 2, 3]
    assert not feats[0, :, int(lengths[0]):].any()
    with pytest.raises(MissingFeaturesError, match="1 clip"):
        CachedFeatures(cache, [*shas, "0" * 64], list(range(7)))


def test_cli_features_reuses_cache(tmp_path: Path, demo_corpus: Path):
    args = ["features", str(demo_corpus), "--extractor", "hubert_tiny", "--untrained",
            "--cache", str(tmp_path)]
    first = CliRunner().invoke(data_cli, args)
    assert first.exit_code == 0, first.output
    assert "UNTRAINED" in first.output and "60 computed, 0 reused" in first.output
    second = CliRunner().invoke(data_cli, args)
    assert "0 computed, 60 reused" in second.output

    if not torch.cuda.is_available():
        bad = CliRunner().invoke(data_cli, [*args, "--device", "cuda:0"])
        assert bad.exit_code == 1 and "CUDA is not available on this machine" in bad.output
