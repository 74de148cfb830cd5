"""Windows from the training data: a run records its training clips' durations, exports
carry them, recordings and streams default to their 90th percentile, emo-predict says
which window it uses and warns outside the training range, and the default window gives a
recording of known clips their labels back far more often than a 10 s window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.data.datasets import load_dataset
from emo_toolkit.data.demo_corpus import DemoCorpusConfig, make_demo_corpus
from emo_toolkit.runtime.errors import ArtifactError
from emo_toolkit.runtime.formats.base import sidecar_path
from emo_toolkit.runtime.predictions import ModelInfo
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.runtime.windows import (
    UNKNOWN_WINDOW_S,
    ClipDurations,
    Window,
    default_window_s,
    window_warning,
)

RATE = 16_000


def test_the_run_and_its_export_record_the_training_clips_durations(tiny_run: Path,
                                                                     tiny_onnx: Path):
    (split,) = (tiny_run / "splits").iterdir()
    recorded = json.loads((split / "split.json").read_text())
    root = Path(json.loads((tiny_run / "dataset.json").read_text())["root"])
    seconds = [sf.info(str(root / f)).duration for f in recorded["train"]]
    expected = ClipDurations.of(seconds)
    assert expected.count == len(recorded["train"]) > 10
    assert recorded["training_durations"] == expected.to_json()
    assert round(float(np.percentile(seconds, 90)), 3) == expected.p90
    metadata = json.loads(sidecar_path(tiny_onnx).read_text())
    assert metadata["training_durations"] == expected.to_json()
    recognizer = Recognizer.open(tiny_onnx)
    assert recognizer.info.durations == expected
    assert recognizer.default_window_s == max(1.0, expected.p90)
    assert recognizer.window().samples == round(max(1.0, expected.p90) * RATE)


def test_default_window_rules():
    d = ClipDurations(100, 1.0, 2.5, 3.6, 4.0)
    assert default_window_s(d, None) == 3.6
    assert default_window_s(d, 2.0) == 2.0  # capped by what the artifact takes
    assert default_window_s(ClipDurations(3, 0.2, 0.4, 0.5, 0.6), None) == 1.0  # at least 1 s
    assert default_window_s(None, None) == UNKNOWN_WINDOW_S
    assert default_window_s(None, 5.0) == 5.0
    assert window_warning(3.6, d) is None and window_warning(8.0, d) is None
    assert "outside what the model was trained on" in window_warning(10.0, d)
    assert "outside" in window_warning(0.5, d)
    assert window_warning(30.0, None) is None


def test_metadata_without_durations_and_with_bad_ones(tiny_onnx: Path):
    metadata = json.loads(sidecar_path(tiny_onnx).read_text())
    del metadata["training_durations"]
    old = ModelInfo.from_metadata(metadata, "old.onnx", "onnx")
    assert old.durations is None and old.default_window_s == UNKNOWN_WINDOW_S
    for bad in ({"count": 3}, {"count": 0, "min": 1, "median": 1, "p90": 1, "max": 1},
                {"count": 3, "min": 2, "median": 1, "p90": 1, "max": 1}, [1, 2]):
        with pytest.raises(ArtifactError, match="bad.onnx: its emo_toolkit metadata "
                                                r"training_durations"):
            ModelInfo.from_metadata({**metadata, "training_durations": bad}, "bad.onnx", "onnx")


def test_emo_predict_says_its_window_and_warns_outside_the_training_range(
        tiny_onnx: Path, demo_corpus: Path):
    clip = next(demo_corpus.rglob("*.wav"))
    durations = Recognizer.open(tiny_onnx).info.durations
    assert durations is not None
    result = CliRunner().invoke(predict_cli, [str(tiny_onnx), str(clip)])
    assert result.exit_code == 0, result.output
    assert (f"window: {max(1.0, durations.p90):g} s (the default, from the model's "
            f"{durations.count} training clips of") in result.stderr
    assert "warning: a window" not in result.stderr
    result = CliRunner().invoke(predict_cli, [str(tiny_onnx), str(clip), "--window", "30"])
    assert result.exit_code == 0 and "window: 30 s (--window)" in result.stderr
    assert "warning: a window of 30 s is outside what the model was trained on" in \
        result.stderr


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model that has learned the demo corpus (200 clips of 1 to 4 s, 40 epochs on the
    tiny extractor's features), exported: the corpus and the artifact."""
    from emo_toolkit.export.exporter import export_run
    from emo_toolkit.train.loop import TrainConfig
    from emo_toolkit.train.run import run_training
    from emo_toolkit.train.run_config import (
        DataOptions,
        ExtractorOptions,
        HeadOptions,
        RunConfig,
    )

    root = tmp_path_factory.mktemp("learned")
    corpus = make_demo_corpus(root / "corpus", DemoCorpusConfig(
        seed=3, speakers=8, clips_per_speaker_emotion=5), progress=False)
    config = RunConfig(DataOptions(str(corpus)),
                       extractor=ExtractorOptions("hubert_tiny", untrained=True,
                                                  cache=str(root / "cache"), workers=0),
                       head=HeadOptions(embed_dim=64, conv_channels=64, lstm_hidden=64),
                       train=TrainConfig(epochs=40, patience=15))
    run_training(config, root / "run", progress=False)
    return corpus, export_run(root / "run", "onnx", out_dir=root / "export").path


def test_the_default_window_gives_a_recording_of_known_clips_their_labels_back(
        learned: tuple[Path, Path]):
    """Every clip of the corpus, with a 0.3 s pause after each, as one 9.5-minute recording:
    each segment's label is compared with the label of the clip it overlaps most (its true
    label, and the label the model gives that clip alone). The default window (the training
    clips' 90th percentile, 3.6 s here) gets them back far more often than 10 s windows,
    which mix several clips."""
    corpus, artifact = learned
    recognizer = Recognizer.open(artifact)
    clips = load_dataset(corpus).clips
    order = np.random.default_rng(0).permutation(len(clips))
    parts, spans, position = [], [], 0
    for i in order:
        x, rate = sf.read(str(clips[i].path), dtype="float32")
        assert rate == RATE
        alone = recognizer.predict(x, RATE).label
        parts += [x, np.zeros(int(0.3 * RATE), np.float32)]
        spans.append((position, position + len(x) + int(0.3 * RATE), clips[i].label, alone))
        position = spans[-1][1]
    recording = np.concatenate(parts)
    assert len(recording) / RATE > 500

    def agreement(window: float | None) -> tuple[float, float]:
        segments = recognizer.predict_recording(recording, RATE, window=window).segments
        true = alone = 0
        for s in segments:
            a, b = round(s.start * RATE), round(s.end * RATE)
            best = max(spans, key=lambda c: min(b, c[1]) - max(a, c[0]))
            true += s.prediction.label == best[2]
            alone += s.prediction.label == best[3]
        return true / len(segments), alone / len(segments)

    assert 3.0 < recognizer.default_window_s < 4.0
    default_true, default_alone = agreement(None)
    long_true, long_alone = agreement(10.0)
    assert default_true >= 1.4 * long_true and default_alone >= 1.5 * long_alone, \
        (default_true, long_true, default_alone, long_alone)


def test_window_values_resolve_once_and_say_where_they_come_from(tiny_onnx: Path,
                                                                  capped_onnx: Path):
    info = Recognizer.open(tiny_onnx).info
    default = info.window()
    assert default.asked_s is None and not default.capped
    assert default.samples == round(max(1.0, info.durations.p90) * RATE)
    assert default.describe().startswith(f"{default.seconds:g} s (the default, from the model's")
    asked = info.window(2.5)
    assert (asked.samples, asked.describe(), asked.to_json()) == (
        40_000, "2.5 s (--window)", {"seconds": 2.5, "samples": 40_000, "default": False,
                                     "capped": False})
    assert info.window(asked) is asked  # a resolved window passes as it is
    with pytest.raises(ValueError, match="window must be in"):
        info.window(0.0)
    with pytest.raises(ValueError, match="resolved at 8000 Hz"):
        info.window(Window(8_000, 8_000))
    capped = Recognizer.open(capped_onnx).info
    assert capped.window().samples == capped.window(30).samples == capped.max_samples
    assert capped.window().capped and "cut to the longest input this artifact takes" in \
        capped.window(30).describe()
    assert capped.default_window_s == capped.max_samples / RATE


def test_every_surface_reports_and_uses_the_same_window(capped_onnx: Path, service,
                                                        tmp_path: Path):
    """An artifact that takes inputs shorter than its default window: the library, emo-predict
    (files, --stream and --ray) and emo-serve's front (/info and the segments of a request)
    all cut the window to it and say the same value (the C library: tests/test_cpp.py)."""
    import asyncio

    from emo_toolkit.data.demo_corpus import speech_like
    from emo_toolkit.serve.app import Ingress
    from emo_toolkit.serve.options import ServeOptions
    from emo_toolkit.serve.protocol import Query
    from tests.faults import command
    from tests.service import RAY_TOKEN

    recognizer = Recognizer.open(capped_onnx)
    window = recognizer.window()
    said = f"window: {window.describe()}"
    assert window.capped and window.samples < round(window.durations.p90 * RATE)
    long = tmp_path / "long.wav"
    sf.write(str(long), speech_like(12.0, 5), RATE)
    lengths = [round((s.end - s.start) * RATE)
               for s in recognizer.predict_recording(long).segments]
    assert max(lengths) <= window.samples and len(lengths) >= 12.0 * RATE // window.samples
    assert recognizer.stream(RATE).window == window.samples

    files = command("emo-predict", capped_onnx, long, "--segments")
    assert files.returncode == 0 and said in files.stderr, files.stderr
    rows = [json.loads(line) for line in files.stdout.splitlines()]
    assert len(rows) == len(lengths) + 1  # the segments, then the file's row
    streamed = command("emo-predict", capped_onnx, "--stream", long)
    assert streamed.returncode == 0 and said in streamed.stderr, streamed.stderr
    assert f"a {window.seconds:g} s window every" in streamed.stderr
    scored = command("emo-predict", capped_onnx, long, "--ray", "--address", service.cluster,
                     "-o", tmp_path / "shards", "--merge", tmp_path / "merged.jsonl",
                     "--segments", env=RAY_TOKEN, timeout=300)
    assert scored.returncode == 0 and said in scored.stderr, scored.stderr
    assert (tmp_path / "merged.jsonl").read_text() == files.stdout  # the same segments

    class Replica:  # what the ingress asks of the model's deployment
        class info:
            @staticmethod
            async def remote() -> ModelInfo:
                return recognizer.info

    ingress = Ingress(Replica(), ServeOptions())
    asyncio.run(ingress._learn_model())
    assert (ingress.describe()["window_s"], ingress.describe()["window"]) == \
        (window.seconds, window.to_json())
    cut = ingress._segments(long.read_bytes(), "wav", Query())
    assert [seg.length for seg in cut] == lengths
    asked = ingress._segments(long.read_bytes(), "wav", Query(window=30.0))
    assert [seg.length for seg in asked] == lengths  # capped there too
