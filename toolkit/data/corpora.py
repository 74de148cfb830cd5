"""File-name conventions of public emotional-speech corpora.

Each adapter turns a file's path (relative to the corpus root) into a label and
a speaker, or says the name does not follow the convention. The label
vocabulary is shared across corpora: angry, boredom, calm, disgust, fear,
happy, neutral, sad, surprise.

| corpus  | example name              | label from              | speaker from            |
|---------|---------------------------|-------------------------|-------------------------|
| RAVDESS | 03-01-05-01-02-01-12.wav  | 3rd field (01..08)      | 7th field (actor 01-24) |
| CREMA-D | 1001_DFA_ANG_XX.wav       | 3rd field (ANG, ...)    | 1st field (actor id)    |
| TESS    | OAF_back_angry.wav        | last field (ps=surprise)| first field (OAF/YAF)   |
| SAVEE   | DC/a01.wav or DC_a01.wav  | letter code (sa, su...) | DC, JE, JK, KL          |
| EmoDB   | 03a01Fa.wav               | 6th letter (German)     | first two digits        |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class ParsedName:
    label: str
    speaker: str


RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}
CREMA_D_EMOTIONS = {
    "ANG": "angry", "DIS": "disgust", "FEA": "fear",
    "HAP": "happy", "NEU": "neutral", "SAD": "sad",
}
TESS_EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "ps": "surprise", "sad": "sad",
}
SAVEE_EMOTIONS = {
    "a": "angry", "d": "disgust", "f": "fear", "h": "happy",
    "n": "neutral", "sa": "sad", "su": "surprise",
}
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
EMODB_EMOTIONS = {  # German initials: Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral
    "W": "angry", "L": "boredom", "E": "disgust", "A": "fear",
    "F": "happy", "T": "sad", "N": "neutral",
}

_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_CREMA_D = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_TESS = re.compile(r"^(OAF|YAF|OA|YA)_([A-Za-z]+)_([A-Za-z]+)$", re.IGNORECASE)
_SAVEE_FILE = re.compile(r"^(sa|su|[adfhn])(\d\d)$")
_SAVEE_FLAT = re.compile(r"^(DC|JE|JK|KL)_(sa|su|[adfhn])(\d\d)$")
_EMODB = re.compile(r"^(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])$")


def parse_ravdess(rel: PurePath) -> ParsedName | None:
    m = _RAVDESS.match(rel.stem)
    if not m or m.group(3) not in RAVDESS_EMOTIONS:
        return None
    return ParsedName(RAVDESS_EMOTIONS[m.group(3)], f"actor{m.group(7)}")


def parse_crema_d(rel: PurePath) -> ParsedName | None:
    m = _CREMA_D.match(rel.stem)
    if not m or m.group(3) not in CREMA_D_EMOTIONS:
        return None
    return ParsedName(CREMA_D_EMOTIONS[m.group(3)], m.group(1))


def parse_tess(rel: PurePath) -> ParsedName | None:
    m = _TESS.match(rel.stem)
    if not m:
        return None
    emotion = m.group(3).lower()
    if emotion not in TESS_EMOTIONS:
        return None
    # A few TESS files are named "OA_..." for "OAF_...".
    speaker = m.group(1).upper()
    speaker = speaker + "F" if len(speaker) == 2 else speaker
    return ParsedName(TESS_EMOTIONS[emotion], speaker)


def parse_savee(rel: PurePath) -> ParsedName | None:
    flat = _SAVEE_FLAT.match(rel.stem)
    if flat:
        return ParsedName(SAVEE_EMOTIONS[flat.group(2)], flat.group(1))
    m = _SAVEE_FILE.match(rel.stem)
    speaker = rel.parent.name
    if not m or speaker not in SAVEE_SPEAKERS:
        return None
    return ParsedName(SAVEE_EMOTIONS[m.group(1)], speaker)


def parse_emodb(rel: PurePath) -> ParsedName | None:
    m = _EMODB.match(rel.stem)
    if not m:
        return None
    return ParsedName(EMODB_EMOTIONS[m.group(3)], m.group(1))


CORPUS_ADAPTERS: dict[str, Callable[[PurePath], ParsedName | None]] = {
    # Order matters only for ties in auto-detection: most specific first.
    "ravdess": parse_ravdess,
    "crema-d": parse_crema_d,
    "emodb": parse_emodb,
    "tess": parse_tess,
    "savee": parse_savee,
}

CORPUS_NAMES = {
    "ravdess": "RAVDESS", "crema-d": "CREMA-D", "emodb": "EmoDB", "tess": "TESS", "savee": "SAVEE",
}
