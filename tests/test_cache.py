"""The feature cache: keys, atomic entries, crash safety, memory-mapped reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emo_toolkit.features.cache import CacheKey, FeatureCache


def key(**overrides) -> CacheKey:
    base = {"extractor": "hubert_tiny", "weights_sha256": "ab" * 32, "trained": False,
            "sample_rate": 16_000}
    return CacheKey(**{**base, **overrides})


def test_round_trip_fp16_and_fp32(tmp_path: Path):
    x = np.random.default_rng(0).standard_normal((3, 17, 48)).astype(np.float32)
    half = FeatureCache(tmp_path, key())
    half.put("a" * 64, x)
    got = half.get("a" * 64)
    assert isinstance(got, np.memmap) and got.dtype == np.float16 and got.shape == (3, 17, 48)
    assert np.abs(got - x).max() < 2e-3
    full = FeatureCache(tmp_path, key(storage="fp32"))
    full.put("a" * 64, x)
    assert np.array_equal(full.get("a" * 64), x)
    assert half.dir != full.dir and half.get("b" * 64) is None


def test_values_beyond_fp16_are_kept_exact(tmp_path: Path):
    cache = FeatureCache(tmp_path, key())
    x = np.full((1, 2, 3), 1e6, dtype=np.float32)
    cache.put("c" * 64, x)
    assert cache.get("c" * 64).dtype == np.float32 and np.isfinite(cache.get("c" * 64)).all()


def test_key_covers_everything_that_shapes_features(tmp_path: Path):
    variants = [key(), key(weights_sha256="cd" * 32), key(precision="fp16"),
                key(resample_rolloff=0.95), key(sample_rate=8_000), key(storage="fp32"),
                key(extractor="wavlm_base")]
    digests = {k.digest() for k in variants}
    assert len(digests) == 7
    cache = FeatureCache(tmp_path, key())
    assert "UNTRAINED" in cache.dir.name
    assert "UNTRAINED" in (cache.dir / "key.json").read_text()
    assert "UNTRAINED" not in FeatureCache(tmp_path, key(trained=True)).dir.name


def test_damaged_entry_reads_as_missing(tmp_path: Path):
    cache = FeatureCache(tmp_path, key())
    path = cache.put("d" * 64, np.ones((2, 5, 4), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:100])
    assert cache.get("d" * 64) is None


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from emo_toolkit.features import cache as cache_module
    from emo_toolkit.features.cache import CacheKey, FeatureCache

    chunks = []
    def slow_write(fh, chunk):
        fh.write(chunk)
        fh.flush()
        chunks.append(1)
        if len(chunks) == 2:
            print("HALF", flush=True)
            time.sleep(600)      # killed here, mid-entry

    cache_module._write_chunk = slow_write
    cache = FeatureCache(Path(sys.argv[1]), CacheKey("hubert_tiny", "ab" * 32, False, 16000))
    cache.put("e" * 64, np.ones((12, 200, 768), dtype=np.float32))  # 3.7 MB: 4 chunks
""")


def test_writer_killed_mid_write_leaves_no_entry(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == "HALF"
        cache_dir = next(tmp_path.iterdir())
        partial = list(cache_dir.glob("*/.*.tmp"))
        assert len(partial) == 1 and partial[0].stat().st_size > 1_000_000
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    cache = FeatureCache(tmp_path, key(trained=False))   # reopening sweeps the dead writer's file
    assert cache.removed_partial == 1 and not list(cache.dir.glob("*/.*.tmp"))
    assert cache.get("e" * 64) is None and not cache.has("e" * 64)
    x = np.random.default_rng(1).standard_normal((12, 200, 768)).astype(np.float32)
    cache.put("e" * 64, x)
    assert np.abs(cache.get("e" * 64) - x).max() < 5e-3


def test_live_writers_temporary_files_are_not_swept(tmp_path: Path):
    cache = FeatureCache(tmp_path, key())
    mine = cache.dir / "ff" / f".{'f' * 64}.npy.{os.getpid()}.tmp"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"in progress")
    assert FeatureCache(tmp_path, key()).removed_partial == 0 and mine.exists()


def test_rejects_bad_shapes(tmp_path: Path):
    with pytest.raises(ValueError, match="layers, frames, dim"):
        FeatureCache(tmp_path, key()).put("a" * 64, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="fp16 or fp32"):
        FeatureCache(tmp_path, key(storage="int8"))  # type: ignore[arg-type]
