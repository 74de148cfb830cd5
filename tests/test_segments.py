"""Long recordings: cuts at pauses, window and minimum respected, file-level means, and
memory that stays flat as the recording grows."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.runtime.recognizer import (
    Prediction,
    Recognizer,
    RecordingPrediction,
    SegmentPrediction,
)
from emo_toolkit.runtime.segments import Segmenter, segment
from tests.faults import json_lines, peak_rss_of

RATE = 16_000


def bursts(seconds: list[float], pauses: list[float], seed: int = 0) -> tuple[np.ndarray, list]:
    """Speech-like bursts separated by silent pauses; returns the signal and the pauses
    as [start, end) sample ranges."""
    parts, gaps, t = [], [], 0
    for i, s in enumerate(seconds):
        burst = speech_like(s, seed + i)
        parts.append(burst)
        t += burst.size
        if i < len(pauses):
            gap = np.zeros(round(pauses[i] * RATE), np.float32)
            gaps.append((t, t + gap.size))
            parts.append(gap)
            t += gap.size
    return np.concatenate(parts), gaps


def cut(x: np.ndarray, window_s: float, block: int = 7_777, min_samples: int = 400):
    blocks = (x[i:i + block] for i in range(0, x.size, block))
    return list(segment(blocks, RATE, round(window_s * RATE), min_samples))


def test_cuts_fall_in_pauses_and_cover_the_recording():
    # Every second half of a 6 s window holds one of the inserted pauses, which are longer
    # than the syllable gaps inside the bursts: the cuts must all fall in inserted pauses.
    rng = np.random.default_rng(1)
    x, gaps = bursts(list(rng.uniform(1.0, 2.4, 25)), list(rng.uniform(0.25, 0.6, 24)))
    window = round(6.0 * RATE)
    parts = cut(x, 6.0)
    assert parts[0].start == 0 and parts[-1].end == x.size
    for a, b in itertools.pairwise(parts):
        assert a.end == b.start  # contiguous: no gap, no overlap
    for p in parts:
        assert 400 <= p.length <= window
        assert np.array_equal(p.samples, x[p.start:p.end])
    for p in parts[:-1]:  # every cut is inside a pause
        assert any(a <= p.end < b for a, b in gaps), p.end / RATE
    # deterministic, whatever the block size
    again = cut(x, 6.0, block=50_000)
    assert [(p.start, p.end) for p in again] == [(p.start, p.end) for p in parts]


def test_without_pauses_the_fallback_is_fixed_windows():
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 25 * RATE).astype(np.float32)
    parts = cut(noise, 4.0)
    assert [p.length for p in parts[:-1]] == [4 * RATE] * 6
    assert parts[-1].length == RATE


def test_a_short_tail_joins_or_borrows_from_the_segment_before():
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 4 * RATE + 100).astype(np.float32)
    parts = cut(noise, 4.0)  # the 100-sample tail is below the 400-sample minimum
    assert [p.length for p in parts] == [4 * RATE + 100 - 400, 400]
    short = cut(noise[:300], 4.0)
    assert [p.length for p in short] == [300]  # the caller refuses it (too short)
    with pytest.raises(ValueError, match="too short"):
        Segmenter(RATE, 1_000, 400)


def test_file_level_result_is_the_duration_weighted_mean():
    labels = ("a", "b")
    def part(start: float, end: float, pa: float) -> SegmentPrediction:
        logits = np.log([pa, 1 - pa])
        return SegmentPrediction(start, end, Prediction.from_logits(logits, labels))
    whole = RecordingPrediction.from_segments([part(0, 1, 0.9), part(1, 4, 0.2)], labels)
    # (1 s x 0.9 + 3 s x 0.2) / 4 s = 0.375 for "a"
    assert whole.probabilities["a"] == pytest.approx(0.375)
    assert whole.probabilities["b"] == pytest.approx(0.625)
    assert whole.label == "b" and whole.duration == 4


def test_a_recording_gives_segments_a_mean_and_a_timeline(tiny_onnx: Path, tmp_path: Path):
    x, _ = bursts([2.0, 3.0, 2.5, 3.5, 2.0], [0.4, 0.5, 0.3, 0.6])
    runtime = Recognizer.open(tiny_onnx)
    result = runtime.predict_recording(x, RATE, window=4.0)
    assert len(result.segments) >= 4 and result.duration == pytest.approx(x.size / RATE)
    for s in result.segments:  # each segment equals predicting its samples alone
        alone = runtime.predict(x[round(s.start * RATE):round(s.end * RATE)], RATE)
        assert np.abs(np.array(alone.logits) - np.array(s.prediction.logits)).max() < 1e-5
    path = tmp_path / "rec.flac"
    sf.write(str(path), np.stack([x, x], axis=1), 16_000)
    from emo_toolkit.cli.predict import main as predict_cli
    from tests.faults import invoke

    png = tmp_path / "timeline.png"
    out = invoke(predict_cli, [tiny_onnx, path, "--window", "4", "--segments", "--timeline", png])
    assert out.exit_code == 0, out.output
    rows = json_lines(out.stdout)
    assert [r["segment"] for r in rows[:-1]] == list(range(len(result.segments)))
    assert rows[-1]["segments"] == len(result.segments) and rows[-1]["label"] == result.label
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _recording(path: Path, minutes: float) -> Path:
    """Speech-like audio with pauses, written a minute at a time."""
    with sf.SoundFile(str(path), "w", RATE, 1, "PCM_16", format="FLAC") as f:
        for m in range(int(minutes)):
            rng = np.random.default_rng(m)
            x, _ = bursts(list(rng.uniform(1.5, 3.0, 30)), list(rng.uniform(0.2, 0.5, 30)), m)
            f.write(x[:60 * RATE])
    return path


def test_memory_stays_flat_as_the_recording_grows(tiny_onnx: Path, tmp_path: Path):
    short = _recording(tmp_path / "one.flac", 1)
    long = _recording(tmp_path / "ten.flac", 10)
    peaks = {}
    for name, path in (("1 min", short), ("10 min", long)):
        proc, peaks[name] = peak_rss_of("emo-predict", tiny_onnx, path, "--window", "5")
        assert proc.returncode == 0, proc.stderr
        (row,) = json_lines(proc.stdout)
        assert row["duration"] == pytest.approx(60 * int(name.split()[0]), abs=0.01)
    assert peaks["10 min"] < 1.1 * peaks["1 min"], peaks
