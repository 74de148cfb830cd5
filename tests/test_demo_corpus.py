"""The synthetic demo corpus: determinism, layout, speakers, durations, distinct prosody."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.data.demo_corpus import EMOTIONS, DemoCorpusConfig, make_demo_corpus
from emo_toolkit.runtime.errors import DatasetError


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


def test_same_seed_gives_byte_identical_files(tmp_path: Path, demo_corpus: Path):
    config = DemoCorpusConfig(seed=3, speakers=6, clips_per_speaker_emotion=2)
    again = make_demo_corpus(tmp_path / "again", config, progress=False)
    assert digest(again) == digest(demo_corpus)
    other_config = DemoCorpusConfig(seed=4, speakers=6, clips_per_speaker_emotion=2)
    other = make_demo_corpus(tmp_path / "other", other_config, progress=False)
    assert set(digest(other)) == set(digest(demo_corpus))
    assert not set(digest(other).values()) & set(digest(demo_corpus).values())


def test_layout_speakers_labels_and_durations(demo_corpus: Path):
    ds = load_dataset(demo_corpus)
    assert ds.layout == "folders"
    assert ds.labels == ("angry", "disgust", "fear", "happy", "sad")
    assert ds.speakers == tuple(f"spk0{i}" for i in range(1, 7)) and ds.speakers_known
    assert len(ds.clips) == 60 and not ds.skipped
    for clip in ds.clips:
        info = sf.info(str(clip.path))
        assert info.samplerate == 16_000 and info.channels == 1 and info.subtype == "PCM_16"
        assert 1.0 <= info.duration <= 4.0
        assert clip.path.name.startswith(clip.speaker)


def pitch_hz(x: np.ndarray, sr: int = 16_000) -> float:
    """Median autocorrelation pitch over the loud 40 ms frames."""
    frame, estimates = 640, []
    loud = 0.5 * np.sqrt(np.mean(x**2))
    for start in range(0, len(x) - frame, frame):
        w = x[start:start + frame]
        if np.sqrt(np.mean(w**2)) < loud:
            continue
        ac = np.correlate(w, w, "full")[frame - 1:]
        lo, hi = sr // 500, sr // 60
        estimates.append(sr / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(estimates))


def test_emotions_differ_in_energy_and_pitch(demo_corpus: Path):
    rms: dict[str, list[float]] = {e: [] for e in EMOTIONS}
    pitch: dict[str, list[float]] = {e: [] for e in EMOTIONS}
    for path in demo_corpus.rglob("*.wav"):
        x, _ = sf.read(str(path))
        emotion = path.parts[-3]
        rms[emotion].append(float(np.sqrt(np.mean(x**2))))
        pitch[emotion].append(pitch_hz(x))
    mean_rms = {e: np.mean(v) for e, v in rms.items()}
    mean_pitch = {e: np.median(v) for e, v in pitch.items()}
    assert mean_rms["anger"] > mean_rms["happiness"] > mean_rms["fear"] > mean_rms["sadness"]
    assert mean_rms["anger"] > 3 * mean_rms["sadness"]
    assert min(mean_pitch["fear"], mean_pitch["happiness"], mean_pitch["anger"]) > \
        1.2 * max(mean_pitch["sadness"], mean_pitch["disgust"])


def test_existing_corpus_is_reused_and_other_folders_are_never_overwritten(tmp_path: Path):
    config = DemoCorpusConfig(speakers=1, clips_per_speaker_emotion=1)
    root = make_demo_corpus(tmp_path / "c", config, progress=False)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")}
    make_demo_corpus(root, config, progress=False)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.wav")} == stamp

    user = tmp_path / "mine"
    user.mkdir()
    (user / "precious.wav").write_bytes(b"user data")
    with pytest.raises(DatasetError, match="--force"):
        make_demo_corpus(user, config, progress=False)
    assert (user / "precious.wav").read_bytes() == b"user data"
    with pytest.raises(DatasetError):
        make_demo_corpus(root, DemoCorpusConfig(seed=1, speakers=1, clips_per_speaker_emotion=1),
                         progress=False)
    make_demo_corpus(user, config, progress=False, force=True)
    assert not (user / "precious.wav").exists() and len(list(user.rglob("*.wav"))) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_config_is_validated():
    with pytest.raises(ValueError, match="speakers must be between 1 and 8"):
        DemoCorpusConfig(speakers=0)
    with pytest.raises(ValueError, match="min_seconds"):
        DemoCorpusConfig(min_seconds=3, max_seconds=2)
