"""The docs are true: every shell command and Python block of README.md and docs/ runs
on the demo in a sandbox whose placeholders (RUN, CORPUS, clip.wav, ...) are real files,
unless EXCEPTIONS names it with the reason (`pytest -rs tests/test_docs.py` lists them).

Blocks are read with mktestdocs; every block must say its language, and `text` blocks
(transcripts, layouts) are not run. A shell command must exit 0, or with the status its
own comment states ("exits with status N"), and print no traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mktestdocs import grab_code_blocks

from emo_toolkit.data.demo_corpus import speech_like

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = ("sh", "python", "c", "text")

_CPP = "the C library: tests/test_cpp.py builds cpp/ with these prefixes and runs emo_classify"
_ARM = ("the aarch64 cross build: tests/test_cpp.py builds it with these options where the "
        "cross toolchain is installed")
_PRETRAINED = ("the default extractor is pretrained HuBERT-base, whose weights cannot be "
               "downloaded here; the same command on hubert_tiny runs in tests/test_run.py")
_BENCH = ("every backend and precision: minutes; tests/test_bench.py runs emo-bench with "
          "subsets of these options")
_COMPILE = ("AOTInductor compiling or ExecuTorch lowering: 30 to 40 s here; the pt2_exports "
            "and edge_exports fixtures (tests/conftest.py) run these very commands")
_ALL = ("every format in one command: 70 s here; each format is exported by tests/test_export.py "
        "and tests/test_executorch.py, and what --format all picks and skips is tested in "
        "tests/test_faults_options.py")

#: What is not run, keyed by the command (without its comment) or a Python/C block's
#: first line, with the reason. A key that matches nothing fails the suite.
EXCEPTIONS: dict[str, str] = {
    "make demo": "the README's set-up command: it builds .venv and runs the commands of the "
                 "README's transcript, which this module runs on a smaller run",
    "make test": "the README's set-up command: it runs this suite",
    "emo-train CORPUS --out RUN": _PRETRAINED,
    "emo-train DATA --out RUN": _PRETRAINED,
    "emo-train DATA --out RUN --protocol loso": _PRETRAINED,
    "emo-train DATA --out RUN --protocol notebook --allow-speaker-overlap": _PRETRAINED,
    "torchrun --standalone --nproc-per-node 2 --no-python emo-data features SOURCE --cache DIR":
        _PRETRAINED + " (torchrun: tests/test_distributed.py)",
    "torchrun --standalone --nproc-per-node 2 --no-python emo-train DATA --out RUN "
    "--batch-size 16": _PRETRAINED + " (torchrun: tests/test_distributed.py)",
    "torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 "
    "--rdzv-id emo1 --no-python emo-train DATA --out RUN --device cuda":
        "two GPU nodes; tests/test_distributed.py runs torchrun's c10d rendezvous on one",
    "emo-export RUN --format all": _ALL,
    "emo-export RUN --format all --ragged": _ALL,
    "emo-export RUN --format all --input-sample-rate 48000": _ALL,
    "emo-export RUN --format pt2": _COMPILE,
    "emo-export RUN --format pt2 --precision bf16":
        "AOTInductor compiling: 40 s here; the bf16 gate is tested on TorchScript "
        "(tests/test_export.py), pt2 in bf16 on CUDA (tests/test_cuda.py)",
    "emo-export RUN --format executorch": _COMPILE,
    "emo-export RUN --format executorch --precision int8": _COMPILE,
    "emo-export RUN --format triton --device cuda --triton-instances 2 --triton-max-batch 16":
        "needs a CUDA device (tests/test_cuda.py, on a GPU)",
    "emo-bench RUN": _BENCH,
    "emo-predict model.onnx clip.wav --runtime openvino --precision bf16":
        "needs a CPU with bf16 units (AVX512-BF16 or AMX); tests/test_runtime.py runs it "
        "where the CPU has them and checks the refusal where it does not",
    "emo-bench RUN --device cpu": _BENCH,
    "emo-bench RUN --ragged": _BENCH,
    "docs/figures/hubert_base.sh cpu": "HuBERT-base from scratch: about an hour on this machine",
    "docs/figures/device_check.sh":
        "needs a lent GPU; tests/test_device_check.py runs its steps dry",
    "make cpp && build/cpp/emo_classify RUN/export/model.onnx clip.flac": _CPP,
    "build/cpp/emo_classify RUN/export/model.pte clip.wav": _CPP,
    'cmake -S cpp -B build/cpp -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$(.venv/bin/'
    'python cpp/cpp_build.py)"': _CPP,
    "cmake --build build/cpp -j": _CPP,
    "cmake -S cpp -B build/cpp-arm64 -DCMAKE_TOOLCHAIN_FILE=$PWD/cpp/cmake/aarch64-linux-gnu.cmake "
    '-DCMAKE_PREFIX_PATH="$(.venv/bin/python cpp/cpp_build.py --aarch64 '
    'build/arm64)" '
    "-DEMO_WITH_TORCH=OFF -DEMO_WITH_OPENVINO=OFF": _ARM,
    "cmake --build build/cpp-arm64 -j": _ARM,
    "build/cpp/emo_classify RUN/export/model.onnx clip1.flac clip2.mp3 clip3.wav": _CPP,
    "build/cpp/emo_classify --repeat 10 RUN/export/model.aoti.pt2 clip1.wav": _CPP,
    "#include <stdio.h>": "compiled and run, with its error path, by tests/test_cpp.py "
                          "(run_plain_c_program reads it from this page)",
    "emo-predict RUN/bench/cpu/choice.json clip.wav":
        "needs emo-bench's output first (minutes); tests/test_bench.py runs emo-predict on "
        "the choice.json emo-bench writes",
    'docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v "$PWD/RUN/export/triton:'
    '/models" nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models':
        "Docker and the Triton server image are not available here",
    "pip install 'emo-toolkit[cpu,serve]'":
        "installs from the package index; tests/test_serve.py resolves [cpu,serve] and "
        "finds no torch in it",
    "emo-serve RUN/export/model.onnx --replicas 2 --threads 1":
        "a server that runs until it is stopped: the `service` fixture (tests/service.py) "
        "starts it with these options and stops it with SIGTERM; the blocks that query it run",
    "arecord -q -f S16_LE -r 16000 -c 1 -t raw | emo-predict stream RUN/export/model.onnx "
    "--format s16le --rate 16000":
        "needs a sound card and alsa-utils' arecord; tests/test_stream.py feeds WAV streams "
        "at real time through a pipe and raw s16le/f32le through files and FIFOs",
    "emo-predict stream RUN/export/model.onnx --mic --window 2 --hop 0.5":
        "needs the sounddevice package and an input device; tests/test_stream.py checks the "
        "one line that says which is missing",
    "import numpy as np, soundfile as sf, tritonclient.http as httpclient":
        "a client of a running Triton server (tests/test_triton.py checks the repository "
        "it would serve)",
}


def blocks(page: Path) -> dict[str, list[str]]:
    text = page.read_text()
    found = {lang: grab_code_blocks(text, lang=lang) for lang in LANGUAGES}
    unlabelled = len(grab_code_blocks(text, lang=None)) - sum(map(len, found.values()))
    assert unlabelled == 0, f"{page.name}: {unlabelled} code block(s) without a language"
    return found


def commands(block: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments and blank lines kept
    apart (a comment is returned with its command, which bash ignores)."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def key(command: str) -> str:
    return re.sub(r"\s+#.*$", "", command).strip()


def cases() -> list:
    out = []
    for page in PAGES:
        found = blocks(page)
        name = page.relative_to(REPO)
        for block in found["sh"]:
            out += [pytest.param("sh", c, id=f"{name}: {key(c)[:70]}") for c in commands(block)]
        for lang in ("python", "c"):
            out += [pytest.param(lang, b, id=f"{name}: {b.splitlines()[0][:70]}")
                    for b in found[lang]]
    return out


CASES = cases()


def case_key(lang: str, text: str) -> str:
    return key(text) if lang == "sh" else text.strip().splitlines()[0]


def test_every_exception_names_something_in_the_docs():
    used = {case_key(*p.values) for p in CASES}
    assert not set(EXCEPTIONS) - used, "stale EXCEPTIONS entries"


def write_audio(path: Path, seconds: float, seed: int, rate: int = 16_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), speech_like(seconds, seed, rate, seed=seed), rate)


#: Where docs/serving.md's examples reach emo-serve (its default address).
SERVICE = "127.0.0.1:8000"

#: The command whose artifact the other pages assume (RUN/export/model.onnx).
EXPORT_ONNX = "emo-export RUN --format onnx"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, demo_corpus: Path, tiny_run: Path,
            tiny_onnx: Path):
    """One folder per page, made on first use, where the docs' placeholders are real: RUN
    (a copy of the tiny run), CORPUS/DATA/SOURCE (the demo corpus), a model.onnx, clips in
    each format the docs name, a folder of clips and a 30 s recording. RUN holds its ONNX
    export unless the page runs EXPORT_ONNX itself (which refuses to replace it)."""
    clips = sorted(demo_corpus.rglob("*.wav"))[:12]
    talk = np.concatenate([sf.read(str(c), dtype="float32")[0] for c in clips])
    made: dict[str, Path] = {}

    def make(page: str) -> Path:
        if page in made:
            return made[page]
        box = made[page] = tmp_path_factory.mktemp("docs")
        shutil.copytree(tiny_run, box / "RUN")
        exports_itself = any(case_key(*p.values) == EXPORT_ONNX for p in CASES
                             if p.id.startswith(f"{page}: "))
        for target in ([box] if exports_itself else [box / "RUN" / "export", box]):
            target.mkdir(exist_ok=True)
            for source in (tiny_onnx, tiny_onnx.with_name(tiny_onnx.name + ".json")):
                shutil.copy2(source, target / source.name)
        for name in ("CORPUS", "DATA", "SOURCE"):
            (box / name).symlink_to(demo_corpus)
        for i, name in enumerate(("clip.wav", "clip1.wav", "clip1.flac", "clip2.mp3",
                                  "clip3.wav", "folder/a.wav", "folder/b.flac")):
            write_audio(box / name, 2.0 + 0.25 * i, i)
        sf.write(str(box / "talk.flac"), talk, 16_000)
        return box

    return make


@pytest.mark.parametrize(("lang", "text"), CASES)
def test_docs_block_runs(sandbox, request: pytest.FixtureRequest, lang: str, text: str):
    reason = EXCEPTIONS.get(case_key(lang, text))
    if reason is not None:
        pytest.skip(reason)
    if SERVICE in text:  # a query of emo-serve: the session's service answers it
        text = text.replace(SERVICE, f"127.0.0.1:{request.getfixturevalue('service').port}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MPLBACKEND": "Agg"}
    argv = ["bash", "-c", text] if lang == "sh" else [sys.executable, "-c", text]
    page = request.node.callspec.id.split(": ", 1)[0]
    ran = subprocess.run(argv, cwd=sandbox(page), env=env, capture_output=True, text=True,
                         timeout=600)
    stated = re.search(r"exits with status (\d+)", text)
    expected = int(stated.group(1)) if stated else 0
    assert ran.returncode == expected, ran.stdout[-2000:] + ran.stderr[-4000:]
    assert "Traceback" not in ran.stderr, ran.stderr[-4000:]
