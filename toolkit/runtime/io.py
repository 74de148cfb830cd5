"""Safe file I/O: atomic writes that only ever replace regular files, bounded reads of
regular files, and the fault-injection hook the interruption tests use.

Writes go to a temporary file in the target's folder, are fsynced, then renamed
over the target, so a reader sees the old file or the whole new one. A target
that exists and is not a regular file (a device, FIFO, folder) is refused rather
than replaced; a symbolic link is followed, so the file it names is updated.
Failures of the file system (missing or unwritable folder, full disk) become an
`OutputError` naming the path.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from emo_toolkit.runtime.errors import EmoToolkitError

FAULT_ENV = "EMO_TOOLKIT_FAULT_AT"
"""Tests only: the N-th write point of the process (1-based) kills the process (SIGKILL)
with its temporary file written and not yet renamed into place."""

FAULT_SIGNAL_ENV = "EMO_TOOLKIT_FAULT_SIGNAL"
"""Tests only: the signal FAULT_ENV sends instead of SIGKILL (SIGTERM, SIGHUP)."""

FAULT_TRACE_ENV = "EMO_TOOLKIT_FAULT_TRACE"
"""Tests only: append the name of every write point of the process to this file."""

MAX_JSON_BYTES = 64 << 20
"""Larger JSON files than this are refused: no file the toolkit writes comes near it."""

TEMP_FILE = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+\.tmp$")  # atomic_open's: .NAME.PID.RANDOM.tmp
"""Names of the temporary files atomic writes leave behind when killed."""

_write_points = 0


class OutputError(EmoToolkitError):
    """A file or folder that cannot be written (or is not something we may replace)."""


class InputFileError(EmoToolkitError):
    """A file the toolkit wrote before that is missing, unreadable or not a regular file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600


def write_point(path: Path) -> None:
    """Called by every writer between writing its temporary file and renaming it.

    Tests set `FAULT_ENV` to kill the process exactly here, at each write point
    in turn, and `FAULT_TRACE_ENV` to list the points."""
    global _write_points
    trace = os.environ.get(FAULT_TRACE_ENV)
    at = os.environ.get(FAULT_ENV)
    if not trace and not at:
        return
    _write_points += 1
    if trace:
        with open(trace, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"{_write_points}\t{path}\n")
    if at and int(at) == _write_points:
        os.kill(os.getpid(), signal.Signals[os.environ.get(FAULT_SIGNAL_ENV, "SIGKILL")])


def writable_target(path: str | Path) -> Path:
    """The path to write `path` at: itself, or what its symbolic link names.

    Refuses a target that exists and is not a regular file, and creates missing folders."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError(f"{path}: cannot write here ({e.strerror})") from e
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise OutputError(f"{path}: exists and is {kind}; refusing to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path.parent}: cannot create the folder ({e.strerror or e})") from e
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    with atomic_open(path) as fh:
        try:
            fh.write(data)
        except OSError as e:
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
    return writable_target(path)


@contextmanager
def atomic_open(path: str | Path, text: bool = False) -> Iterator[IO[Any]]:
    """A file to write `path` through: a temporary file in the same folder that is fsynced
    and renamed over `path` when the block ends, and deleted if the block raises."""
    path = writable_target(path)
    remove_dead_temp_files(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp")
        os.fchmod(fd, _FILE_MODE)
        fh = os.fdopen(fd, "w", encoding="utf-8", newline="") if text else os.fdopen(fd, "wb")
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror})") from e
    try:
        with fh:
            try:
                yield fh
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as e:
                raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
        write_point(path)
        os.replace(tmp, path)
    except OSError as e:  # closing (a full disk shows here too) or renaming
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text of `obj` (one line with indent=None); NaN and infinity are refused."""
    text = json.dumps(obj, indent=indent, sort_keys=False, allow_nan=False)
    return text + "\n" if indent is not None else text


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))


def replace_file(tmp: Path, target: Path) -> None:
    """Rename a finished temporary file over `target` (a write point, as atomic writes)."""
    target = writable_target(target)
    write_point(target)
    try:
        os.replace(tmp, target)
    except OSError as e:
        raise OutputError(f"{target}: cannot write ({e.strerror or e})") from e


def remove_dead_temp_files(target: Path) -> None:
    """Delete the temporary files of `target` (".NAME.PID.*.tmp*") whose writer was killed."""
    prefix = f".{target.name}."
    for tmp in target.parent.glob(f"{glob.escape(prefix)}*.tmp*"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)) and tmp.is_file():
            tmp.unlink(missing_ok=True)


def dead_temp_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The temporary files of atomic writes in `folder` whose writer process has died (our
    naming, a regular file, the PID in its name not running): safe to delete."""
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    return [tmp for tmp in found if (m := TEMP_FILE.match(tmp.name)) and tmp.is_file()
            and not tmp.is_symlink() and not pid_alive(int(m["pid"]))]


def read_regular_bytes(path: str | Path, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`.

    Never blocks on a FIFO and never reads a device: the file is opened
    non-blocking and checked before any read."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise InputFileError(f"{path}: file not found") from e
    except OSError as e:
        raise InputFileError(f"{path}: cannot open ({e.strerror})") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputFileError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as fh:
        if st.st_size > max_bytes:
            raise InputFileError(f"{path}: {st.st_size} bytes, more than the {max_bytes} "
                                 "this file may hold")
        try:
            data = fh.read(max_bytes + 1)
        except OSError as e:
            raise InputFileError(f"{path}: cannot read ({e.strerror})") from e
    if len(data) > max_bytes:
        raise InputFileError(f"{path}: grew past {max_bytes} bytes while being read")
    return data


def read_json_file(path: str | Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file's content; a bad file is an `InputFileError` naming it and the problem."""
    data = read_regular_bytes(path, max_bytes)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputFileError(f"{path}: not valid JSON ({e})") from e


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def native_stderr() -> Iterator[list[str]]:
    """What native code (libsndfile's decoders, XNNPACK) writes to file descriptor 2 inside
    the block, kept off the terminal: the list gets its text when the block ends."""
    if sys.stderr is not None:
        sys.stderr.flush()
    out: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all: nothing to capture or to keep clean
        yield out
        out.append("")
        return
    try:
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                yield out
            finally:
                os.dup2(saved, 2)
                log.seek(0)
                out.append(log.read(1 << 16).decode("utf-8", "replace"))
    finally:
        os.close(saved)
