"""Exit codes and one-line reports: every failure of a command ends as ``lqz: error: ...``.

Only the standard library, click and ``lqz.errors`` (no imports of its own) load here, so
``lqz --help`` stays fast.
"""

from __future__ import annotations

import functools
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, TypeVar

import click

from lqz import errors


class ExitCode(IntEnum):
    """Exit codes of ``lqz`` (documented in docs/CLI.md)."""

    OK = 0
    ERROR = errors.EXIT_ERROR  # usage, bad option value, model weights, internal error
    INPUT = errors.EXIT_INPUT  # input missing, unreadable, not an image, too large
    CORRUPT = errors.EXIT_CORRUPT  # not an .lqz file, corrupt, truncated, unsupported
    OUTPUT = errors.EXIT_OUTPUT  # output exists (no --force) or cannot be written
    PARTIAL = 5  # several inputs and some of them failed
    INTERRUPTED = 128 + signal.SIGINT  # Ctrl-C
    TERMINATED = 128 + signal.SIGTERM  # kill, or a service manager stopping lqz


#: What each code means, in short for ``lqz --help`` (docs/CLI.md has the full table).
MEANINGS = {
    ExitCode.OK: "ok",
    ExitCode.ERROR: "usage or other error",
    ExitCode.INPUT: "input missing or unreadable",
    ExitCode.CORRUPT: "corrupt or invalid .lqz",
    ExitCode.OUTPUT: "output exists or cannot be written",
    ExitCode.PARTIAL: "some files of several failed",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.TERMINATED: "terminated (SIGTERM)",
}


def exit_codes_help() -> str:
    return ", ".join(f"{int(code)} {MEANINGS[code]}" for code in ExitCode)


class CliError(Exception):
    """A failure to report as ``lqz: error: MESSAGE`` with an exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.exit_code = code


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so that temporary files are removed on the way."""


def one_line(text: object) -> str:
    """``text`` on one line (exception messages sometimes span several)."""
    return " ".join(str(text).split())


def error(message: str) -> None:
    click.echo(f"lqz: error: {one_line(message)}", err=True)


def warn(message: str) -> None:
    click.echo(f"lqz: warning: {one_line(message)}", err=True)


def classify(exc: BaseException, default: ExitCode) -> tuple[str, ExitCode]:
    """Message and exit code for a failure while handling a file.

    An ``LqzError`` or ``CliError`` says its own code; ``default``, the code of the stage
    that failed (reading an image: INPUT, reading an .lqz: CORRUPT), is for a bare
    ``LqzError`` only.
    """
    if isinstance(exc, CliError):
        return str(exc), exc.exit_code
    if isinstance(exc, errors.LqzError):
        code = exc.exit_code if type(exc) is not errors.LqzError else default
        return str(exc), ExitCode(code)
    if isinstance(exc, MemoryError):
        return "out of memory", ExitCode.ERROR
    return f"internal error: {type(exc).__name__}: {exc}", ExitCode.ERROR


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only)."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the clean-up must not be cut short
        raise Terminated(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """``--quiet`` and ``--debug``, and turning every failure into one line and an exit code."""

    @click.option("--quiet", is_flag=True, help="Print only errors and warnings.")
    @click.option("--debug", is_flag=True, help="Show a traceback on errors.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs["debug"]
        try:
            with sigterm_unwinds():
                code = func(*args, **kwargs)
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            error("interrupted")
            code = ExitCode.INTERRUPTED
        except Terminated:
            if debug:
                traceback.print_exc()
            error("terminated")
            code = ExitCode.TERMINATED
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise  # usage errors: formatted by LqzGroup.main
        except Exception as exc:  # one line for everything else; the traceback under --debug
            if debug:
                traceback.print_exc()
            message, code = classify(exc, ExitCode.ERROR)
            if code == ExitCode.ERROR and message.startswith("internal error") and not debug:
                message += " (run with --debug for a traceback)"
            error(message)
        click.get_current_context().exit(int(code or 0))

    return wrapper  # type: ignore[return-value]
