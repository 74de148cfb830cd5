"""Fault suite, family 1: numeric poison. No output, metric or saved weight is ever
NaN or infinite: a clip that would make one is refused with a reason, and a
non-finite training loss stops the run with the clip named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from emo_toolkit.cli.predict import main as predict_cli
from emo_toolkit.cli.training import data_cli, train_cli
from emo_toolkit.features.cache import CacheKey, FeatureCache
from emo_toolkit.features.feature_dataset import CachedFeatures
from emo_toolkit.runtime.errors import NonFiniteError
from emo_toolkit.runtime.formats.base import torch_runner
from emo_toolkit.runtime.io import atomic_write_json
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.train.head import EmotionHead, HeadConfig
from emo_toolkit.train.inference import load_run, recognizer_from_run
from emo_toolkit.train.loop import TrainConfig, train_head
from tests.conftest import tone, write_wav
from tests.faults import assert_clean_error, invoke, json_lines


def huge(path: Path, value: float = 3e38) -> Path:
    samples = tone(1.0)
    samples[100:200] = value
    samples[200:300] = -value
    return write_wav(path, samples, subtype="FLOAT")


def test_enormous_finite_samples_are_refused_by_predict_with_valid_json(tmp_path: Path,
                                                                        tiny_run: Path):
    bad = huge(tmp_path / "huge.wav")
    good = write_wav(tmp_path / "good.wav", tone(1.0))
    result = invoke(predict_cli, [tiny_run, bad, good])
    assert result.exit_code == 1 and "Traceback" not in result.output
    rows = {Path(r["file"]).name: r for r in json_lines(result.stdout)}
    assert rows["huge.wav"]["error"] == "out-of-range"
    assert "3e+38" in rows["huge.wav"]["message"]
    assert all(math.isfinite(p) for p in rows["good.wav"]["probabilities"].values())


@pytest.mark.parametrize("value", [3e38, 1e6, 150.0])
def test_scan_skips_out_of_range_clips(tmp_path: Path, value: float):
    for label in ("anger", "sadness"):
        write_wav(tmp_path / label / "spk1" / "ok.wav", tone(0.5))
    huge(tmp_path / "anger" / "spk1" / "huge.wav", value)
    result = invoke(data_cli, ["scan", tmp_path])
    assert result.exit_code == 0, result.output
    assert "[out-of-range]" in result.output and "huge.wav" in result.output


def test_a_model_with_overflowing_outputs_gives_errors_not_nan(tmp_path: Path, tiny_run: Path):
    info = recognizer_from_run(tiny_run).info
    model = load_run(tiny_run).recognizer
    with torch.no_grad():  # a model gone bad
        model.head.classifier.bias.fill_(float("inf"))
    bad = Recognizer(torch_runner(model, "cpu"), info)
    clip = write_wav(tmp_path / "clip.wav", tone(1.0))
    ((_, result),) = list(bad.predict_files([clip]))
    assert result.reason == "non-finite-output"
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        bad.predict_file(clip)


def _features_cache(tmp_path: Path, values: list[float]) -> tuple[FeatureCache, list[str]]:
    cache = FeatureCache(tmp_path / "cache", CacheKey("t", "w", False, 16_000))
    rng = np.random.default_rng(0)
    shas = []
    for i, scale in enumerate(values):
        sha = f"{i:064x}"
        x = np.clip(rng.standard_normal((2, 12, 8)), -1, 1) * scale
        cache.put(sha, x.astype(np.float32))
        shas.append(sha)
    return cache, shas


def test_a_non_finite_training_loss_stops_the_run_naming_the_clip(tmp_path: Path,
                                                                  monkeypatch):
    # One clip's features are finite but enormous; the head here overflows on them (the
    # real head's BatchNorm often absorbs such values, so the overflow is made certain).
    cache, shas = _features_cache(tmp_path, [1.0] * 5 + [3e38] + [1.0] * 4)
    assert np.isfinite(cache.get(shas[5])).all()
    real_forward = EmotionHead.forward

    def overflowing(self, features, lengths=None, **kwargs):
        logits = real_forward(self, features, lengths, **kwargs)
        huge_rows = features.flatten(1).abs().amax(dim=1) > 1e30
        return torch.where(huge_rows[:, None], logits * float("inf"), logits)

    monkeypatch.setattr(EmotionHead, "forward", overflowing)
    names = [f"clip{i}.wav" for i in range(10)]
    labels = [i % 2 for i in range(10)]
    train = CachedFeatures(cache, shas[:8], labels[:8], names[:8])
    val = CachedFeatures(cache, shas[8:], labels[8:], names[8:])
    head = HeadConfig(2, 8, 2, embed_dim=8, conv_channels=4, lstm_hidden=8)
    with pytest.raises(NonFiniteError, match=r"the training loss is NaN or infinite for "
                                             r"clip5\.wav;"):
        train_head(head, train, val, ["a", "b"], TrainConfig(epochs=2, batch_size=4),
                   progress=False)


@pytest.mark.parametrize("option", [["--lr", "inf"], ["--lr", "nan"], ["--lr", "-1"],
                                    ["--grad-clip", "nan"], ["--grad-clip", "inf"],
                                    ["--val-fraction", "nan"], ["--lstm-dropout", "nan"],
                                    ["--test-fraction", "inf"]])
def test_non_finite_options_are_refused_before_anything_is_made(tmp_path: Path,
                                                                demo_corpus: Path,
                                                                option: list[str]):
    out = tmp_path / "run"
    result = invoke(train_cli, [demo_corpus, "--out", out, *option])
    assert_clean_error(result, option[0], code=2)
    assert not out.exists()


def test_json_files_never_hold_nan(tmp_path: Path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"loss": float("nan")})
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(tmp_path / "ok.json", {"loss": 0.5})
    assert json.loads((tmp_path / "ok.json").read_text()) == {"loss": 0.5}
