"""A deterministic synthetic emotional-speech corpus, for smoke runs and tests only.

It is NOT a benchmark of emotion recognition: the "emotions" are prosody
settings of a source-filter synthesiser, far easier to tell apart than real
speech. Each clip is a sequence of vowel-like syllables: a glottal source (a
sum of harmonics of a moving f0, with spectral tilt, jitter, tremor and
aspiration noise) shaped by three formants, with noise bursts for consonants.
Emotions differ in pitch level and range, speaking rate, energy and voice
quality; speakers differ in base pitch, vocal-tract length and tempo.

Layout (the notebook's "folders" layout, speakers in sub-folders):
    ROOT/<emotion>/<speaker>/<speaker>_<emotion>_<nnn>.wav   (16 kHz, 16-bit PCM)
Same seed and settings -> byte-identical files (on the same numpy build).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from emo_toolkit.runtime.audio import SAMPLE_RATE
from emo_toolkit.runtime.errors import DatasetError
from emo_toolkit.runtime.io import InputFileError, atomic_write_json, pid_alive, read_json_file
from emo_toolkit.runtime.progress import progress_iter

GENERATOR_VERSION = 1
MARKER = "demo-corpus.json"
HOP = 80  # 5 ms control frames at 16 kHz
MAX_HARMONIC_HZ = 5_000.0


@dataclass(frozen=True)
class Prosody:
    pitch: float        # multiplier on the speaker's base f0
    range_st: float     # accent excursion, semitones
    rate: float         # syllables per second
    energy_db: float    # loudness relative to the corpus reference
    breathiness: float  # aspiration noise relative to the voiced signal
    tilt: float         # harmonic amplitude ~ k**-tilt (higher: darker, softer voice)
    jitter: float       # random f0 perturbation, fraction of f0
    tremor: float       # 7 Hz f0 modulation depth, fraction of f0


# Folder names as the original notebook's corpus had them.
EMOTIONS: dict[str, Prosody] = {
    "anger":     Prosody(1.25, 5.0, 6.0, 6.0, 0.02, 0.7, 0.010, 0.00),
    "disgust":   Prosody(0.92, 4.0, 3.2, -2.0, 0.12, 1.5, 0.040, 0.00),
    "fear":      Prosody(1.45, 2.0, 7.0, 0.0, 0.40, 1.3, 0.020, 0.06),
    "happiness": Prosody(1.30, 11.0, 4.4, 3.0, 0.08, 1.0, 0.005, 0.00),
    "sadness":   Prosody(0.86, 1.0, 2.4, -8.0, 0.30, 2.0, 0.008, 0.00),
}


@dataclass(frozen=True)
class Speaker:
    name: str
    f0: float            # base pitch, Hz
    formant_scale: float  # vocal-tract length: >1 shorter tract, higher formants
    tempo: float          # multiplier on the speaking rate


SPEAKERS = (
    Speaker("spk01", 105.0, 1.00, 1.00),
    Speaker("spk02", 210.0, 1.17, 1.05),
    Speaker("spk03", 122.0, 0.96, 0.92),
    Speaker("spk04", 188.0, 1.14, 1.10),
    Speaker("spk05", 96.0, 0.93, 0.97),
    Speaker("spk06", 232.0, 1.21, 1.03),
    Speaker("spk07", 140.0, 1.04, 0.95),
    Speaker("spk08", 172.0, 1.10, 1.07),
)

VOWELS = np.array([  # F1, F2, F3 (Hz) of a few adult vowels
    [730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480],
    [570, 840, 2410], [300, 870, 2240], [660, 1720, 2410],
])
BANDWIDTHS = np.array([90.0, 110.0, 170.0])


@dataclass(frozen=True)
class DemoCorpusConfig:
    seed: int = 0
    speakers: int = 8
    clips_per_speaker_emotion: int = 10
    min_seconds: float = 1.0
    max_seconds: float = 4.0

    def __post_init__(self) -> None:
        if not 1 <= self.speakers <= len(SPEAKERS):
            raise ValueError(f"speakers must be between 1 and {len(SPEAKERS)}, got {self.speakers}")
        if self.clips_per_speaker_emotion < 1:
            raise ValueError("clips_per_speaker_emotion must be at least 1")
        if not 0.1 <= self.min_seconds <= self.max_seconds:
            raise ValueError("need 0.1 <= min_seconds <= max_seconds")


def synthesize_clip(speaker: Speaker, prosody: Prosody, rng: np.random.Generator,
                    seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One speech-like clip, float32 in [-1, 1]."""
    n = round(seconds * sr)
    frames = n // HOP + 2
    t_frames = np.arange(frames) * HOP / sr

    # Per-clip variation, so classes overlap a little as real speech does.
    rate = prosody.rate * speaker.tempo * rng.uniform(0.88, 1.12)
    f0_base = speaker.f0 * prosody.pitch * rng.uniform(0.93, 1.07)

    voiced_amp, formants, accent, consonant = _syllable_tracks(rng, t_frames, rate, seconds)
    formants = formants * speaker.formant_scale

    semitones = (
        -2.0 * t_frames / max(seconds, 1e-3)                     # declination
        + prosody.range_st * accent * rng.uniform(0.7, 1.0)
        + prosody.jitter * 17.3 * rng.standard_normal(frames)    # 17.3 st ~ fraction of f0
        + prosody.tremor * 17.3 * np.sin(2 * np.pi * 7.0 * t_frames)
    )
    f0_frames = f0_base * 2.0 ** (semitones / 12.0)

    t = np.arange(n) / sr
    f0 = np.interp(t, t_frames, f0_frames)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    amp = np.interp(t, t_frames, voiced_amp)

    voiced = np.zeros(n)
    max_k = int(MAX_HARMONIC_HZ // f0_frames.min())
    for k in range(1, max_k + 1):
        gain_frames = _formant_gain(k * f0_frames, formants) * k ** -prosody.tilt
        gain_frames[k * f0_frames > MAX_HARMONIC_HZ] = 0.0
        voiced += np.interp(t, t_frames, gain_frames) * np.sin(k * phase)
    voiced *= amp

    noise = np.diff(rng.standard_normal(n + 1))  # first difference: a brighter noise
    aspiration = prosody.breathiness * amp * noise * (0.6 + 0.4 * np.cos(phase))
    fricative = 0.25 * np.interp(t, t_frames, consonant) * noise
    signal = voiced + aspiration + fricative

    rms = np.sqrt(np.mean(signal**2)) + 1e-12
    target = 0.05 * 10 ** ((prosody.energy_db + rng.uniform(-1.5, 1.5)) / 20)
    signal *= target / rms
    signal += 10 ** (-60 / 20) * rng.standard_normal(n)  # room noise floor
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def speech_like(seconds: float, index: int, sr: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A synthetic clip for test and benchmark inputs: speaker and emotion cycle with
    `index`, and the same (seed, index) gives the same samples."""
    emotion = list(EMOTIONS.values())[index % len(EMOTIONS)]
    return synthesize_clip(SPEAKERS[index % len(SPEAKERS)], emotion,
                           np.random.default_rng([seed, index]), seconds, sr)


def _syllable_tracks(rng: np.random.Generator, t: np.ndarray, rate: float, seconds: float):
    """Frame-level voiced amplitude, formants (frames x 3), accent shape and consonant noise."""
    frames = len(t)
    voiced_amp = np.zeros(frames)
    accent = np.zeros(frames)
    consonant = np.zeros(frames)
    formants = np.tile(VOWELS[0].astype(float), (frames, 1))
    start = rng.uniform(0.04, 0.12)
    end = seconds - rng.uniform(0.04, 0.12)
    pos, vowel = start, VOWELS[rng.integers(len(VOWELS))]
    while pos < end:
        length = min(rng.uniform(0.75, 1.25) / rate, end - pos)
        onset = pos + length * rng.uniform(0.2, 0.35)
        in_consonant = (t >= pos) & (t < onset)
        in_vowel = (t >= onset) & (t < pos + length)
        consonant[in_consonant] = rng.uniform(0.3, 1.0)
        if in_vowel.any():
            u = (t[in_vowel] - onset) / max(pos + length - onset, 1e-3)
            shape = np.sin(np.pi * u) ** 0.6
            voiced_amp[in_vowel] = shape * rng.uniform(0.7, 1.0)
            if rng.random() < 0.4:  # an accented syllable
                accent[in_vowel] = np.sin(np.pi * u)
            nxt = VOWELS[rng.integers(len(VOWELS))]
            formants[in_vowel] = vowel + np.outer(np.clip(u * 3, 0, 1), nxt - vowel)
            vowel = nxt
        pos += length
        if rng.random() < 0.08:  # a short pause
            pos += rng.uniform(0.1, 0.2)
    return voiced_amp, formants, accent, consonant


def _formant_gain(freq: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Sum of three resonance peaks (Lorentzian) at each frame's formants."""
    half_bw = BANDWIDTHS / 2
    peaks = 1.0 / (1.0 + ((freq[:, None] - formants) / half_bw) ** 2)
    return peaks @ np.array([1.0, 0.7, 0.35]) + 0.02


def clip_plan(config: DemoCorpusConfig) -> list[tuple[Speaker, str, int]]:
    return [
        (speaker, emotion, i)
        for speaker in SPEAKERS[: config.speakers]
        for emotion in EMOTIONS
        for i in range(config.clips_per_speaker_emotion)
    ]


def make_demo_corpus(root: str | Path, config: DemoCorpusConfig = DemoCorpusConfig(),
                     *, progress: bool = True, force: bool = False) -> Path:
    """Write the corpus to `root` (atomically: a temporary folder renamed into place).

    An existing corpus made with the same settings is reused; any other existing
    folder is left alone unless `force` is given, so no user data is overwritten.
    """
    root = Path(root)
    marker = {"generator_version": GENERATOR_VERSION, "config": asdict(config)}
    if root.exists():
        if _read_marker(root) == marker:
            return root
        if not force:
            raise DatasetError(
                f"{root} exists and is not a demo corpus made with these settings; "
                "choose another folder or pass --force to replace it"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_builds(root)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.{os.getpid()}.",
                                suffix=".tmp"))
    try:
        emotion_index = {e: j for j, e in enumerate(EMOTIONS)}
        plan = clip_plan(config)
        for speaker, emotion, i in progress_iter(plan, len(plan), "synthesising demo corpus",
                                                 "clip", enabled=progress):
            speaker_index = int(speaker.name[3:])
            rng = np.random.default_rng([config.seed, speaker_index, emotion_index[emotion], i])
            seconds = rng.uniform(config.min_seconds, config.max_seconds)
            audio = synthesize_clip(speaker, EMOTIONS[emotion], rng, seconds)
            out = tmp / emotion / speaker.name / f"{speaker.name}_{emotion}_{i:03d}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(out), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        atomic_write_json(tmp / MARKER, {**marker, "clips": len(plan),
                                         "note": "synthetic; for smoke runs, not a benchmark"})
        if root.is_dir() and not root.is_symlink():
            shutil.rmtree(root)
        elif root.exists() or root.is_symlink():
            root.unlink()
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root


def _read_marker(root: Path) -> dict | None:
    try:
        data = read_json_file(root / MARKER)
    except InputFileError:
        return None
    if not isinstance(data, dict):
        return None
    return {k: data.get(k) for k in ("generator_version", "config")}


def _remove_dead_builds(root: Path) -> None:
    """Delete the temporary folders of builds of `root` whose process was killed."""
    for tmp in root.parent.glob(f".{root.name}.*.tmp"):
        pid = tmp.name[len(root.name) + 2:].split(".", 1)[0]
        if tmp.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
