"""The deployment runtime: `Recognizer` over an ONNX artifact against eager PyTorch, the
torch-free claim, and emo-predict on artifacts (outputs, options, errors)."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.runtime.audio import (
    RESAMPLE_LOWPASS_WIDTH,
    RESAMPLE_ROLLOFF,
    resample,
    stream_resampler,
)
from emo_toolkit.runtime.errors import (
    ArtifactError,
    CorruptAudioError,
    InferenceError,
    NonFiniteAudioError,
    TooLongAudioError,
    TooShortAudioError,
)
from emo_toolkit.runtime.recognizer import ModelInfo, Recognizer
from emo_toolkit.train.inference import recognizer_from_run
from tests.conftest import CPU_KINDS, onnx_without_metadata, tone, write_wav
from tests.faults import (
    TRAIN_ONLY,
    assert_clean_error,
    assert_clean_exit,
    command,
    in_child,
    invoke,
    json_lines,
    without_train_stack,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Speech-like clips as users have them: 16 kHz WAV, 44.1 kHz stereo WAV, 22.05 kHz FLAC,
    a 48 kHz float WAV."""
    root = tmp_path_factory.mktemp("clips")
    at44 = speech_like(2.5, 2, 44_100)
    return [
        write_wav(root / "mono16k.wav", speech_like(1.7, 1)),
        write_wav(root / "stereo44k.wav", np.stack([at44, 0.6 * at44[::-1]], axis=1), 44_100),
        write_wav(root / "speech22k.flac", speech_like(3.1, 3, 22_050), 22_050),
        write_wav(root / "float48k.wav", speech_like(1.2, 4, 48_000), 48_000, "FLOAT"),
    ]


@pytest.fixture(scope="module")
def eager(tiny_run: Path) -> Recognizer:
    return recognizer_from_run(tiny_run)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_numpy_resampler_equals_torchaudio_on_speech(rate: int):
    x = speech_like(3.0, 7, rate)
    reference = torchaudio.functional.resample(
        torch.from_numpy(x), rate, 16_000, resampling_method="sinc_interp_hann",
        lowpass_filter_width=RESAMPLE_LOWPASS_WIDTH, rolloff=RESAMPLE_ROLLOFF).numpy()
    whole = resample(x, rate, 16_000)
    stream = stream_resampler(rate, 16_000)
    sizes = np.random.default_rng(rate).integers(1, 9_000, size=x.size)
    bounds = np.cumsum(np.concatenate([[0], sizes]))
    parts = [stream.push(x[a:b]) for a, b in itertools.pairwise(bounds) if a < x.size]
    streamed = np.concatenate([*parts, stream.flush()])
    assert whole.shape == streamed.shape == reference.shape
    assert np.abs(whole - reference).max() < 1e-5
    assert np.abs(streamed - reference).max() < 1e-5


def test_onnx_artifact_equals_eager_on_files(tiny_onnx: Path, eager: Recognizer,
                                             clips: list[Path]):
    runtime = Recognizer.open(tiny_onnx)
    assert runtime.labels == eager.labels and runtime.info.kind == "onnx"
    assert (runtime.sample_rate, runtime.min_samples) == (16_000, 400)
    assert runtime.info.untrained and eager.info.untrained
    for clip in clips:
        got, want = runtime.predict_file(clip), eager.predict_file(clip)
        assert got.label == want.label, clip.name
        assert max(abs(got.probabilities[k] - p) for k, p in want.probabilities.items()) < 1e-4
        assert np.abs(np.array(got.logits) - np.array(want.logits)).max() < 1e-4
        # the array API applies the same rules as the file API
        samples, rate = sf.read(str(clip), dtype="float32")
        same = runtime.predict(samples, rate)
        assert np.abs(np.array(same.logits) - np.array(got.logits)).max() < 1e-5


def test_equal_length_batches_equal_single_clips(tiny_onnx: Path):
    runtime = Recognizer.open(tiny_onnx)
    waves = [speech_like(1.0, i) for i in range(5)] + [speech_like(1.3, 9)]
    batched = runtime.predict_batch(waves, 16_000, batch_size=4)
    alone = [runtime.predict(w, 16_000) for w in waves]
    for a, b in zip(batched, alone, strict=True):
        assert a.label == b.label and np.abs(np.array(a.logits) - np.array(b.logits)).max() < 1e-5


def test_short_silent_non_finite_corrupt_and_long_inputs(tiny_onnx: Path, tmp_path: Path):
    runtime = Recognizer.open(tiny_onnx)
    with pytest.raises(TooShortAudioError, match="399 samples"):
        runtime.predict(np.zeros(399, np.float32), 16_000)
    silent = runtime.predict(np.zeros(16_000, np.float32), 16_000)
    assert np.isfinite(silent.logits).all() and abs(sum(silent.probabilities.values()) - 1) < 1e-6
    bad = tone(1.0)
    bad[100] = np.nan
    with pytest.raises(NonFiniteAudioError, match="1 sample"):
        runtime.predict(bad, 16_000)
    with pytest.raises(TooLongAudioError, match="predict_recording"):
        runtime.predict(np.zeros(61 * 8_000, np.float32), 8_000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk" * 10)
    with pytest.raises(CorruptAudioError):
        runtime.predict_file(tmp_path / "junk.wav")
    with pytest.raises(ValueError, match=r"pass waveform\.T"):
        runtime.predict(np.zeros((2, 16_000), np.float32), 16_000)
    with pytest.raises(ValueError, match="float"):
        runtime.predict(np.zeros(16_000, np.int16), 16_000)
    # the same reasons, per file, through the CLI
    write_wav(tmp_path / "short.wav", tone(0.02))
    bad_wav = write_wav(tmp_path / "nan.wav", bad, subtype="FLOAT")
    write_wav(tmp_path / "silent.wav", np.zeros(8_000, np.float32))
    result = invoke(predict_cli, [tiny_onnx, tmp_path / "short.wav", bad_wav,
                                  tmp_path / "junk.wav", tmp_path / "silent.wav"])
    rows = {Path(r["file"]).name: r for r in json_lines(result.stdout)}
    assert (rows["short.wav"]["error"], rows["nan.wav"]["error"],
            rows["junk.wav"]["error"]) == ("too-short", "non-finite", "corrupt")
    assert rows["silent.wav"]["label"] in runtime.labels
    assert result.exit_code == 1 and "3 of 4 file(s) failed" in result.output


def test_artifacts_that_cannot_be_run_give_one_line(tiny_onnx: Path, tmp_path: Path):
    clip = write_wav(tmp_path / "clip.wav", tone(1.0))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_onnx.read_bytes()[:5000])
    bare = onnx_without_metadata(tiny_onnx, tmp_path / "bare.onnx")
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    for path, needle in [(corrupt, "cannot be loaded as an artifact of format onnx"),
                         (bare, "no emo_toolkit metadata"), (odd, "not an artifact")]:
        with pytest.raises(ArtifactError, match=needle):
            Recognizer.open(path)
        assert_clean_error(invoke(predict_cli, [path, clip]), str(path), needle)
    assert_clean_error(invoke(predict_cli, [tiny_onnx, clip, "--split", "x"]), "--split", code=2)
    assert_clean_error(invoke(predict_cli, [tiny_onnx, clip, "-o", tmp_path / "out.txt"]),
                       ".jsonl", code=2)
    assert_clean_error(invoke(predict_cli, [tiny_onnx, clip, clip, "--timeline",
                                            tmp_path / "t.png"]), "one file", code=2)


def test_emo_predict_outputs_and_batches(tiny_onnx: Path, tmp_path: Path, clips: list[Path]):
    jsonl, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    one = invoke(predict_cli, [tiny_onnx, *clips, "-o", jsonl])
    assert one.exit_code == 0, one.output
    batched = invoke(predict_cli, [tiny_onnx, *clips, "-o", table, "--batch-size", "4"])
    assert batched.exit_code == 0, batched.output
    lines = json_lines(jsonl.read_text())
    with table.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["file"]).name for r in lines] == [c.name for c in clips]
    assert [r["label"] for r in rows] == [r["label"] for r in lines]
    for line, row in zip(lines, rows, strict=True):
        assert line["segments"] == 1 and float(row["duration"]) == line["duration"]
        for label, p in line["probabilities"].items():
            assert abs(float(row[f"p_{label}"]) - p) < 1e-5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_torch_free_runtime_gives_the_eager_results(tiny_onnx: Path, eager: Recognizer,
                                                    clips: list[Path], tmp_path: Path):
    """With every [train]-only package made unimportable, the API and `emo-predict
    model.onnx` still run, import none of them, and give the eager results."""
    env = without_train_stack(tmp_path / "blocker")
    script = (
        "import json, sys\n"
        "from emo_toolkit.runtime.recognizer import Recognizer\n"
        f"r = Recognizer.open({str(tiny_onnx)!r})\n"
        f"out = [r.predict_file(p).probabilities for p in {[str(c) for c in clips]!r}]\n"
        f"print(json.dumps(out))\n"
        f"assert not set(sys.modules) & set({TRAIN_ONLY!r}), 'a training package was loaded'\n")
    proc = command("python", "-c", script, env=env)
    assert proc.returncode == 0, proc.stderr
    api = json.loads(proc.stdout)
    cli = command("emo-predict", tiny_onnx, *clips, env=env)
    assert cli.returncode == 0, cli.stderr
    for clip, from_api, row in zip(clips, api, json_lines(cli.stdout), strict=True):
        want = eager.predict_file(clip)
        assert row["label"] == want.label
        assert max(abs(from_api[k] - want.probabilities[k]) for k in want.probabilities) < 1e-4
        assert max(abs(row["probabilities"][k] - want.probabilities[k])
                   for k in want.probabilities) < 1e-4
    # What needs the training stack says so in one line.
    run_dir = Path(eager.info.source)
    assert_clean_exit(command("emo-predict", run_dir, clips[0], env=env), "emo-toolkit[train]")
    assert_clean_exit(command("emo-predict", tiny_onnx, clips[0], "--timeline",
                              tmp_path / "t.png", env=env), "emo-toolkit[plot]")


def test_a_cpu_runtime_install_passes_pip_check_and_predicts_without_torch(
        tiny_onnx: Path, eager: Recognizer, clips: list[Path], tmp_path: Path):
    """`pip install 'emo-toolkit[cpu]'` into a new virtual environment: pip check passes, no
    generic top-level module (toolkit, export, bench) is installed, the API and emo-predict
    give the eager results without torch; without ONNX Runtime, one line names the extra."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py, bin_dir = str(venv / "bin" / "python"), venv / "bin"

    def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=tmp_path,
                              timeout=timeout, env={**os.environ, "TQDM_DISABLE": "1"})

    install = run(py, "-m", "pip", "install", "--quiet", f"{ROOT}[cpu]", timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    check = run(py, "-m", "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    script = (
        "import importlib.util, json, sys\n"
        "from emo_toolkit.runtime.recognizer import Recognizer\n"
        f"r = Recognizer.open({str(tiny_onnx)!r})\n"
        f"files = {[str(c) for c in clips]!r}\n"
        "print(json.dumps([r.predict_file(p).probabilities for p in files]))\n"
        f"assert not set(sys.modules) & set({TRAIN_ONLY!r}), 'a training package was loaded'\n"
        "absent = ('torch', 'toolkit', 'export', 'bench')\n"
        "assert all(importlib.util.find_spec(m) is None for m in absent), 'installed'\n")
    api = run(py, "-c", script)
    assert api.returncode == 0, api.stderr
    cli = run(bin_dir / "emo-predict", tiny_onnx, *clips)
    assert cli.returncode == 0, cli.stderr
    for clip, from_api, row in zip(clips, json.loads(api.stdout), json_lines(cli.stdout),
                                   strict=True):
        want = eager.predict_file(clip).probabilities
        assert max(abs(from_api[k] - want[k]) for k in want) < 1e-4
        assert max(abs(row["probabilities"][k] - want[k]) for k in want) < 1e-4
    assert run(py, "-m", "pip", "uninstall", "--quiet", "--yes", "onnxruntime").returncode == 0
    assert_clean_exit(run(bin_dir / "emo-predict", tiny_onnx, clips[0]), "onnxruntime",
                      "pip install 'emo-toolkit[cpu]'")


def test_a_failing_batch_fails_only_the_file_that_broke_it(tmp_path: Path):
    """Equal-length files share a batch; when the runtime fails on it, each segment runs
    alone, so only the file the model cannot take gets an error."""
    def runner(batch: np.ndarray) -> np.ndarray:
        if (np.abs(batch).max(axis=1) > 0.9).any():
            raise RuntimeError("the runtime gave up")
        out = np.stack([batch.mean(axis=1), -batch.mean(axis=1)], axis=1)
        out[np.abs(batch).max(axis=1) > 0.7] = np.nan  # a model that overflows on these
        return out

    info = ModelInfo(("a", "b"), 16_000, 400, "fake", "onnx")
    recognizer = Recognizer(runner, info)
    files = [write_wav(tmp_path / f"{i}.wav", tone(1.0, amplitude=a))
             for i, a in enumerate([0.3, 0.95, 0.3, 0.8, 0.3])]
    results = dict(recognizer.predict_files(files, batch_size=4))
    reasons = [getattr(results[f], "reason", None) for f in files]
    assert reasons == [None, "inference-failed", None, "non-finite-output", None]
    assert "the runtime gave up" in results[files[1]].message
    with pytest.raises(InferenceError, match="the runtime gave up"):
        recognizer.predict_file(files[1])


def test_batch_plan_bounds_padding_and_batch_size():
    from emo_toolkit.runtime.recognizer import batch_plan

    lengths = [100, 50, 100, 90, 100, 45, 10]
    # equal lengths only: the three 100s, longest first, in their order
    assert batch_plan(lengths, 8, 0.0) == [[0, 2, 4], [3], [1], [5], [6]]
    assert batch_plan(lengths, 2, 0.0) == [[0, 2], [4], [3], [1], [5], [6]]
    # at most 20 % of a batch's samples padding: 100, 100, 100, 90, 50, 45 pad 19.2 %;
    # with the 10 it would be 29 %
    assert batch_plan(lengths, 8, 0.2) == [[0, 2, 4, 3, 1, 5], [6]]
    assert batch_plan(lengths, 8, 0.05) == [[0, 2, 4, 3], [1, 5], [6]]
    assert batch_plan(lengths, 8, 1.0) == [[0, 2, 4, 3, 1, 5, 6]]
    for plan in (batch_plan(lengths, 3, p) for p in (0.0, 0.2, 0.5, 1.0)):
        assert sorted(i for batch in plan for i in batch) == list(range(7))
        assert all(len(batch) <= 3 for batch in plan)


def test_every_row_and_prediction_says_whether_the_model_is_untrained(tiny_onnx: Path,
                                                                      tmp_path: Path):
    """Machine-readable honesty: a pipeline reading the rows can tell a smoke test."""
    import onnx

    good = write_wav(tmp_path / "good.wav", tone(1.2))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    model = onnx.load(str(tiny_onnx))
    meta = json.loads(model.metadata_props[0].value)
    assert meta["untrained_extractor"] is True
    model.metadata_props[0].value = json.dumps({**meta, "untrained_extractor": False})
    trained = tmp_path / "trained.onnx"
    onnx.save(model, str(trained))
    for artifact, flag in ((tiny_onnx, True), (trained, False)):
        r = Recognizer.open(artifact)
        assert r.predict_file(good).untrained is flag
        assert r.predict_recording(good).untrained is flag
        assert all(s.prediction.untrained is flag for s in r.predict_recording(good).segments)
        out = invoke(predict_cli, [artifact, good, bad, "--segments"])
        lines = json_lines(out.stdout)
        assert [("segment" in x, "error" in x) for x in lines] == [(True, False), (False, False),
                                                                   (False, True)]
        assert all(x["untrained"] is flag for x in lines)
        table = tmp_path / f"{flag}.csv"
        invoke(predict_cli, [artifact, good, bad, "-o", table])
        with table.open() as fh:
            assert [row["untrained"] for row in csv.DictReader(fh)] == [str(flag).lower()] * 2


# --- runtimes, run-time precision and threads ----------------------------------------------


@pytest.fixture(scope="module")
def ragged_onnx(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emo_toolkit.export import exporter

    return exporter.export_run(tiny_run, "onnx", layout="padded",
                               out_dir=tmp_path_factory.mktemp("ragged-onnx")).path


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_openvino_runs_onnx_in_fp32_and_reduced_precision_only_when_asked(
        tiny_onnx: Path, ragged_onnx: Path, clips: list[Path], precision: str, tmp_path: Path):
    """OpenVINO gives ONNX Runtime's fp32 results within 1e-5 (clips, and a ragged batch
    through a graph that takes lengths), with its precision pinned to f32 and read back;
    bf16/fp16 compute only when asked, on a CPU with the units (read as the library reads
    them), and rows then say so."""
    in_child(_openvino_precisions, tiny_onnx, ragged_onnx, clips, precision, tmp_path)


def _openvino_precisions(tiny_onnx: Path, ragged_onnx: Path, clips: list[Path], precision: str,
                         tmp_path: Path) -> None:
    from emo_toolkit.runtime import cpu
    from emo_toolkit.runtime.errors import DeviceError

    for artifact in (tiny_onnx, ragged_onnx):
        ort, ov = Recognizer.open(artifact), Recognizer.open(artifact, runtime="openvino")
        assert (ov.info.runtime, ov.info.precision, ort.info.runtime) == \
               ("openvino", "fp32", "onnxruntime")
        waves = [speech_like(s, i) for i, s in enumerate((1.0, 2.3, 3.1))]
        batch = np.zeros((3, waves[-1].size), np.float32)
        for row, w in zip(batch, waves, strict=True):
            row[:w.size] = w
        if ov.info.takes_lengths:
            lengths = [w.size for w in waves]
            assert np.abs(ov.logits(batch, lengths) - ort.logits(batch, lengths)).max() < 1e-5
        for clip in clips:
            a, b = ort.predict_file(clip), ov.predict_file(clip)
            assert a.label == b.label
            assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) \
                < 1e-5
    eager = Recognizer.open(tiny_onnx)
    if cpu.native_precision(precision):
        reduced = Recognizer.open(tiny_onnx, runtime="openvino", precision=precision)
        assert reduced.info.precision == precision
        got = reduced.logits(speech_like(3.0, 9)[None])
        want = eager.logits(speech_like(3.0, 9)[None])
        assert 0 < np.abs(got - want).max() < 0.5  # computed otherwise, and close
        result = invoke(predict_cli, [tiny_onnx, clips[0], "--runtime", "openvino",
                                      "--precision", precision])
        assert result.exit_code == 0 and json_lines(result.stdout)[-1]["precision"] == precision
        out = tmp_path / "rows.csv"
        assert invoke(predict_cli, [tiny_onnx, clips[0], "--runtime", "openvino", "--precision",
                                    precision, "-o", out]).exit_code == 0
        assert next(csv.DictReader(out.open()))["precision"] == precision
    else:
        with pytest.raises(DeviceError, match=f"this CPU has no {precision} units"):
            Recognizer.open(tiny_onnx, runtime="openvino", precision=precision)
    # rows computed in the artifact's own precision carry no precision field
    plain = json_lines(invoke(predict_cli, [tiny_onnx, clips[0], "--runtime", "openvino"]).stdout)
    assert "precision" not in plain[-1]


def test_openvino_precisions_on_every_kind_of_cpu(tiny_onnx: Path):
    """The matrix of x86-64 CPU kinds (tests/conftest.py CPU_KINDS), faked: where the flags
    lack a precision's units it is refused before compiling, in the words emo-bench and the C
    library use; where they claim units the real CPU lacks, OpenVINO's read-back refuses it
    in the same words (fp16 / bf16, never OpenVINO's f16); where both have them it computes
    so. fp32 opens everywhere."""
    seen = in_child(_openvino_on_cpu_kinds, tiny_onnx)
    assert set(seen) == set(CPU_KINDS)


def _openvino_on_cpu_kinds(tiny_onnx: Path) -> dict[str, dict[str, str]]:
    from emo_toolkit.runtime import cpu
    from emo_toolkit.runtime.errors import DeviceError

    real = {p: cpu.native_precision(p) for p in ("bf16", "fp16")}
    seen: dict[str, dict[str, str]] = {}
    for kind, flags in CPU_KINDS.items():
        cpu.cpu_flags = lambda flags=flags: frozenset(flags)  # what the library reads
        assert Recognizer.open(tiny_onnx, runtime="openvino").info.precision == "fp32"
        seen[kind] = {}
        for precision in ("bf16", "fp16"):
            claimed = any(flag in flags for flag, _ in cpu.REDUCED_UNITS[precision])
            assert cpu.native_precision(precision) == claimed
            if claimed and real[precision]:
                opened = Recognizer.open(tiny_onnx, runtime="openvino", precision=precision)
                assert opened.info.precision == precision
                seen[kind][precision] = "computed"
                continue
            with pytest.raises(DeviceError) as refused:
                Recognizer.open(tiny_onnx, runtime="openvino", precision=precision)
            message = str(refused.value)
            assert f"this CPU has no {precision} units" in message, (kind, message)
            assert " f16" not in message and "f32" not in message, message
            assert ("cannot compute in" in message) == (not claimed), (kind, message)
            seen[kind][precision] = message
    return seen


def test_runtime_precision_and_threads_are_refused_where_they_do_not_apply(
        tiny_onnx: Path, tiny_run: Path, clips: list[Path]):
    in_child(_refusals, tiny_onnx, tiny_run, clips)


def _refusals(tiny_onnx: Path, tiny_run: Path, clips: list[Path]) -> None:
    with pytest.raises(ArtifactError, match="onnxruntime computes this artifact in the "
                                            "precision it was exported in"):
        Recognizer.open(tiny_onnx, precision="bf16")
    with pytest.raises(ArtifactError, match="runtime 'executorch' does not run onnx"):
        Recognizer.open(tiny_onnx, runtime="executorch")
    with pytest.raises(ArtifactError, match="not int8"):
        Recognizer.open(tiny_onnx, runtime="openvino", precision="int8")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        Recognizer.open(tiny_onnx, threads=0)
    for runtime in ("onnxruntime", "openvino"):
        assert Recognizer.open(tiny_onnx, runtime=runtime, threads=1).info.threads == 1
    assert_clean_error(invoke(predict_cli, [tiny_onnx, clips[0], "--precision", "bf16"]),
                       "with runtime openvino")
    assert_clean_error(invoke(predict_cli, [tiny_run, clips[0], "--threads", "2"]),
                       "are for artifacts", code=2)
    result = invoke(predict_cli, [tiny_onnx, clips[0], "--threads", "0"])
    assert result.exit_code == 2 and "--threads" in result.output


def test_a_choice_file_opens_its_artifact_and_a_bad_one_is_one_line(
        tiny_onnx: Path, clips: list[Path], tmp_path: Path):
    """emo-bench's choice.json: its model path is relative to the file, so the folder can
    move; emo-predict and Recognizer.from_choice run it; options given override it."""
    in_child(_choice_files, tiny_onnx, clips, tmp_path)


def _choice_files(tiny_onnx: Path, clips: list[Path], tmp_path: Path) -> None:
    from emo_toolkit.runtime.choice import Choice

    folder = tmp_path / "out"
    folder.mkdir()
    for name in (tiny_onnx.name, tiny_onnx.name + ".json"):
        (folder / name).write_bytes((tiny_onnx.parent / name).read_bytes())
    choice = Choice.for_model(folder / tiny_onnx.name, folder / "choice.json",
                              runtime="openvino", threads=1)
    (folder / "choice.json").write_text(json.dumps(choice.to_json()))
    moved = tmp_path / "moved"
    folder.rename(moved)
    opened = Recognizer.from_choice(moved / "choice.json")
    assert (opened.info.source, opened.info.runtime, opened.info.threads) == \
        (str(moved / tiny_onnx.name), "openvino", 1)
    via_choice = invoke(predict_cli, ["-q", moved / "choice.json", clips[0]])
    direct = invoke(predict_cli, ["-q", moved / tiny_onnx.name, clips[0], "--runtime",
                                  "openvino"])
    assert via_choice.exit_code == direct.exit_code == 0 and via_choice.stdout == direct.stdout
    override = invoke(predict_cli, ["-q", moved / "choice.json", clips[0], "--runtime",
                                    "onnxruntime"])
    assert override.exit_code == 0
    bad = tmp_path / "bad.json"
    for text, needle in (("{", "not valid JSON"), ('{"kind": "x"}', "not an emo-bench choice"),
                         (json.dumps({**choice.to_json(), "threads": 0}), "'threads' is 0"),
                         (json.dumps({**choice.to_json(), "model": 3}), "'model' is 3")):
        bad.write_text(text)
        assert_clean_error(invoke(predict_cli, [bad, clips[0]]), str(bad), needle)
