"""Every layout and corpus adapter, on real files written here, with auto-detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from emo_toolkit.data.datasets import Clip, detect_layout, load_dataset
from emo_toolkit.runtime.errors import DatasetError
from tests.conftest import tone, write_wav

SHORT = tone(0.05)


def make_files(root: Path, names: list[str]) -> None:
    for name in names:
        write_wav(root / name, SHORT)


def by_name(clips: list[Clip]) -> dict[str, tuple[str, str | None]]:
    return {c.path.name: (c.label, c.speaker) for c in clips}


def test_notebook_folders_map_labels_and_keep_unknown_ones(tmp_path: Path):
    make_files(tmp_path, ["anger/a01 (1).wav", "disgust/d01 (2).wav", "fear/f01 (1).wav",
                          "happiness/h01 (1).wav", "sadness/s01 (1).wav", "Boring/x.wav",
                          "loose.wav"])
    (tmp_path / "anger" / "notes.txt").write_text("not audio")
    ds = load_dataset(tmp_path)
    assert ds.layout == "folders"
    assert ds.labels == ("Boring", "angry", "disgust", "fear", "happy", "sad")
    assert by_name(ds.clips)["a01 (1).wav"] == ("angry", None)
    assert not ds.speakers_known
    assert [(s.path.name, s.reason) for s in ds.skipped] == [("loose.wav", "no-label")]


def test_folders_with_speaker_subfolders_and_regex(tmp_path: Path):
    make_files(tmp_path, ["anger/spk01/x.wav", "sadness/spk02/y.wav"])
    ds = load_dataset(tmp_path)
    assert by_name(ds.clips) == {"x.wav": ("angry", "spk01"), "y.wav": ("sad", "spk02")}
    assert ds.speakers_known and ds.speakers == ("spk01", "spk02")

    flat = tmp_path / "flat"
    make_files(flat, ["anger/m03_take1.wav", "fear/f07_take2.wav", "fear/nospeaker.wav"])
    ds = load_dataset(flat, "folders", speaker_regex=r"^(?P<speaker>[mf]\d+)_")
    assert by_name(ds.clips) == {"m03_take1.wav": ("angry", "m03"),
                                 "f07_take2.wav": ("fear", "f07")}
    assert [s.reason for s in ds.skipped] == ["no-speaker"]
    with pytest.raises(DatasetError, match="no \\(\\?P<speaker>"):
        load_dataset(flat, "folders", speaker_regex=r"^([mf]\d+)_")


def test_manifest_with_relative_absolute_missing_and_bad_rows(tmp_path: Path):
    make_files(tmp_path, ["audio/one.wav", "audio/two.wav"])
    absolute = write_wav(tmp_path / "elsewhere" / "three.wav", SHORT)
    (tmp_path / "manifest.csv").write_text(
        "Path, Label ,speaker,session\n"
        "audio/one.wav,angry,s1,ses1\n"
        f"{absolute},sad,s2,\n"
        "audio/two.wav,,s1,ses1\n"
        "audio/missing.wav,happy,s3,ses2\n"
        "audio/one.wav,angry,s1,ses1\n"
        ",happy,s1,ses1\n"
    )
    for source in (tmp_path, tmp_path / "manifest.csv"):
        ds = load_dataset(source)
        assert ds.layout == "manifest"
        assert [(c.path.name, c.label, c.speaker, c.session) for c in ds.clips] == [
            ("one.wav", "angry", "s1", "ses1"), ("three.wav", "sad", "s2", None)]
        assert [s.reason for s in ds.skipped] == ["no-label", "unreadable", "duplicate", "bad-row"]
        assert "line 5: file not found" in ds.skipped[1].message


def test_manifest_without_required_columns(tmp_path: Path):
    csv = tmp_path / "list.csv"
    csv.write_text("file,emotion\na.wav,angry\n")
    with pytest.raises(DatasetError, match=r"list\.csv: the manifest needs columns path,label.*"
                                           r"missing path, label; found file, emotion"):
        load_dataset(csv)


def test_ravdess(tmp_path: Path):
    make_files(tmp_path, ["Actor_01/03-01-05-01-02-01-01.wav", "Actor_12/03-01-01-01-01-01-12.wav",
                          "Actor_12/03-01-08-02-01-02-12.wav", "Actor_12/readme.wav"])
    assert detect_layout(tmp_path) == "folders"  # 3 of 4 names parse: under the 90 % bar
    ds = load_dataset(tmp_path, "ravdess")
    assert by_name(ds.clips) == {
        "03-01-05-01-02-01-01.wav": ("angry", "actor01"),
        "03-01-01-01-01-01-12.wav": ("neutral", "actor12"),
        "03-01-08-02-01-02-12.wav": ("surprise", "actor12"),
    }
    assert [(s.path.name, s.reason) for s in ds.skipped] == [("readme.wav", "bad-name")]
    (tmp_path / "Actor_12" / "readme.wav").unlink()
    assert load_dataset(tmp_path).layout == "ravdess"


def test_crema_d(tmp_path: Path):
    make_files(tmp_path, ["1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1091_TIE_SAD_LO.wav",
                          "1002_DFA_NEU_XX.wav", "1003_DFA_FEA_XX.wav", "1004_DFA_DIS_XX.wav"])
    ds = load_dataset(tmp_path)
    assert ds.layout == "crema-d"
    assert by_name(ds.clips)["1091_TIE_SAD_LO.wav"] == ("sad", "1091")
    assert ds.labels == ("angry", "disgust", "fear", "happy", "neutral", "sad")


def test_tess(tmp_path: Path):
    make_files(tmp_path, ["OAF_angry/OAF_back_angry.wav",
                          "YAF_pleasant_surprised/YAF_youth_ps.wav",
                          "OAF_neutral/OA_bite_neutral.wav", "YAF_sad/YAF_germ_Sad.wav"])
    ds = load_dataset(tmp_path)
    assert ds.layout == "tess"
    assert by_name(ds.clips) == {
        "OAF_back_angry.wav": ("angry", "OAF"), "YAF_youth_ps.wav": ("surprise", "YAF"),
        "OA_bite_neutral.wav": ("neutral", "OAF"), "YAF_germ_Sad.wav": ("sad", "YAF"),
    }


def test_savee_nested_and_flat(tmp_path: Path):
    make_files(tmp_path, ["DC/a01.wav", "DC/sa03.wav", "JE/su15.wav", "KL/n30.wav"])
    ds = load_dataset(tmp_path)
    assert ds.layout == "savee"
    assert {(c.path.parent.name + "/" + c.path.name): (c.label, c.speaker) for c in ds.clips} == {
        "DC/a01.wav": ("angry", "DC"), "DC/sa03.wav": ("sad", "DC"),
        "JE/su15.wav": ("surprise", "JE"), "KL/n30.wav": ("neutral", "KL"),
    }
    flat = tmp_path / "flat"
    make_files(flat, ["DC_a01.wav", "JK_h02.wav", "KL_f10.wav"])
    ds = load_dataset(flat)
    assert ds.layout == "savee"
    assert by_name(ds.clips)["JK_h02.wav"] == ("happy", "JK")


def test_emodb(tmp_path: Path):
    make_files(tmp_path, ["wav/03a01Fa.wav", "wav/08b02Wb.wav", "wav/16a07La.wav",
                          "wav/11b10Ec.wav", "wav/09a04Ta.wav", "wav/14a05Aa.wav",
                          "wav/15b03Nb.wav"])
    ds = load_dataset(tmp_path)
    assert ds.layout == "emodb"
    assert by_name(ds.clips)["03a01Fa.wav"] == ("happy", "03")
    assert by_name(ds.clips)["16a07La.wav"] == ("boredom", "16")
    assert ds.labels == ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")


def test_notebook_names_are_not_mistaken_for_savee(tmp_path: Path):
    # The notebook's "a01 (1).wav" looks like SAVEE's "a01.wav" but has no speaker folder.
    make_files(tmp_path, ["anger/a01.wav", "happiness/h01.wav", "sadness/sa01.wav"])
    assert detect_layout(tmp_path) == "folders"


def test_explicit_layout_overrides_detection(tmp_path: Path):
    make_files(tmp_path, ["DC/a01.wav", "JE/h02.wav"])
    assert load_dataset(tmp_path).layout == "savee"
    ds = load_dataset(tmp_path, "folders")
    assert ds.layout == "folders" and ds.labels == ("DC", "JE")


def test_errors_for_unusable_sources(tmp_path: Path):
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no audio files"):
        load_dataset(tmp_path)
    make_files(tmp_path, ["loose.wav"])
    with pytest.raises(DatasetError, match=r"cannot tell the layout.*pass --layout"):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match="unknown layout 'iemocap'"):
        load_dataset(tmp_path, "iemocap")
    with pytest.raises(DatasetError, match="no usable clips in the ravdess layout; 1 file"):
        load_dataset(tmp_path, "ravdess")
