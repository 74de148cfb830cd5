"""What every emo-* command shares: the one-line error rule, --version/--quiet/--debug,
and option types that refuse bad values before any work starts.

The rule: no Python traceback reaches the user. Our own errors, file-system errors
and bad options end in one line naming the file or option and the reason (exit 1;
usage errors 2). An unexpected internal error prints one line saying where its
full traceback was written; `--debug` (or EMO_TOOLKIT_DEBUG=1) shows it instead.
This module imports neither torch nor the model code, so `--help` is quick.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, get_type_hints

import click

from emo_toolkit.runtime import progress
from emo_toolkit.runtime.checks import check_device
from emo_toolkit.runtime.errors import EmoToolkitError, RankZeroFailed

DEBUG_ENV = "EMO_TOOLKIT_DEBUG"
INTERRUPTED_EXIT = 130
TRAIN_EXTRA_MODULES = frozenset({"torch", "torchaudio", "onnx", "onnxscript", "safetensors",
                                 "matplotlib"})
"""What `pip install emo-toolkit` leaves out and its [train] extra brings."""
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a command killed by it
_debug_flag = False  # --debug of the command being run
_depth = 0


def _debug() -> bool:
    return _debug_flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _crash_report(error: BaseException) -> Path | None:
    """Write the traceback to a new file in the temporary folder; its path, or None."""
    name = f"emo-toolkit-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    path = Path(tempfile.gettempdir()) / name
    try:
        with path.open("x", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"{' '.join(sys.argv)}\n\n")
            fh.write("".join(traceback.format_exception(error)))
    except OSError:
        return None
    return path


@contextmanager
def user_errors() -> Iterator[None]:
    """Every failure becomes one clear line and a non-zero exit; warnings go to stderr."""
    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        click.secho(f"warning: {_one_line(str(message))}", err=True, fg="yellow")

    for stream in (sys.stdout, sys.stderr):  # file names need not be valid UTF-8
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except RankZeroFailed as e:  # under torchrun: rank 0 has reported the error already
        raise SystemExit(1) from e
    except EmoToolkitError as e:
        raise click.ClickException(_one_line(str(e))) from e
    except KeyboardInterrupt as e:  # Ctrl-C, and SIGTERM/SIGHUP as Terminated
        signum = getattr(e, "signum", None)
        click.echo(f"terminated ({signal.Signals(signum).name})" if signum else "interrupted",
                   err=True)
        raise SystemExit(128 + signum if signum else INTERRUPTED_EXIT) from e
    except MemoryError as e:
        raise click.ClickException("out of memory; try smaller inputs or batches") from e
    except BrokenPipeError as e:  # `emo-predict ... | head`: the reader has gone, stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(BROKEN_PIPE_EXIT) from e
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise click.ClickException(_one_line(f"{where}{e.strerror or e}")) from e
    except Exception as e:
        if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in \
                TRAIN_EXTRA_MODULES:
            raise click.ClickException(f"this needs {e.name}, which comes with the training "
                                       "stack: pip install 'emo-toolkit[train]'") from e
        if _debug():
            raise
        report = _crash_report(e)
        where = f"; the full traceback is in {report}" if report else ""
        raise click.ClickException(_one_line(
            f"internal error ({type(e).__name__}: {e}){where}. Rerun with --debug to see it "
            "here")) from e
    finally:
        warnings.showwarning = previous


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (docker stop, systemd, `timeout`, a closed terminal): the command
    unwinds as for Ctrl-C, so every temporary file is removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _terminate_like_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum: int, _: Any) -> None:
        if os.getpid() != owner:  # a forked worker inherited this: end as the signal says
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _ClosedOutput:
    """Standard output when the process started with it closed: results cannot go there,
    which is an error (not a silent exit 0); -o FILE still works."""

    def write(self, _: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed; write the results with -o FILE")

    def flush(self) -> None:
        pass


def _standard_streams() -> None:
    """A closed stderr drops messages (the result still counts); a closed stdout fails the
    first write of a result with one line."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (for the process's life)
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()  # type: ignore[assignment]


def info(message: str) -> None:
    """An info line on stderr; --quiet leaves it out (results and errors only)."""
    if not progress.is_quiet():
        click.echo(message, err=True)


@contextmanager
def _command_scope() -> Iterator[None]:
    """--quiet and --debug last for one command (tests run many in one process)."""
    global _debug_flag, _depth
    _depth += 1
    _standard_streams()
    try:
        with _terminate_like_interrupt(), user_errors():
            yield
    finally:
        _depth -= 1
        if not _depth:  # a group's subcommand runs inside the group's scope
            progress.set_quiet(False)
            _debug_flag = False


class GuardedCommand(click.Command):
    """A command whose whole invocation runs under `user_errors`."""

    def invoke(self, ctx: click.Context) -> Any:
        with _command_scope():
            return super().invoke(ctx)


class GuardedGroup(click.Group):
    command_class = GuardedCommand

    def invoke(self, ctx: click.Context) -> Any:
        with _command_scope():
            return super().invoke(ctx)


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        progress.set_quiet(True)
        logging.getLogger().setLevel(logging.WARNING)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    global _debug_flag
    if value:
        _debug_flag = True


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--version, --quiet and --debug, handled here (the command never sees them)."""
    from emo_toolkit import __version__

    f = click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                     callback=_set_debug,
                     help="show the full traceback of an internal error")(f)
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True,
                     callback=_set_quiet, help="no progress bars or info lines; results and "
                     "errors only (TQDM_DISABLE=1 also silences progress)")(f)
    return click.version_option(__version__, "--version", package_name="emo-toolkit",
                                message="%(prog)s (emo-toolkit) %(version)s")(f)


def configure_logging(is_main: bool = True) -> None:
    """INFO lines on the main process, WARNING elsewhere and under --quiet."""
    level = logging.INFO if is_main and not progress.is_quiet() else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    logging.getLogger().setLevel(level)


def usage_check(make: Callable[[], Any]) -> Any:
    """`make()`'s result; a ValueError it raises becomes a usage error (exit 2)."""
    try:
        return make()
    except ValueError as e:
        raise click.UsageError(str(e)) from e


class FiniteFloat(click.FloatRange):
    """A finite number, within the bounds when given: click's FloatRange lets NaN through
    (every comparison with NaN is false) and, unbounded, infinities too."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Device(click.ParamType):
    """cpu, cuda or cuda:N."""

    name = "device"

    def convert(self, value: Any, param: Any, ctx: click.Context | None) -> str:
        try:
            check_device(value, "the device")
        except ValueError as e:
            self.fail(str(e), param, ctx)
        return value


DEVICE = Device()


def _settings(cls: type) -> list[Field[Any]]:
    """The fields of `cls` that are settings (they have help): the others are never options
    (a resolved window, a flag the command sets)."""
    return [f for f in fields(cls) if "help" in f.metadata]


def _option_name(f: Field[Any]) -> str:
    return f.metadata.get("option", f.name)


def dataclass_options(cls: type, *, skip: tuple[str, ...] = (),
                      only: tuple[str, ...] | None = None) -> Callable[..., Any]:
    """One click option per field of a configuration dataclass (emo_toolkit.runtime.settings:
    `setting`), its default, help, type and range taken from the field, so the CLI and the
    library cannot disagree. Values are checked when `build` makes the dataclass: its own
    checks, before any work. `only` or `skip` pick the fields."""
    hints = get_type_hints(cls)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        chosen = [f for f in _settings(cls) if f.name not in skip and (only is None or
                                                                       f.name in only)]
        for f in reversed(chosen):
            name, meta = _option_name(f), f.metadata
            hint = "bool" if hints[f.name] is bool else str(hints[f.name])
            flags = ("--" + name.replace("_", "-"), *meta.get("flags", ()))
            kwargs: dict[str, Any] = {"help": meta.get("help"),
                                      "show_default": meta.get("show_default",
                                                               f.default is not None)}
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
            if hint == "bool":
                kwargs.update(is_flag=True, show_default=False)
            elif "path" in meta and "tuple" in hint:
                kwargs.update(multiple=True, type=click.Path(path_type=Path, **meta["path"]))
            elif "tuple" in hint:
                item = next(t for t in (int, float, str) if f"[{t.__name__}" in hint)
                kwargs.update(metavar=meta.get("metavar", "A,B"),
                              callback=_comma_list(item, meta.get("choices")))
            elif "choices" in meta:
                kwargs["type"] = click.Choice(meta["choices"])
            elif "path" in meta:
                kwargs["type"] = click.Path(path_type=Path, **meta["path"])
            elif name == "device":
                kwargs["type"] = DEVICE
            else:
                kind = next(t for t in (int, float, str) if t.__name__ in hint)
                low, high = meta.get("range", (None, None))
                kwargs["type"] = FiniteFloat(low, high) if kind is float else \
                    click.IntRange(low, high) if kind is int and "range" in meta else kind
            default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) and \
                "path" not in meta else f.default
            command = click.option(*flags, name, default=default, **kwargs)(command)
        return command

    return decorate


def take(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """The values of `cls`'s options (made by `dataclass_options`), taken out of `options`,
    by field name: for a library call that takes them as arguments."""
    return {f.name: options.pop(_option_name(f)) for f in _settings(cls)
            if _option_name(f) in options}


def build(cls: type, options: dict[str, Any], **given: Any) -> Any:
    """The dataclass from the options `dataclass_options` made (taken out of `options`);
    a value its checks refuse is a usage error."""
    values = {f.name: options.pop(_option_name(f)) for f in _settings(cls)
              if f.name not in given and _option_name(f) in options}
    try:
        return cls(**values, **given)
    except ValueError as e:
        named = [_option_name(f) for f in fields(cls)  # the setting the message starts with
                 if any(str(e).startswith(label) for label in
                        (f.name, f.name.replace("_", " "), _option_name(f).replace("_", " ")))]
        flag = f"--{named[0].replace('_', '-')}: " if named else ""
        raise click.UsageError(f"{flag}{e}") from e


def _comma_list(kind: type, choices: tuple[str, ...] | None = None) -> Callable[..., Any]:
    def convert(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or isinstance(value, tuple):
            return value
        try:
            items = tuple(kind(v.strip()) for v in str(value).split(",") if v.strip())
        except ValueError as e:
            raise click.BadParameter(f"expected comma-separated {kind.__name__} values, got "
                                     f"{value!r}") from e
        bad = [v for v in items if choices is not None and v not in choices]
        if bad:
            raise click.BadParameter(f"{', '.join(map(str, bad))} not in {', '.join(choices)}")
        return items
    return convert
