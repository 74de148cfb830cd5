"""Shared fixtures: small real audio files written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emo_toolkit.data.demo_corpus import DemoCorpusConfig, make_demo_corpus

CPU_KINDS: dict[str, frozenset[str]] = {
    "AVX2 only": frozenset({"avx2", "fma"}),
    "AVX-512 VNNI": frozenset({"avx2", "fma", "avx512f", "avx512_vnni"}),
    "AVX512-BF16 without FP16 (AMD Zen 4)": frozenset({"avx2", "fma", "avx512f", "avx512_vnni",
                                                       "avx512_bf16"}),
    "AVX512-FP16 + AMX (Intel Sapphire Rapids)": frozenset({
        "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
        "amx_int8", "amx_fp16"}),
}
"""x86-64 CPU kinds as /proc/cpuinfo flags, for tests that fake what the library reads
(emo_toolkit.runtime.cpu.cpu_flags): the matrix runs on any machine."""


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, demo_corpus: Path) -> Path:
    """A complete run trained briefly on hubert_tiny (untrained) features: what emo-export
    and emo-bench read."""
    from emo_toolkit.train.loop import TrainConfig
    from emo_toolkit.train.run import run_training
    from emo_toolkit.train.run_config import DataOptions, ExtractorOptions, HeadOptions, RunConfig

    root = tmp_path_factory.mktemp("tiny-run")
    cfg = RunConfig(DataOptions(str(demo_corpus)),
                    extractor=ExtractorOptions("hubert_tiny", untrained=True,
                                               cache=str(root / "cache"), workers=0),
                    head=HeadOptions(embed_dim=32, conv_channels=16, lstm_hidden=32),
                    train=TrainConfig(epochs=2))
    run_training(cfg, root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def pt2_exports(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """`emo-export --format pt2` of tiny_run, made once: the AOTInductor compile is slow."""
    from click.testing import CliRunner

    from emo_toolkit.cli.export import main as export_cli

    out = tmp_path_factory.mktemp("pt2")
    result = CliRunner().invoke(export_cli, [str(tiny_run), "--format", "pt2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """tiny_run exported to ONNX (fp32, 16 kHz): what the runtime tests run."""
    from emo_toolkit.export.exporter import export_run

    return export_run(tiny_run, "onnx", out_dir=tmp_path_factory.mktemp("onnx")).path


def with_metadata(source: Path, target: Path, change) -> Path:
    """A copy of an ONNX artifact whose emo_toolkit metadata `change(fields, text)` rewrote
    (it returns the new text); without the sidecar, whose digest it no longer matches."""
    import json

    import onnx

    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key == "emo_toolkit":
            prop.value = change(json.loads(prop.value), prop.value)
    onnx.save(model, str(target))
    return target


CAP_FRACTION = 0.75
"""capped_onnx takes inputs of this fraction of tiny_onnx's default window at most."""


@pytest.fixture(scope="session")
def capped_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_onnx: Path) -> Path:
    """tiny_onnx with a `max_samples` below its default window (as an artifact planned for
    clips up to a length has): every surface must cut its window to it, and say so."""
    import json

    from emo_toolkit.runtime.recognizer import Recognizer

    window = Recognizer.open(tiny_onnx).window()
    longest = round(CAP_FRACTION * window.samples)
    return with_metadata(tiny_onnx, tmp_path_factory.mktemp("capped") / "capped.onnx",
                         lambda meta, _: json.dumps({**meta, "max_samples": longest}))


@pytest.fixture(scope="session")
def edge_exports(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """`emo-export --format executorch` of tiny_run, fp32 (model.pte) and int8
    (model.int8.pte), made once: lowering takes about a minute each."""
    from click.testing import CliRunner

    from emo_toolkit.cli.export import main as export_cli

    pytest.importorskip("executorch")
    out = tmp_path_factory.mktemp("pte")
    for precision in ("fp32", "int8"):
        result = CliRunner().invoke(export_cli, [str(tiny_run), "--format", "executorch",
                                                 "--precision", precision, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "corpus clip" in result.output
    return out


@pytest.fixture(scope="session")
def tiny_pte(edge_exports: Path) -> Path:
    return edge_exports / "model.pte"


def onnx_without_metadata(source: Path, target: Path) -> Path:
    """A copy of an ONNX artifact with its emo_toolkit metadata removed."""
    import onnx

    model = onnx.load(str(source))
    del model.metadata_props[:]
    onnx.save(model, str(target))
    return target


@pytest.fixture(scope="session")
def service(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory):
    """emo-serve on tiny_onnx with its own local Ray cluster, one per session (tests/service.py)."""
    pytest.importorskip("ray.serve", reason="emo-serve needs the [serve] extra")
    from tests.service import running_service

    with running_service(tiny_onnx, tmp_path_factory.mktemp("serve")) as running:
        yield running
