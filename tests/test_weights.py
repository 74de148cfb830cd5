"""Weights: checkpoint files via the user's code path, the hub cache, offline errors, pickles."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from emo_toolkit.features import ssl_models
from emo_toolkit.features.ssl_models import load_model
from emo_toolkit.features.weights import OFFLINE_ENV, WeightsError, load_state_dict
from emo_toolkit.runtime.io import sha256_file


def features(model: torch.nn.Module) -> torch.Tensor:
    w = 0.1 * torch.randn(1, 8_000, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return torch.stack(model.extract_features(w)[0])


def test_checkpoint_file_loads_through_the_user_path(tmp_path: Path):
    source, _ = load_model("hubert_tiny", untrained=True, seed=7)
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    model, identity = load_model("hubert_tiny", weights=path)
    assert identity.weights == "file" and identity.trained
    assert identity.weights_sha256 == sha256_file(path)
    assert "sha256" in identity.describe() and "UNTRAINED" not in identity.describe()
    assert torch.equal(features(model), features(source))
    assert not model.training and not any(p.requires_grad for p in model.parameters())

    st = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(st))
    model_st, _ = load_model("hubert_tiny", weights=st)
    assert torch.equal(features(model_st), features(source))


def test_untrained_is_deterministic_and_labelled():
    a, ida = load_model("hubert_tiny", untrained=True)
    b, idb = load_model("hubert_tiny", untrained=True)
    _, idc = load_model("hubert_tiny", untrained=True, seed=1)
    assert torch.equal(features(a), features(b))
    assert ida.weights_sha256 == idb.weights_sha256 != idc.weights_sha256
    assert not ida.trained and "UNTRAINED" in ida.describe()
    assert ida.to_json()["weights_sha256"] == "untrained"


def test_wrong_architecture_is_a_clear_error(tmp_path: Path):
    tiny, _ = load_model("hubert_tiny", untrained=True)
    path = tmp_path / "tiny.pt"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(WeightsError, match=r"tiny\.pt: not a wav2vec2_base checkpoint"):
        load_model("wav2vec2_base", weights=path)
    torch.save({"something": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match=r"not a hubert_tiny checkpoint.*missing"):
        load_model("hubert_tiny", weights=path)


class _Payload:
    """Unpickling this object runs code: it creates a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"encoder.weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match=r"evil\.pt: refused to load.*could run code"):
        load_model("hubert_tiny", weights=path)
    assert not marker.exists()
    # The payload is real: an unsafe load does run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_garbage_weights_file(tmp_path: Path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match=r"junk\.pt: not a readable torch weights file"):
        load_state_dict(path)
    with pytest.raises(WeightsError, match="weights file not found"):
        load_state_dict(tmp_path / "missing.pt")


def test_offline_error_names_file_cache_folder_and_option(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "hubert_fairseq_base_ls960.pth"
    with pytest.raises(WeightsError) as err:
        load_model("hubert_base")
    text = str(err.value)
    assert f"expected {expected}" in text
    assert f"cache folder {expected.parent}" in text
    assert "--extractor-weights PATH" in text and f"{OFFLINE_ENV}=1 is set" in text


def test_failed_download_fails_fast(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    monkeypatch.setattr(ssl_models, "MODEL_STORE_URL", "http://127.0.0.1:9/models/")
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"download from http://127\.0\.0\.1:9/models/"
                                           r"hubert_fairseq_base_ls960\.pth failed"):
        load_model("hubert_base")
    assert time.perf_counter() - start < 10
    assert not list((tmp_path / "torch").rglob("*.part"))


def test_pretrained_weights_are_read_from_the_hub_cache(tmp_path: Path, monkeypatch):
    """Full HuBERT-base architecture: a checkpoint placed where torch hub keeps it is used."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    source, _ = load_model("hubert_base", untrained=True, seed=3)
    target = tmp_path / "torch" / "hub" / "checkpoints" / "hubert_fairseq_base_ls960.pth"
    target.parent.mkdir(parents=True)
    torch.save(source.state_dict(), target)
    model, identity = load_model("hubert_base")
    assert identity.weights == "pretrained" and identity.source == str(target)
    assert identity.weights_sha256 == sha256_file(target)
    assert torch.equal(features(model), features(source))
    os.remove(target)
