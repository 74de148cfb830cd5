"""Fault suite, family 4: tampered run directories and artifacts. Every file of a run is
checked when the run is opened (its schema, the safetensors header, shapes against
head.json), so each edit below is one clean line naming the file from emo-predict and
emo-export; emo-bench never trusts a damaged sidecar and never times a graph whose
outputs do not match the metadata."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from emo_toolkit.bench.worker import check_outputs
from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.cli.predict import main as predict_cli
from tests.conftest import tone, write_wav
from tests.faults import assert_clean_error, copy_run, invoke

HEAD = "splits/speaker-holdout/head.json"
WEIGHTS = "splits/speaker-holdout/head.safetensors"


def _json(rel: str, edit: Callable[[object], object]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / rel
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return apply


def _text(rel: str, text: str) -> Callable[[Path], None]:
    return lambda run: (run / rel).write_text(text)


def _bytes(rel: str, make: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / rel
        path.write_bytes(make(path.read_bytes()))
    return apply


def _folder(rel: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / rel).unlink()
        (run / rel).mkdir()
    return apply


def _section(section: str, **changes: object) -> Callable[[object], object]:
    def edit(d: object) -> object:
        assert isinstance(d, dict)
        return {**d, section: {**d[section], **changes}}
    return edit


def _without(key: str) -> Callable[[object], object]:
    return lambda d: {k: v for k, v in d.items() if k != key}  # type: ignore[union-attr]


def _nan_weights(run: Path) -> None:
    from safetensors.numpy import load_file

    state = load_file(str(run / WEIGHTS))
    first = sorted(state)[0]
    state[first] = np.full_like(state[first], np.nan)
    save_file(state, str(run / WEIGHTS))


def _renamed_tensors(run: Path) -> None:
    from safetensors.numpy import load_file

    state = load_file(str(run / WEIGHTS))
    save_file({f"x.{k}": v for k, v in state.items()}, str(run / WEIGHTS))


# (case id, edit, what the error line must name)
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("config-bad-json", _text("config.json", "{not json"), "config.json"),
    ("config-empty", _text("config.json", ""), "config.json"),
    ("config-list", _text("config.json", "[]"), "config.json"),
    ("config-missing-key", _json("config.json", lambda d: {
        **d, "train": {k: v for k, v in d["train"].items() if k != "lr"}}), "config.json"),
    ("config-extra-key", _json("config.json", _section("head", colour="red")), "config.json"),
    ("config-negative-size", _json("config.json", _section("head", embed_dim=-4)),
     "config.json"),
    ("config-wrong-type", _json("config.json", _section("train", lr="fast")), "config.json"),
    ("config-folder", _folder("config.json"), "config.json"),
    ("status-garbage", _text("status.json", "\x00\x01"), "status.json"),
    ("status-unknown-state", _text("status.json", '{"state": "bogus"}'), "status.json"),
    ("status-list", _text("status.json", "[1]"), "status.json"),
    ("labels-object", _text("labels.json", '{"a": 1}'), "labels.json"),
    ("labels-one", _text("labels.json", '["angry"]'), "labels.json"),
    ("labels-duplicate", _json("labels.json", lambda d: [d[0], *d[:-1]]), "labels.json"),
    ("labels-more-than-outputs", _json("labels.json", lambda d: [*d, "bored"]), "head.json"),
    ("labels-empty-file", _text("labels.json", ""), "labels.json"),
    ("labels-folder", _folder("labels.json"), "labels.json"),
    ("extractor-missing-key", _json("extractor.json", _without("num_layers")),
     "extractor.json"),
    ("extractor-other-dim", _json("extractor.json", lambda d: {**d, "dim": d["dim"] + 1}),
     "head.json"),
    ("extractor-other-weights", _json("extractor.json", lambda d: {
        **d, "weights_sha256": "0" * 64, "state_dict_sha256": "0" * 64}),
     "not the ones the run used"),
    ("model-list", _text("model.json", "[]"), "model.json"),
    ("model-unknown-split", _text("model.json", '{"split": "../../etc"}'), "no trained head"),
    ("head-bad-json", _text(HEAD, "{"), "head.json"),
    ("head-negative-size", _json(HEAD, lambda d: {**d, "lstm_hidden": -1}), "head.json"),
    ("head-extra-key", _json(HEAD, lambda d: {**d, "extra": 1}), "head.json"),
    ("head-other-shape", _json(HEAD, lambda d: {**d, "lstm_hidden": d["lstm_hidden"] * 2}),
     "head.safetensors"),
    ("head-kernel-list-of-str", _json(HEAD, lambda d: {**d, "kernel_sizes": ["3"]}),
     "head.json"),
    ("weights-truncated", _bytes(WEIGHTS, lambda b: b[: len(b) // 2]), "head.safetensors"),
    ("weights-empty", _bytes(WEIGHTS, lambda b: b""), "head.safetensors"),
    ("weights-garbage", _bytes(WEIGHTS, lambda b: bytes(range(256)) * 8), "head.safetensors"),
    ("weights-2^62-header", _bytes(WEIGHTS, lambda b: struct.pack("<Q", 1 << 62) + b[8:]),
     "head.safetensors"),
    ("weights-folder", _folder(WEIGHTS), "head.safetensors"),
    ("weights-nan", _nan_weights, "head.safetensors"),
    ("weights-renamed", _renamed_tensors, "head.safetensors"),
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav(tmp_path_factory.mktemp("clip") / "clip.wav", tone(0.8))


@pytest.mark.parametrize(("edit", "needle"), [(e, n) for _, e, n in CASES],
                         ids=[c for c, _, _ in CASES])
def test_a_tampered_run_is_one_clean_error_in_predict(tmp_path: Path, tiny_run: Path,
                                                      clip: Path,
                                                      edit: Callable[[Path], None],
                                                      needle: str):
    run = copy_run(tiny_run, tmp_path / "run")
    edit(run)
    assert_clean_error(invoke(predict_cli, [run, clip]), needle)


@pytest.mark.parametrize("case", ["config-bad-json", "labels-more-than-outputs",
                                  "weights-truncated", "weights-2^62-header"])
def test_a_tampered_run_is_one_clean_error_in_export(tmp_path: Path, tiny_run: Path,
                                                     case: str):
    _, edit, needle = next(c for c in CASES if c[0] == case)
    run = copy_run(tiny_run, tmp_path / "run")
    edit(run)
    assert_clean_error(invoke(export_cli, [run, "--out", tmp_path / "out"]), needle)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bench_does_not_trust_a_damaged_sidecar(tmp_path: Path, tiny_run: Path):
    from emo_toolkit.bench.harness import _matching
    from emo_toolkit.train.inference import load_run
    from emo_toolkit.train.rundir import RunDir

    out = tmp_path / "export"
    result = invoke(export_cli, [tiny_run, "--out", out])
    assert result.exit_code == 0, result.output
    weights = RunDir(tiny_run).weights_digest(load_run(tiny_run).split)
    artifact = out / "model.onnx"
    assert _matching(artifact, weights, "cpu", ragged=False)
    assert not _matching(artifact, weights, "cpu", ragged=True)  # no lengths input
    assert not _matching(artifact, "0" * 64, "cpu", ragged=False)  # other weights
    for damage in ("{broken", "[]", ""):
        (out / "model.onnx.json").write_text(damage)
        assert not _matching(artifact, weights, "cpu", ragged=False)
    (out / "model.onnx.json").unlink()
    (out / "model.onnx.json").mkdir()
    assert not _matching(artifact, weights, "cpu", ragged=False)
    shutil.rmtree(out / "model.onnx.json")


def test_bench_checks_outputs_against_the_metadata_before_timing():
    x = np.zeros((1, 16_000), dtype=np.float32)
    check_outputs(lambda a: np.zeros((a.shape[0], 5), np.float32), x, 5)
    with pytest.raises(ValueError, match=r"shape \(1, 3\).*promises \(1, 5\)"):
        check_outputs(lambda a: np.zeros((a.shape[0], 3), np.float32), x, 5)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        check_outputs(lambda a: np.zeros(5, np.float32), x, 5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_outputs(lambda a: np.full((a.shape[0], 5), np.nan, np.float32), x, 5)


@pytest.mark.parametrize("where", [0.25, 0.5, 0.9])
def test_an_artifact_with_a_flipped_bit_is_refused_before_it_runs(tmp_path: Path,
                                                                  tiny_onnx: Path, where: float):
    """The sidecar records the artifact's sha256 at export; opening checks it first."""
    from emo_toolkit.runtime.errors import ArtifactError
    from emo_toolkit.runtime.formats.base import DIGEST_KEY, sidecar_path
    from emo_toolkit.runtime.recognizer import Recognizer

    model = tmp_path / "model.onnx"
    shutil.copy(tiny_onnx, model)
    shutil.copy(sidecar_path(tiny_onnx), sidecar_path(model))
    assert json.loads(sidecar_path(model).read_text())[DIGEST_KEY]
    Recognizer.open(model)  # intact: opens
    data = bytearray(model.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"differ from the digest model\.onnx\.json recorded"):
        Recognizer.open(model)
    clip = write_wav(tmp_path / "c.wav", tone(0.6))
    assert_clean_error(invoke(predict_cli, [model, clip]), "damaged or altered")
