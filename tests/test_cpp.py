"""The C API (cpp/): built with CMake against the runtimes installed with the package (the
torch wheel's libtorch, the openvino wheel), run on audio files the tests write, compared
with Python eager; error paths through the example app and through the C functions
themselves (ctypes), for every backend."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emo_toolkit.bench.cpp_build import executorch_cmake, openvino_cmake, torch_cmake
from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.export import exporter
from emo_toolkit.export.graph import ExportGraph, eager_outputs
from emo_toolkit.train.inference import load_run
from tests.conftest import onnx_without_metadata, write_wav
from tests.faults import sidecar_metadata

CPP = Path(__file__).resolve().parent.parent / "cpp"
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("c++") is None,
                                reason="needs cmake and a C++ compiler")




def cmake_build(out: Path, prefixes: list[str], *options: str) -> Path:
    configured = subprocess.run(["cmake", "-S", str(CPP), "-B", str(out),
                                 f"-DCMAKE_PREFIX_PATH={';'.join(prefixes)}",
                                 "-DCMAKE_BUILD_TYPE=Release", *options],
                                capture_output=True, text=True)
    assert configured.returncode == 0, configured.stdout[-4000:] + configured.stderr[-4000:]
    built = subprocess.run(["cmake", "--build", str(out), "-j", "2"], capture_output=True,
                           text=True)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every backend whose runtime is installed (`make cpp`)."""
    prefixes = [p for p in (torch_cmake(), openvino_cmake()) if p]
    return cmake_build(tmp_path_factory.mktemp("cpp-build"), prefixes)


needs_openvino = pytest.mark.skipif(openvino_cmake() is None,
                                    reason="needs the openvino package (the [cpp] extra)")


@pytest.fixture(scope="module")
def build_ov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenVINO backend alone: what a C/C++ app ships without libtorch."""
    return cmake_build(tmp_path_factory.mktemp("cpp-build-ov"), [openvino_cmake() or ""],
                       "-DEMO_WITH_TORCH=OFF")


needs_executorch = pytest.mark.skipif(executorch_cmake() is None,
                                      reason="needs the executorch package (the [edge] extra)")


@pytest.fixture(scope="module")
def build_et(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ExecuTorch backend alone: what an edge app ships (no libtorch, no OpenVINO)."""
    return cmake_build(tmp_path_factory.mktemp("cpp-build-et"), [executorch_cmake() or ""],
                       "-DEMO_WITH_TORCH=OFF", "-DEMO_WITH_OPENVINO=OFF")


def needed(lib: Path) -> list[str]:
    """The shared libraries `lib` names (readelf NEEDED)."""
    dynamic = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True,
                             check=True).stdout
    return [line.split("[")[1].rstrip("]") for line in dynamic.splitlines()
            if "(NEEDED)" in line]


def audio_reader(build: Path) -> str:
    version = subprocess.run([str(build / "emo_classify"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    return version.rsplit("audio: ", 1)[1].rstrip(")\n")


@pytest.fixture(scope="module")
def artifacts(tiny_run: Path, pt2_exports: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("cpp-artifacts")
    ts = exporter.export_run(tiny_run, "torchscript", out_dir=out).path
    at48 = exporter.export_run(tiny_run, "torchscript", out_dir=out, input_rate=48_000).path
    return {"torchscript": ts, "aoti": pt2_exports / "model.aoti.pt2", "torchscript48": at48}


def speech(seconds: float, i: int, rate: int = 16_000) -> np.ndarray:
    return speech_like(seconds, i, rate, seed=5)


def classify(build: Path, artifact: Path, *files: Path, extra: tuple[str, ...] = ()
             ) -> subprocess.CompletedProcess:
    return subprocess.run([str(build / "emo_classify"), *extra, str(artifact),
                           *map(str, files)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", ["torchscript", "aoti"])
def test_example_matches_python_eager(build: Path, artifacts: dict[str, Path], tiny_run: Path,
                                      tmp_path: Path, kind: str):
    graph = ExportGraph(load_run(tiny_run).recognizer)
    clips = {"float 2.5 s": (speech(2.5, 0), "FLOAT"), "float 0.3 s": (speech(0.3, 1), "FLOAT"),
             "pcm16 1.2 s": (speech(1.2, 2), "PCM_16"),
             "stereo float 1 s": (np.stack([speech(1.0, 3), speech(1.0, 4)], axis=1), "FLOAT")}
    files = {}
    for i, (name, (samples, subtype)) in enumerate(clips.items()):
        files[name] = write_wav(tmp_path / f"clip{i}.wav", samples, subtype=subtype)
    result = classify(build, artifacts[kind], *files.values())
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["file"]) for line in lines] == list(files.values())
    for (name, path), line in zip(files.items(), lines, strict=True):
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        mono = data.mean(axis=1, dtype=np.float32)
        _, probs = eager_outputs(graph, torch.from_numpy(mono)[None])
        expected = dict(zip(graph.labels, probs[0].tolist(), strict=True))
        assert list(line["probabilities"]) == graph.labels, name
        got = np.array([line["probabilities"][k] for k in graph.labels])
        assert np.abs(got - np.array(list(expected.values()))).max() < 1e-4, name
        assert line["label"] == graph.labels[int(np.argmax(list(expected.values())))]


def test_baked_rate_takes_its_rate_and_rejects_others(build: Path, artifacts, tiny_run: Path,
                                                      tmp_path: Path):
    graph = ExportGraph(load_run(tiny_run).recognizer, 48_000)
    x = speech(1.0, 5, rate=48_000)
    at48 = write_wav(tmp_path / "at48.wav", x, 48_000, "FLOAT")
    at16 = write_wav(tmp_path / "at16.wav", speech(1.0, 5), 16_000, "FLOAT")
    result = classify(build, artifacts["torchscript48"], at48, at16)
    assert result.returncode == 1
    ok, bad = (json.loads(line) for line in result.stdout.splitlines())
    expected = eager_outputs(graph, torch.from_numpy(x)[None])[1][0].numpy()
    got = np.array([ok["probabilities"][k] for k in graph.labels])
    assert np.abs(got - expected).max() < 1e-4
    assert "16000 Hz; this artifact takes 48000 Hz" in bad["error"]


def test_example_error_paths(build: Path, artifacts: dict[str, Path], tmp_path: Path):
    good = write_wav(tmp_path / "good.wav", speech(1.0, 0), subtype="FLOAT")
    missing = classify(build, tmp_path / "nope.pt", good)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    corrupt = tmp_path / "corrupt.torchscript.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not an archive" * 10)
    result = classify(build, corrupt, good)
    assert result.returncode == 2 and "not a TorchScript or AOTInductor archive" in result.stderr
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(artifacts["torchscript"].read_bytes()[:5000])
    result = classify(build, truncated, good)
    assert result.returncode == 2 and str(truncated) in result.stderr

    at8k = write_wav(tmp_path / "at8k.wav", speech(1.0, 1, 8_000), 8_000, "FLOAT")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16_000)
    short = write_wav(tmp_path / "short.wav", speech(1.0, 2)[:300], subtype="FLOAT")
    not_wav = tmp_path / "text.wav"
    not_wav.write_text("hello, this is a text file and not audio")
    result = classify(build, artifacts["torchscript"], at8k, empty, good, short, not_wav,
                      tmp_path / "absent.wav")
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 6 and "label" in lines[2]  # the good file in the middle still runs
    errors = [line.get("error", "") for line in lines]
    assert "8000 Hz; this artifact takes 16000 Hz" in errors[0]
    assert "no audio samples" in errors[1]
    assert "300 samples; the model needs at least 400" in errors[3]
    unreadable = ("not a readable audio file" if audio_reader(build) == "libsndfile"
                  else "not a RIFF/WAVE file")
    assert unreadable in errors[4] and "cannot open" in errors[5]


class Result(ctypes.Structure):
    _fields_ = [("label", ctypes.c_int32), ("num_labels", ctypes.c_int32),
                ("probabilities", ctypes.POINTER(ctypes.c_float)),
                ("logits", ctypes.POINTER(ctypes.c_float))]


@pytest.fixture(scope="module")
def lib(build: Path) -> ctypes.CDLL:
    return load_library(build)


def load_library(build: Path) -> ctypes.CDLL:
    """libemo_toolkit of `build`, with every C function's signature declared."""
    lib = ctypes.CDLL(str(build / "libemo_toolkit.so"))
    lib.EmoRecognizerCreate.restype = ctypes.c_void_p
    lib.EmoRecognizerCreate.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                        ctypes.POINTER(ctypes.c_void_p)]
    lib.EmoClassify.restype = ctypes.POINTER(Result)
    lib.EmoClassify.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64,
                                ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p)]
    for name in ("EmoRecognizerLabel", "EmoRecognizerBackend", "EmoRecognizerMetadataJson"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p] + ([ctypes.c_int32] if name ==
                                                           "EmoRecognizerLabel" else [])
    for name in ("EmoRecognizerNumLabels", "EmoRecognizerSampleRate", "EmoRecognizerMinSamples"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.EmoResultDestroy.argtypes = [ctypes.POINTER(Result)]
    lib.EmoRecognizerDestroy.argtypes = [ctypes.c_void_p]
    lib.EmoFreeString.argtypes = [ctypes.c_void_p]
    return lib


def _take_error(lib: ctypes.CDLL, error: ctypes.c_void_p) -> str:
    assert error.value, "no error message was set"
    message = ctypes.string_at(error.value).decode()
    lib.EmoFreeString(error)
    error.value = None  # success leaves *error untouched: clear it for the next check
    return message


def test_c_functions_report_errors_and_read_metadata(lib: ctypes.CDLL, artifacts, tiny_run):
    error = ctypes.c_void_p()
    assert lib.EmoRecognizerCreate(None, None, ctypes.byref(error)) is None
    assert "NULL" in _take_error(lib, error)
    assert lib.EmoRecognizerCreate(str(artifacts["torchscript"]).encode(), b"tpu",
                                   ctypes.byref(error)) is None
    assert "unknown device 'tpu'" in _take_error(lib, error)

    if not torch.cuda.is_available():
        assert lib.EmoRecognizerCreate(str(artifacts["torchscript"]).encode(), b"cuda",
                                       ctypes.byref(error)) is None
        assert "CUDA is not available" in _take_error(lib, error)
    r = lib.EmoRecognizerCreate(str(artifacts["torchscript"]).encode(), b"cpu",
                                ctypes.byref(error))
    assert r and not error.value
    labels = [lib.EmoRecognizerLabel(r, i).decode() for i in range(lib.EmoRecognizerNumLabels(r))]
    meta = json.loads(lib.EmoRecognizerMetadataJson(r))
    assert labels == meta["labels"] == load_run(tiny_run).recognizer.labels
    assert lib.EmoRecognizerLabel(r, len(labels)) is None and lib.EmoRecognizerLabel(r, -1) is None
    assert (lib.EmoRecognizerSampleRate(r), lib.EmoRecognizerMinSamples(r)) == (16_000, 400)
    assert lib.EmoRecognizerBackend(r) == b"torchscript"

    x = speech(1.0, 7)
    buf = x.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    for args, message in (((None, 0, 16_000), "empty"), ((buf, 0, 16_000), "empty"),
                          ((buf, 399, 16_000), "at least 400"),
                          ((buf, len(x), 44_100), "44100 Hz; this artifact takes 16000 Hz")):
        assert not lib.EmoClassify(r, *args, ctypes.byref(error))
        assert message in _take_error(lib, error)
    nan = x.copy()
    nan[10] = np.nan
    assert not lib.EmoClassify(r, nan.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), len(nan),
                               16_000, ctypes.byref(error))
    assert "sample 10 is NaN or infinite" in _take_error(lib, error)
    assert not lib.EmoClassify(None, buf, len(x), 16_000, ctypes.byref(error))
    assert "NULL" in _take_error(lib, error)

    result = lib.EmoClassify(r, buf, len(x), 16_000, ctypes.byref(error))
    assert result and not error.value
    probs = np.ctypeslib.as_array(result.contents.probabilities, (result.contents.num_labels,))
    logits = np.ctypeslib.as_array(result.contents.logits, (result.contents.num_labels,))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(probs, np.exp(logits) / np.exp(logits).sum(), atol=1e-6)
    assert result.contents.label == int(np.argmax(probs))
    lib.EmoResultDestroy(result)
    lib.EmoResultDestroy(None)
    lib.EmoRecognizerDestroy(r)
    lib.EmoRecognizerDestroy(None)
    lib.EmoFreeString(None)


def test_a_plain_c_program_compiles_and_links_against_it(build: Path, artifacts, tmp_path: Path):
    """The README's link line: the header is plain C, the library finds libtorch by itself."""
    run_plain_c_program(build, artifacts["torchscript"], tmp_path)


def run_plain_c_program(build: Path, artifact: Path, tmp_path: Path) -> None:
    """The C program of docs/c-api.md, as printed there: compiled, run, and its error path."""
    page = (CPP.parent / "docs" / "c-api.md").read_text()
    source = tmp_path / "app.c"
    source.write_text(page.split("```c\n", 1)[1].split("```", 1)[0])
    app = tmp_path / "app"
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", str(source), f"-I{CPP / 'include'}",
                    f"-L{build}", "-lemo_toolkit", f"-Wl,-rpath,{build}", "-o", str(app)],
                   check=True)
    ran = subprocess.run([str(app), str(artifact)], capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    label, probability, count = ran.stdout.split()
    assert count == "5" and label in ["angry", "disgust", "fear", "happy", "sad"]
    assert 0.2 <= float(probability) <= 1.0
    missing = subprocess.run([str(app), str(tmp_path / "missing.onnx")], capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 1 and "missing.onnx" in missing.stderr, missing.stderr


# --- the OpenVINO backend: ONNX artifacts without libtorch --------------------------------


@pytest.fixture(scope="module")
def onnx48(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exporter.export_run(tiny_run, "onnx", out_dir=tmp_path_factory.mktemp("onnx48"),
                               input_rate=48_000).path


def eager_probs(graph: ExportGraph, path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    return eager_outputs(graph, torch.from_numpy(mono)[None])[1][0].numpy()


def assert_classify_matches_eager(build: Path, artifact: Path, files: list[Path],
                                  graph: ExportGraph) -> None:
    """emo_classify on `files`: each line's probabilities within 1e-4 of eager, its label
    the most probable."""
    result = classify(build, artifact, *files)
    assert result.returncode == 0, result.stderr
    for path, line in zip(files, map(json.loads, result.stdout.splitlines()), strict=True):
        got = np.array([line["probabilities"][k] for k in graph.labels])
        assert np.abs(got - eager_probs(graph, path)).max() < 1e-4, path.name
        assert line["label"] == graph.labels[int(np.argmax(got))]


@needs_openvino
def test_openvino_backend_matches_python_eager(build_ov: Path, tiny_onnx: Path, onnx48: Path,
                                               tiny_run: Path, tmp_path: Path):
    """ONNX through OpenVINO, from a build that links no libtorch, on WAV and FLAC files,
    mono and stereo, 0.3 to 30 s; and a 48 kHz-baked export, which refuses 16 kHz."""
    flac = audio_reader(build_ov) == "libsndfile"
    graph = ExportGraph(load_run(tiny_run).recognizer)
    clips = {"mono.wav": speech(0.3, 0), "stereo.wav": np.stack([speech(2.0, 1),
                                                                  speech(2.0, 2)], axis=1),
             "long.wav": speech(30.0, 3)}
    if flac:
        clips |= {"mono.flac": speech(1.5, 4),
                  "stereo.flac": np.stack([speech(4.0, 5), speech(4.0, 6)], axis=1)}
    files = [write_wav(tmp_path / name, x, subtype="PCM_16" if name.endswith("flac") else
                       "FLOAT") for name, x in clips.items()]
    assert_classify_matches_eager(build_ov, tiny_onnx, files, graph)
    graph48 = ExportGraph(load_run(tiny_run).recognizer, 48_000)
    at48 = write_wav(tmp_path / ("at48.flac" if flac else "at48.wav"), speech(1.0, 7, 48_000),
                     48_000, "PCM_24")
    at16 = write_wav(tmp_path / "at16.wav", speech(1.0, 7), 16_000, "FLOAT")
    result = classify(build_ov, onnx48, at48, at16)
    assert result.returncode == 1
    ok, bad = (json.loads(line) for line in result.stdout.splitlines())
    got = np.array([ok["probabilities"][k] for k in graph48.labels])
    assert np.abs(got - eager_probs(graph48, at48)).max() < 1e-4
    assert "16000 Hz; this artifact takes 48000 Hz" in bad["error"]


@needs_openvino
@pytest.mark.parametrize("fmt", ["torchscript", "aoti", "onnx", "triton-onnx"])
def test_graphs_that_take_lengths_run_from_c(build: Path, tiny_run: Path, tmp_path: Path,
                                             fmt: str):
    """Exports with a lengths input (--ragged; Triton's concatenated layout) through the
    libtorch and OpenVINO backends: the backend feeds the lengths, results equal eager.
    (The AOTInductor export's own gate checks its ragged batches in Python.)"""
    layout = "concatenated" if fmt == "triton-onnx" else "padded"
    fmts = ["pt2", "aoti"] if fmt == "aoti" else [fmt.removeprefix("triton-")]
    artifact = exporter.export_formats(tiny_run, fmts, out_dir=tmp_path, layout=layout)[-1].path
    graph = ExportGraph(load_run(tiny_run).recognizer)
    files = [write_wav(tmp_path / f"clip{i}.wav", speech(s, 10 + i), subtype="FLOAT")
             for i, s in enumerate((0.3, 2.2))]
    assert_classify_matches_eager(build, artifact, files, graph)


@needs_openvino
def test_a_cpu_build_without_libtorch_links_no_torch_or_cuda(build_ov: Path, build: Path):
    alone = needed(build_ov / "libemo_toolkit.so")
    assert any(n.startswith("libopenvino.so") for n in alone), alone
    assert not [n for n in alone if any(k in n for k in ("torch", "c10", "cuda", "cudart",
                                                         "cusparse", "nvrtc"))], alone
    both = needed(build / "libemo_toolkit.so")  # `make cpp` with both runtimes installed
    assert "libtorch_cpu.so" in both and any(n.startswith("libopenvino.so") for n in both)
    assert not [n for n in both if "cuda" in n or "cusparse" in n], both  # CPU-only libtorch


@needs_openvino
def test_onnx_error_paths_through_the_app(build_ov: Path, tiny_onnx: Path, tmp_path: Path):
    good = write_wav(tmp_path / "good.wav", speech(1.0, 0), subtype="FLOAT")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 this is not a protobuf" * 20)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_onnx.read_bytes()[:4000])
    bare = onnx_without_metadata(tiny_onnx, tmp_path / "bare.onnx")
    for artifact, needle in [(tmp_path / "absent.onnx", "no such file"),
                             (corrupt, "OpenVINO cannot read it"),
                             (truncated, "OpenVINO cannot read it"),
                             (bare, "no emo-toolkit metadata"),
                             (tiny_onnx.with_suffix(".onnx.json"), "no backend of this build")]:
        result = classify(build_ov, artifact, good)
        assert result.returncode == 2 and needle in result.stderr, (artifact, result.stderr)
        assert str(artifact) in result.stderr
    short = write_wav(tmp_path / "short.wav", speech(1.0, 2)[:300], subtype="FLOAT")
    nan = speech(1.0, 3)
    nan[5] = np.nan
    nan_wav = write_wav(tmp_path / "nan.wav", nan, subtype="FLOAT")
    at8k = write_wav(tmp_path / "at8k.wav", speech(1.0, 1, 8_000), 8_000, "FLOAT")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16_000)
    result = classify(build_ov, tiny_onnx, at8k, short, nan_wav, empty, good)
    errors = [json.loads(line).get("error", "") for line in result.stdout.splitlines()]
    assert result.returncode == 1 and len(errors) == 5 and errors[4] == ""
    assert "8000 Hz; this artifact takes 16000 Hz" in errors[0]
    assert "300 samples; the model needs at least 400" in errors[1]
    assert "sample 5 is NaN or infinite" in errors[2] and "no audio samples" in errors[3]


@needs_openvino
def test_onnx_through_the_c_functions_and_a_plain_c_program(build_ov: Path, tiny_onnx: Path,
                                                            tmp_path: Path):
    lib = load_library(build_ov)
    error = ctypes.c_void_p()
    assert lib.EmoRecognizerCreate(str(tiny_onnx).encode(), b"cuda", ctypes.byref(error)) is None
    assert "cuda is for libtorch artifacts" in _take_error(lib, error)
    r = lib.EmoRecognizerCreate(str(tiny_onnx).encode(), None, ctypes.byref(error))
    assert r and not error.value and lib.EmoRecognizerBackend(r) == b"openvino"
    x = speech(1.0, 7)
    buf = x.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    for args, message in (((None, 0, 16_000), "empty"), ((buf, 399, 16_000), "at least 400"),
                          ((buf, len(x), 22_050), "22050 Hz; this artifact takes 16000 Hz")):
        assert not lib.EmoClassify(r, *args, ctypes.byref(error))
        assert message in _take_error(lib, error)
    for n in (16_000, 12_345, 16_000):  # new lengths need no new recognizer
        result = lib.EmoClassify(r, buf, n, 16_000, ctypes.byref(error))
        assert result and not error.value
        probs = np.ctypeslib.as_array(result.contents.probabilities, (5,))
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        lib.EmoResultDestroy(result)
    lib.EmoRecognizerDestroy(r)
    run_plain_c_program(build_ov, tiny_onnx, tmp_path)  # the docs' program, on ONNX


# --- the ExecuTorch backend: .pte programs on the wheel's runtime libraries -----------------


@needs_executorch
def test_executorch_backend_matches_python_eager(build_et: Path, tiny_pte: Path,
                                                 tiny_run: Path, tmp_path: Path):
    """`emo_classify model.pte` from a build that links the ExecuTorch runtime only: mono
    and stereo, PCM and float, 0.3 to 19 s, each within 1e-4 of eager."""
    graph = ExportGraph(load_run(tiny_run).recognizer)
    clips = {"short.wav": (speech(0.3, 0), "FLOAT"), "pcm16.wav": (speech(1.2, 1), "PCM_16"),
             "stereo.wav": (np.stack([speech(2.5, 2), speech(2.5, 3)], axis=1), "FLOAT"),
             "long.wav": (speech(19.0, 4), "FLOAT")}
    files = [write_wav(tmp_path / name, x, subtype=subtype)
             for name, (x, subtype) in clips.items()]
    assert_classify_matches_eager(build_et, tiny_pte, files, graph)
    libs = needed(build_et / "libemo_toolkit.so")
    assert {"libexecutorch.so", "libexecutorch_backend_xnnpack.so",
            "libexecutorch_kernels_optimized.so"} <= set(libs), libs
    assert not [n for n in libs if any(k in n for k in ("torch_cpu", "c10", "openvino"))], libs


@needs_executorch
def test_executorch_error_paths(build_et: Path, tiny_pte: Path, tmp_path: Path):
    good = write_wav(tmp_path / "good.wav", speech(1.0, 0), subtype="FLOAT")
    truncated = tmp_path / "truncated.pte"
    truncated.write_bytes(tiny_pte.read_bytes()[:5000])
    garbage = tmp_path / "garbage.pte"
    garbage.write_bytes(b"not a flatbuffer at all" * 50)
    for artifact, needle in [(truncated, "ExecuTorch cannot load it as a program"),
                             (garbage, "ExecuTorch cannot load it as a program"),
                             (tiny_pte.with_suffix(".pte.json"), "no backend of this build")]:
        result = classify(build_et, artifact, good)
        assert result.returncode == 2 and needle in result.stderr, (artifact, result.stderr)
        assert str(artifact) in result.stderr and result.stderr.count("\n") == 1
    too_long = write_wav(tmp_path / "long.wav", speech(21.0, 1), subtype="FLOAT")
    short = write_wav(tmp_path / "short.wav", speech(1.0, 2)[:300], subtype="FLOAT")
    at8k = write_wav(tmp_path / "at8k.wav", speech(1.0, 3, 8_000), 8_000, "FLOAT")
    result = classify(build_et, tiny_pte, too_long, short, at8k, good)
    errors = [json.loads(line).get("error", "") for line in result.stdout.splitlines()]
    assert result.returncode == 1 and len(errors) == 4 and errors[3] == ""
    assert "336000 samples; this artifact takes at most 320000" in errors[0]
    assert "300 samples; the model needs at least 720" in errors[1]
    assert "8000 Hz; this artifact takes 16000 Hz" in errors[2]

    lib = load_library(build_et)
    error = ctypes.c_void_p()
    assert lib.EmoRecognizerCreate(str(tiny_pte).encode(), b"cuda", ctypes.byref(error)) is None
    assert "ExecuTorch programs run on the CPU" in _take_error(lib, error)
    r = lib.EmoRecognizerCreate(str(tiny_pte).encode(), None, ctypes.byref(error))
    assert r and lib.EmoRecognizerBackend(r) == b"executorch"
    meta = json.loads(lib.EmoRecognizerMetadataJson(r))
    assert meta == sidecar_metadata(tiny_pte)
    assert lib.EmoRecognizerMinSamples(r) == 720
    lib.EmoRecognizerDestroy(r)
    run_plain_c_program(build_et, tiny_pte, tmp_path)
