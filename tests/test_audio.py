"""Audio loading on real files of every kind the issue lists, good and bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emo_toolkit.runtime.audio import (
    MIN_SAMPLES,
    SAMPLE_RATE,
    load_audio,
    resampled_length,
    validate_audio,
)
from emo_toolkit.runtime.errors import (
    AudioError,
    CorruptAudioError,
    EmptyFileError,
    NonFiniteAudioError,
    TooShortAudioError,
    TruncatedAudioError,
    UnreadableFileError,
    ZeroLengthAudioError,
)
from tests.conftest import tone, write_wav


@pytest.mark.parametrize(
    ("name", "subtype", "tolerance"),
    [
        ("pcm8.wav", "PCM_U8", 1 / 64),
        ("pcm16.wav", "PCM_16", 1e-4),
        ("pcm24.wav", "PCM_24", 1e-6),
        ("pcm32.wav", "PCM_32", 1e-6),
        ("float.wav", "FLOAT", 1e-7),
        ("clip.flac", "PCM_16", 1e-4),
        ("clip.ogg", "VORBIS", 0.05),
    ],
)
def test_reads_every_libsndfile_format(tmp_path: Path, name: str, subtype: str, tolerance: float):
    x = tone(0.5)
    path = write_wav(tmp_path / name, x, subtype=subtype)
    audio = load_audio(path)
    assert audio.samples.dtype == np.float32
    assert audio.sample_rate == audio.original_rate == SAMPLE_RATE
    assert audio.num_samples == len(x)
    assert audio.duration == pytest.approx(0.5)
    assert np.max(np.abs(audio.samples - x)) < tolerance


def test_stereo_44k1_is_mixed_to_mono_and_resampled(tmp_path: Path):
    left = tone(1.0, rate=44_100, freq=440.0, amplitude=0.4)
    right = np.zeros_like(left)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), rate=44_100)
    audio = load_audio(path)
    assert audio.original_rate == 44_100
    assert audio.original_channels == 2
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.num_samples == resampled_length(44_100, 44_100, SAMPLE_RATE) == 16_000
    assert audio.duration == pytest.approx(1.0)
    # The mix halves the left channel; resampling keeps a 440 Hz tone's amplitude.
    middle = audio.samples[2000:-2000]
    assert np.max(np.abs(middle)) == pytest.approx(0.2, abs=0.01)
    spectrum = np.abs(np.fft.rfft(audio.samples))
    assert np.argmax(spectrum) * SAMPLE_RATE / audio.num_samples == pytest.approx(440, abs=2)


def test_8khz_is_upsampled(tmp_path: Path):
    audio = load_audio(write_wav(tmp_path / "tel.wav", tone(0.5, rate=8_000), rate=8_000))
    assert (audio.original_rate, audio.sample_rate, audio.num_samples) == (8_000, 16_000, 8_000)


def test_zero_byte_file(tmp_path: Path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(EmptyFileError, match=r"empty\.wav: the file is empty \(0 bytes\)"):
        load_audio(path)


def test_header_only_file(tmp_path: Path):
    path = write_wav(tmp_path / "header.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(ZeroLengthAudioError, match=r"header\.wav: .*no audio samples"):
        load_audio(path)


def test_header_cut_from_a_full_file_is_truncated(tmp_path: Path):
    full = write_wav(tmp_path / "full.wav", tone(1.0)).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(full[:44])
    with pytest.raises(TruncatedAudioError, match=r"declares 16000 frames but the file holds 0"):
        load_audio(path)


def test_truncated_wav(tmp_path: Path):
    full = write_wav(tmp_path / "full.wav", tone(1.0)).read_bytes()
    path = tmp_path / "truncated.wav"
    path.write_bytes(full[: 44 + 2 * 6000 + 1])  # 6000 whole frames and half of the next
    with pytest.raises(TruncatedAudioError, match=r"truncated\.wav: truncated: .*16000 frames "
                                                  r"but the file holds 6000 \(62% missing\)"):
        load_audio(path)


def test_truncated_flac(tmp_path: Path):
    full = write_wav(tmp_path / "full.flac", tone(1.0)).read_bytes()
    path = tmp_path / "truncated.flac"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(AudioError, match=r"truncated\.flac: .*truncated"):
        load_audio(path)


def test_random_bytes(tmp_path: Path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CorruptAudioError, match=r"noise\.wav: not a readable audio file"):
        load_audio(path)


def test_float_with_nan(tmp_path: Path):
    x = tone(0.5)
    x[1234] = np.nan
    x[2000] = np.inf
    path = write_wav(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match=r"nan\.wav: 2 sample\(s\) .*first at frame 1234"):
        load_audio(path)


def test_100_sample_clip_is_rejected(tmp_path: Path):
    path = write_wav(tmp_path / "short.wav", tone(1.0)[:100])
    with pytest.raises(TooShortAudioError, match=r"short\.wav: 100 samples .*at least 400"):
        load_audio(path)
    with pytest.raises(TooShortAudioError):
        validate_audio(path)


def test_short_policy_is_judged_after_resampling(tmp_path: Path):
    # 300 samples at 48 kHz are 100 at 16 kHz: too short, though 300 < 400 alone would say so too;
    # 1000 samples at 48 kHz are 334 at 16 kHz: too short although 1000 >= 400.
    path = write_wav(tmp_path / "short48k.wav", tone(1.0, rate=48_000)[:1000], rate=48_000)
    with pytest.raises(TooShortAudioError, match="334 samples at 16000 Hz"):
        load_audio(path)
    # Exactly the minimum is accepted.
    ok = write_wav(tmp_path / "min.wav", tone(1.0)[:MIN_SAMPLES])
    assert load_audio(ok).num_samples == MIN_SAMPLES


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(UnreadableFileError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        load_audio(tmp_path)


def test_validate_matches_load_without_resampling(tmp_path: Path):
    path = write_wav(tmp_path / "a.wav", tone(0.5, rate=22_050), rate=22_050)
    checked = validate_audio(path)
    assert checked.sample_rate == 22_050 and checked.num_samples == 11_025
    assert load_audio(path).duration == pytest.approx(checked.duration, abs=1e-4)


@pytest.mark.parametrize(("name", "fmt", "subtype"), [("clip.mp3", "MP3", "MPEG_LAYER_III"),
                                                     ("clip.opus", "OGG", "OPUS"),
                                                     ("clip.aiff", "AIFF", "PCM_16")])
def test_compressed_and_other_containers_decode(tmp_path: Path, name: str, fmt: str, subtype: str):
    import soundfile as sf

    x = tone(1.0)
    sf.write(str(tmp_path / name), x, SAMPLE_RATE, format=fmt, subtype=subtype)
    audio = load_audio(tmp_path / name)
    assert audio.num_samples == len(x)
    rms = float(np.sqrt(np.mean(audio.samples**2)))
    assert rms == pytest.approx(float(np.sqrt(np.mean(x**2))), rel=0.1)


def test_audio_errors_survive_pickling(tmp_path: Path):
    """DataLoader workers send errors back to the main process by pickling them."""
    import pickle

    err = TooShortAudioError(tmp_path / "x.wav", "too short")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is TooShortAudioError and str(back) == str(err) and back.reason == "too-short"
