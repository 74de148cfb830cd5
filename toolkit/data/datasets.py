"""Datasets: find clips, their labels and speakers, in any of the supported layouts.

Layouts
- ``folders``: one folder per emotion, as the original notebook used. The folder
  name is the label, mapped through `FOLDER_LABELS` (anger -> angry, happiness ->
  happy, sadness -> sad, ...); any other folder name is used as it is. A file one
  level deeper (``anger/spk01/x.wav``) takes its speaker from that sub-folder;
  otherwise an optional ``speaker_regex`` with a ``(?P<speaker>...)`` group reads it
  from the file name; otherwise the speaker is unknown.
- ``manifest``: a CSV file with columns ``path,label`` and optional ``speaker`` and
  ``session``. Relative paths are relative to the CSV's folder.
- ``ravdess``, ``crema-d``, ``tess``, ``savee``, ``emodb``: the corpora's own file
  names (see `emo_toolkit.data.corpora`).
- ``auto``: a CSV path or a folder holding ``manifest.csv`` -> manifest; else the
  corpus adapter that parses at least 90 % of the files; else folders.

Nothing here decodes audio; `emo_toolkit.data.scan.validate_dataset` does that.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePath

from emo_toolkit.data.corpora import CORPUS_ADAPTERS, CORPUS_NAMES
from emo_toolkit.runtime.audio import AUDIO_EXTENSIONS
from emo_toolkit.runtime.checks import check_speaker_regex, label_text, printable
from emo_toolkit.runtime.errors import DatasetError

LAYOUTS = ("auto", "folders", "manifest", *CORPUS_ADAPTERS)
MANIFEST_NAME = "manifest.csv"
AUTO_DETECT_MIN_FRACTION = 0.9

FOLDER_LABELS = {
    "anger": "angry", "angry": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear",
    "happiness": "happy", "happy": "happy", "joy": "happy",
    "sadness": "sad", "sad": "sad",
    "neutral": "neutral",
    "surprise": "surprise", "surprised": "surprise",
    "calm": "calm", "boredom": "boredom",
}
"""Folder name -> label. Case-insensitive; names not listed become labels unchanged."""


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str | None = None
    session: str | None = None


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {**asdict(self), "path": str(self.path)}


@dataclass
class Dataset:
    root: Path
    layout: str
    clips: list[Clip]
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        """The label set, from the data, in a stable (sorted) order."""
        return tuple(sorted({c.label for c in self.clips}))

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(sorted({c.speaker for c in self.clips if c.speaker is not None}))

    @property
    def speakers_known(self) -> bool:
        return bool(self.clips) and all(c.speaker is not None for c in self.clips)


def load_dataset(source: str | Path, layout: str = "auto",
                 speaker_regex: str | None = None) -> Dataset:
    """Find the clips under `source` (a folder, or a CSV manifest)."""
    source = Path(source)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not source.exists():
        raise DatasetError(f"{source}: no such file or folder")
    if layout == "auto":
        layout = detect_layout(source)
    if layout == "manifest":
        csv_path = source if source.is_file() else source / MANIFEST_NAME
        return read_manifest(csv_path)
    if not source.is_dir():
        raise DatasetError(f"{source}: the {layout} layout needs a folder")
    files, unlisted = list_audio_files(source)
    if layout == "folders":
        return _folder_dataset(source, files, speaker_regex, unlisted)
    return _corpus_dataset(source, files, layout, unlisted)


def list_audio_files(root: Path) -> tuple[list[Path], list[SkippedFile]]:
    """Audio files under `root`, sorted, hidden files and folders left out, and the folders
    that could not be listed (each a skip with its reason: nothing vanishes silently).
    Symbolic links to folders are followed (a label folder may be one), each real folder
    once, so a link back up cannot loop."""
    unlisted: list[SkippedFile] = []
    return list(iter_audio_files(root, unlisted.append)), unlisted


def iter_audio_files(root: Path, refused: Callable[[SkippedFile], None]) -> Iterator[Path]:
    """`list_audio_files`'s files in its order, found as the walk goes: memory follows one
    folder's entries, not the archive (a walk in name order at every level is the sorted
    order of the paths). `refused` hears each folder that could not be listed."""
    seen: set[tuple[int, int]] = set()

    def walk(folder: Path) -> Iterator[Path]:
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:  # reached again through a link
                return
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as listing:
                entries = sorted((e for e in listing if not e.name.startswith(".")),
                                 key=lambda e: e.name)
        except OSError as e:
            refused(SkippedFile(Path(e.filename or folder), "unreadable",
                                f"cannot list this folder ({e.strerror or e})"))
            return
        for entry in entries:
            path = folder / entry.name
            if _is_dir(entry):
                yield from walk(path)
            elif Path(entry.name).suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
                yield path

    yield from walk(Path(root))


def iter_listed_files(handle: Iterable[str], name: str) -> Iterator[Path]:
    """The files a list names, read as it goes: one path per line, or a CSV manifest
    (`name` ends in .csv) whose path column is read, relative paths taken from the
    manifest's folder as emo-data takes them. DatasetError for a manifest without a path
    column."""
    if not name.lower().endswith(".csv"):
        yield from (Path(line.rstrip("\r\n")) for line in handle if line.strip())
        return
    reader = csv.DictReader(handle)
    columns = {(c or "").strip().lower(): c for c in (reader.fieldnames or [])}
    if "path" not in columns:
        raise DatasetError(f"{name}: a manifest needs a path column; found "
                           f"{', '.join(columns) or 'no header'}")
    root = Path(name).parent
    for row in reader:
        raw = (row.get(columns["path"]) or "").strip()
        if raw:
            yield Path(raw) if PurePath(raw).is_absolute() else root / raw


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links, as the walk does
    except OSError:
        return False


def detect_layout(source: Path) -> str:
    """Guess the layout; raise `DatasetError` saying what was tried when nothing fits."""
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "manifest"
        raise DatasetError(f"{source}: a dataset is a folder or a CSV manifest")
    if (source / MANIFEST_NAME).is_file():
        return "manifest"
    files, _ = list_audio_files(source)  # what cannot be listed, load_dataset reports
    if not files:
        raise DatasetError(f"{source}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})")
    rels = [f.relative_to(source) for f in files]
    best, best_fraction = None, 0.0
    for name, parse in CORPUS_ADAPTERS.items():
        fraction = sum(parse(r) is not None for r in rels) / len(rels)
        if fraction > best_fraction:
            best, best_fraction = name, fraction
    if best is not None and best_fraction >= AUTO_DETECT_MIN_FRACTION:
        return best
    if any(len(r.parts) >= 2 for r in rels):
        return "folders"
    raise DatasetError(
        f"{source}: cannot tell the layout: no {MANIFEST_NAME}, no corpus naming convention "
        f"({', '.join(CORPUS_NAMES.values())}) fits, and no label folders. "
        "Put the files in one folder per label, or pass --layout."
    )


def folder_label(name: str) -> str:
    """The label a folder name gives (label_text's rule; ValueError when it breaks it)."""
    return label_text(FOLDER_LABELS.get(name.lower(), printable(name)))


def _folder_dataset(root: Path, files: list[Path], speaker_regex: str | None,
                    unlisted: list[SkippedFile]) -> Dataset:
    try:
        check_speaker_regex(speaker_regex)
    except ValueError as e:
        raise DatasetError(str(e)) from e
    pattern = re.compile(speaker_regex) if speaker_regex else None
    clips, skipped = [], list(unlisted)
    for f in files:
        rel = f.relative_to(root)
        if len(rel.parts) < 2:
            skipped.append(SkippedFile(f, "no-label", "file is not inside a label folder"))
            continue
        try:
            label = folder_label(rel.parts[0])
        except ValueError as e:
            skipped.append(SkippedFile(f, "bad-label", str(e)))
            continue
        speaker = printable(rel.parts[1]) if len(rel.parts) == 3 else None
        if pattern is not None:
            m = pattern.search(f.stem)
            if m is None:
                skipped.append(SkippedFile(
                    f, "no-speaker", f"file name does not match speaker regex {speaker_regex!r}"))
                continue
            speaker = printable(m.group("speaker"))
        clips.append(Clip(f, label, speaker))
    return _checked(Dataset(root, "folders", clips, skipped))


def _corpus_dataset(root: Path, files: list[Path], layout: str,
                    unlisted: list[SkippedFile]) -> Dataset:
    parse = CORPUS_ADAPTERS[layout]
    clips, skipped = [], list(unlisted)
    for f in files:
        parsed = parse(f.relative_to(root))
        if parsed is None:
            skipped.append(SkippedFile(
                f, "bad-name", f"file name does not follow the {CORPUS_NAMES[layout]} convention"))
            continue
        clips.append(Clip(f, parsed.label, parsed.speaker))
    return _checked(Dataset(root, layout, clips, skipped))


def read_manifest(csv_path: Path) -> Dataset:
    """Read a CSV manifest (path,label[,speaker][,session]); bad rows are skipped, not fatal."""
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: manifest not found")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{csv_path}: cannot read the manifest ({e})") from e
    # the csv module's own line handling: a quoted cell may hold a newline, and U+2028 or
    # U+0085 are characters, not line ends (str.splitlines split rows on them)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = {(c or "").strip().lower(): c for c in (reader.fieldnames or [])}
        rows_end = reader.line_num
    except csv.Error as e:
        raise DatasetError(f"{csv_path}: not a readable CSV manifest (header: {e})") from e
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise DatasetError(
            f"{csv_path}: the manifest needs columns path,label (optional speaker, session); "
            f"missing {', '.join(missing)}; found {', '.join(columns) or 'no header'}"
        )
    root = csv_path.parent
    clips: list[Clip] = []
    skipped: list[SkippedFile] = []
    seen: set[Path] = set()
    rows: list[tuple[int, dict[str, str | None]]] = []
    try:
        for row in reader:  # the line each record starts on (a quoted cell may span lines)
            rows.append((rows_end + 1, row))
            rows_end = reader.line_num
    except csv.Error as e:
        raise DatasetError(f"{csv_path}: not a readable CSV manifest (line {reader.line_num}: "
                           f"{e})") from e
    for line_no, row in rows:
        raw_path, label = _cell(row, columns, "path"), _cell(row, columns, "label")
        if raw_path is None:
            skipped.append(SkippedFile(csv_path, "bad-row", f"line {line_no}: empty path"))
            continue
        path = Path(raw_path) if PurePath(raw_path).is_absolute() else root / raw_path
        try:
            label = None if label is None else label_text(label)
        except ValueError as e:
            skipped.append(SkippedFile(path, "bad-label", f"{csv_path.name} line {line_no}: {e}"))
            continue
        if label is None:
            skipped.append(SkippedFile(
                path, "no-label", f"{csv_path.name} line {line_no}: no label"))
        elif not path.is_file():
            skipped.append(SkippedFile(
                path, "unreadable", f"{csv_path.name} line {line_no}: file not found"))
        elif path.resolve() in seen:
            skipped.append(SkippedFile(
                path, "duplicate", f"{csv_path.name} line {line_no}: listed more than once"))
        else:
            seen.add(path.resolve())
            clips.append(Clip(
                path, label, _cell(row, columns, "speaker"), _cell(row, columns, "session")))
    return _checked(Dataset(root, "manifest", clips, skipped))


def _cell(row: dict[str, str | None], columns: dict[str, str], name: str) -> str | None:
    """A stripped manifest cell, None when the column is absent or the cell is empty."""
    if name not in columns:
        return None
    return (row.get(columns[name]) or "").strip() or None


def _checked(ds: Dataset) -> Dataset:
    if not ds.clips:
        detail = f"; {skipped_reasons(ds.skipped)}" if ds.skipped else ""
        raise DatasetError(f"{ds.root}: no usable clips in the {ds.layout} layout{detail}")
    return ds


def skipped_reasons(skipped: list[SkippedFile]) -> str:
    """Why files were skipped, in one line: counts per reason and the first file's message."""
    counts = Counter(s.reason for s in skipped)
    first = skipped[0]
    return (f"{len(skipped)} file(s) skipped: "
            f"{', '.join(f'{n} {reason}' for reason, n in counts.most_common())} "
            f"(e.g. {first.path.name}: {first.message})")


def without(ds: Dataset, bad: list[SkippedFile]) -> Dataset:
    """The dataset less the clips named in `bad`, which join its skipped list."""
    bad_paths = {s.path for s in bad}
    return replace(
        ds, clips=[c for c in ds.clips if c.path not in bad_paths], skipped=[*ds.skipped, *bad]
    )
