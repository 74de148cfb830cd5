"""Family: nothing vanishes silently. A clip the user pointed at is used or reported with
its reason: label folders that are symbolic links are followed (each real folder once), a
folder that cannot be listed is a skip (scan, training) or an error row (emo-predict).
Permission cases run as an unprivileged user: root's override would hide them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from emo_toolkit.data.datasets import load_dataset
from tests.conftest import tone, write_wav
from tests.faults import BIN, json_lines


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's own are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="emo-faults-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for folder, dirs, _ in os.walk(root):
            for d in dirs:
                (Path(folder) / d).chmod(0o755)
        shutil.rmtree(root)


def as_nobody(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as an unprivileged user")
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HOME": "/tmp", "TQDM_DISABLE": "1"})


def test_symlinked_label_folders_are_followed_once(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere" / "sad-clips"
    for i in range(2):
        write_wav(elsewhere / f"s{i}.wav", tone(0.6, freq=200 + 40 * i))
        write_wav(tmp_path / "c" / "anger" / f"a{i}.wav", tone(0.6, freq=300 + 40 * i))
    (tmp_path / "c" / "sadness").symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "c" / "anger" / "loop").symlink_to(tmp_path / "c", target_is_directory=True)
    ds = load_dataset(tmp_path / "c")
    assert sorted((c.label, c.path.name) for c in ds.clips) == [
        ("angry", "a0.wav"), ("angry", "a1.wav"), ("sad", "s0.wav"), ("sad", "s1.wav")]


def test_an_unreadable_folder_is_reported_by_scan_and_predict(shared_dir: Path,
                                                              tiny_onnx: Path):
    corpus = shared_dir / "corpus"
    for label in ("anger", "sadness"):
        for i in range(2):
            write_wav(corpus / label / f"{label}{i}.wav", tone(0.6, freq=200 + 50 * i))
    locked = corpus / "sadness" / "locked"
    write_wav(locked / "hidden-from-us.wav", tone(0.6))
    model = shutil.copy(tiny_onnx, shared_dir / "model.onnx")
    for p in (corpus, *corpus.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    locked.chmod(0o000)

    scan = as_nobody(BIN / "emo-data", "scan", corpus)
    assert scan.returncode == 0, scan.stderr
    assert f"[unreadable] {locked}: cannot list this folder (Permission denied)" in scan.stdout
    predicted = as_nobody(BIN / "emo-predict", model, corpus)
    assert predicted.returncode == 1, predicted.stderr
    rows = json_lines(predicted.stdout)
    assert sum("label" in r for r in rows) == 4
    assert [r for r in rows if "error" in r] == [
        {"file": str(locked), "error": "unreadable",
         "message": "cannot list this folder (Permission denied)", "untrained": True}]


@pytest.mark.parametrize(("fmt", "subtype", "ext"), [("OGG", "VORBIS", "ogg"),
                                                     ("OGG", "OPUS", "opus"),
                                                     ("MP3", "MPEG_LAYER_III", "mp3")])
def test_truncated_or_bit_flipped_compressed_audio_is_an_error(tmp_path: Path, fmt: str,
                                                               subtype: str, ext: str):
    """libsndfile decodes these without an error code (Opus: its frame count comes from the
    last page that is there, and a page failing its checksum is dropped): up to 75 % of the
    audio went missing silently. The file must be refused instead: every damaged Ogg file
    (pages carry checksums), and every MP3 whose decoder logs an error or loses frames."""
    import numpy as np
    import soundfile as sf

    from emo_toolkit.runtime.audio import load_audio
    from emo_toolkit.runtime.errors import CorruptAudioError, TruncatedAudioError

    t = np.arange(16_000 * 4)
    intact = tmp_path / f"intact.{ext}"
    sf.write(intact, (0.3 * np.sin(t / 5) * np.sin(t / 3000)).astype(np.float32), 16_000,
             format=fmt, subtype=subtype)
    assert load_audio(intact).samples.size == t.size
    data = intact.read_bytes()
    damaged = {}
    for share in (0.33, 0.7, 0.95):
        damaged[f"truncated-{share}"] = data[:int(len(data) * share)]
    for share in (0.3, 0.5, 0.8):
        flipped = bytearray(data)
        for k in range(5):
            flipped[int(len(data) * share) + 97 * k] ^= 0xFF
        damaged[f"flipped-{share}"] = bytes(flipped)
    refused = 0
    for name, content in damaged.items():
        path = tmp_path / f"{name}.{ext}"
        path.write_bytes(content)
        if fmt == "MP3" and _decoder_is_silent(path, t.size):
            continue  # no checksum in MP3: a flip the decoder takes cannot be seen
        with pytest.raises((CorruptAudioError, TruncatedAudioError)):
            load_audio(path)
        refused += 1
    assert refused >= (5 if fmt == "MP3" else 6)  # Ogg pages carry checksums: all of them


def _decoder_is_silent(path: Path, frames: int) -> bool:
    """Whether libsndfile decodes every frame of `path` with nothing in its error log."""
    import soundfile as sf

    from emo_toolkit.runtime.io import native_stderr

    try:
        with native_stderr() as log:
            decoded = sf.read(path)[0]
    except RuntimeError:
        return False
    return "error" not in log[0] and len(decoded) >= frames
