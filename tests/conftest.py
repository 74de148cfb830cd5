"""Shared fixtures: small real audio files written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from toolkit.demo_corpus import DemoCorpusConfig, make_demo_corpus


def tone(seconds: float = 0.5, rate: int = 16_000, freq: float = 220.0,
         amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray | None = None, rate: int = 16_000,
              subtype: str = "PCM_16") -> Path:
    """Write a real audio file (format from the suffix), creating folders as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(rate=rate) if samples is None else samples, rate, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo corpus: 6 speakers x 5 emotions x 2 clips, made once per test session."""
    root = tmp_path_factory.mktemp("demo") / "corpus"
    return make_demo_corpus(root, DemoCorpusConfig(seed=3, speakers=6,
                                                   clips_per_speaker_emotion=2), progress=False)
