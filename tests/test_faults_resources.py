"""Fault suite, family 2: resource bombs. A header's sample rate or length never decides
how much memory we take: rates outside the supported range are refused, resampling
takes bounded memory at every rate inside it, clips longer than the limit are refused
from the header, and one file's failure never stops the others."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.cli.training import data_cli
from emo_toolkit.runtime.audio import MAX_RATE, MAX_SECONDS, MIN_RATE, SAMPLE_RATE, load_audio
from emo_toolkit.runtime.errors import TooLongAudioError, UnsupportedRateError
from emo_toolkit.runtime.resample import resampled_length
from tests.conftest import tone, write_wav
from tests.faults import invoke, json_lines, peak_rss_of, python


def wav_claiming_rate(path: Path, rate: int, seconds: float = 1.0) -> Path:
    """A real 16-bit PCM WAV whose header says `rate` (the samples are a tone)."""
    samples = (tone(seconds) * 32767).astype("<i2")
    data = samples.tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", len(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data)
    return path


@pytest.mark.parametrize("rate", [1, 5, 3_999, 384_001, 2_000_000_000])
def test_rates_outside_the_supported_range_are_refused_from_the_header(tmp_path: Path,
                                                                       rate: int):
    path = wav_claiming_rate(tmp_path / "odd.wav", rate, seconds=0.2)
    with pytest.raises(UnsupportedRateError, match=f"{rate} Hz is outside"):
        load_audio(path)


# Rates whose ratio to 16 kHz does not reduce: torchaudio's kernel for 44101 Hz alone is
# 2.8 GB. Each is resampled in a fresh process that may not map more than 1.5 GB.
AWKWARD = [MIN_RATE + 1, 7_919, 22_051, 44_101, 47_999, 96_001, MAX_RATE - 1]


def test_resampling_memory_is_bounded_at_awkward_rates(tmp_path: Path):
    paths = [wav_claiming_rate(tmp_path / f"r{rate}.wav", rate, seconds=2.0)
             for rate in AWKWARD]
    code = (
        "import sys\nfrom emo_toolkit.runtime.audio import load_audio\n"
        "for p in sys.argv[1:]:\n"
        "    a = load_audio(p)\n"
        "    print(p, a.num_samples, a.original_rate)\n"
    ).replace("sys.argv[1:]", repr([str(p) for p in paths]))
    proc = python(code, address_space_gb=1.5, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(AWKWARD)
    for line, rate in zip(lines, AWKWARD, strict=True):
        _, n, original = line.split()
        assert int(original) == rate
        assert int(n) == resampled_length(2 * 16_000, rate, SAMPLE_RATE)  # 32000 samples sent


def test_an_hour_of_flac_is_refused_from_its_header_in_bounded_memory(tmp_path: Path):
    path = tmp_path / "hour.flac"
    rate = 8_000
    with sf.SoundFile(str(path), "w", rate, 1, "PCM_16", format="FLAC") as f:
        silence = np.zeros(rate * 60, dtype=np.int16)
        for _ in range(60):
            f.write(silence)
    assert path.stat().st_size < 2_000_000
    with pytest.raises(TooLongAudioError, match=f"3600.0 s is longer than the {MAX_SECONDS:g} s"):
        load_audio(path)
    proc = python("from emo_toolkit.runtime.audio import load_audio\n"
                  f"try:\n    load_audio({str(path)!r})\n"
                  "except Exception as e:\n    print(type(e).__name__)\n",
                  address_space_gb=1.0)
    assert proc.stdout.strip() == "TooLongAudioError", proc.stderr


def test_a_long_file_whose_header_hides_its_length_is_stopped_while_decoding(tmp_path: Path):
    # A WAV whose data size is 0xFFFFFFFF ("unknown", as streaming writers leave it).
    rate = 4_000
    data = np.zeros(int(rate * (MAX_SECONDS + 5)), dtype="<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "stream.wav").write_bytes(header + data)
    with pytest.raises(TooLongAudioError):
        load_audio(tmp_path / "stream.wav")


def test_one_bomb_never_stops_the_other_files(tmp_path: Path, tiny_run: Path):
    files = [wav_claiming_rate(tmp_path / "a-awkward.wav", 44_101),
             wav_claiming_rate(tmp_path / "b-tiny-rate.wav", 5),
             write_wav(tmp_path / "c-good.wav", tone(1.0))]
    result = invoke(predict_cli, [tiny_run, *files])
    rows = {Path(r["file"]).name: r for r in json_lines(result.stdout)}
    assert "label" in rows["a-awkward.wav"] and "label" in rows["c-good.wav"]
    assert rows["b-tiny-rate.wav"]["error"] == "unsupported-rate"
    assert result.exit_code == 1 and "1 of 3 file(s) failed" in result.output


def test_scan_reports_bombs_as_skipped_not_as_hours_of_audio(tmp_path: Path):
    write_wav(tmp_path / "anger" / "spk1" / "ok.wav", tone(0.5))
    write_wav(tmp_path / "sadness" / "spk1" / "ok.wav", tone(0.5))
    wav_claiming_rate(tmp_path / "anger" / "spk1" / "slow.wav", 2, seconds=0.1)
    result = invoke(data_cli, ["scan", tmp_path])
    assert result.exit_code == 0, result.output
    assert "[unsupported-rate]" in result.output and "slow.wav" in result.output
    assert "clips    2 usable, 1 skipped" in result.output


def test_predict_of_a_bomb_keeps_memory_bounded_end_to_end(tmp_path: Path, tiny_run: Path):
    bomb = wav_claiming_rate(tmp_path / "awkward.wav", 44_101, seconds=3.0)
    proc, peak_mb = peak_rss_of("emo-predict", tiny_run, bomb)
    assert proc.returncode == 0, proc.stderr
    assert json_lines(proc.stdout)[0]["label"]
    assert peak_mb < 2_000  # torchaudio's resampler alone asked for 2.8 GB here
