"""Machinery shared by the commands: exit codes, one-line errors, inputs, atomic outputs, reports.

Only the standard library and click are imported at module level, so ``lqz --help`` stays fast;
Pillow, tqdm and the codec (torch) load when a command needs them.
"""

from __future__ import annotations

import functools
import glob
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

STDIO = "-"
GLOB_CHARS = frozenset("*?[")


class ExitCode(IntEnum):
    """Exit codes of ``lqz`` (documented in docs/CLI.md)."""

    OK = 0
    ERROR = 1  # usage, bad option value, model weights, internal error
    INPUT = 2  # input missing, unreadable, not an image, too large
    CORRUPT = 3  # not an .lqz file, corrupt, truncated, unsupported version or model
    OUTPUT = 4  # output exists (no --force) or cannot be written
    PARTIAL = 5  # several inputs and some of them failed
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """A failure to report as ``lqz: error: MESSAGE`` with an exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = code


def one_line(text: object) -> str:
    """``text`` on one line (exception messages sometimes span several)."""
    return " ".join(str(text).split())


def error(message: str) -> None:
    click.echo(f"lqz: error: {one_line(message)}", err=True)


def warn(message: str) -> None:
    click.echo(f"lqz: warning: {one_line(message)}", err=True)


def classify(exc: BaseException, default: ExitCode) -> tuple[str, ExitCode]:
    """Message and exit code for a failure while handling a file.

    ``default`` is the code of the stage that failed (reading an image: INPUT, reading an .lqz:
    CORRUPT); problems with settings or the model weights are ERROR wherever they happen.
    """
    if isinstance(exc, CliError):
        return str(exc), exc.code
    from lqz.errors import FormatError, FormatLimitError, ImageTooLarge, LqzError

    if isinstance(exc, FormatError) or type(exc).__name__ == "CorruptStream":
        return str(exc), ExitCode.CORRUPT
    if isinstance(exc, ImageTooLarge):
        return str(exc), ExitCode.INPUT
    if isinstance(exc, FormatLimitError) or type(exc).__name__ in (
        "InvalidSetting",
        "WeightsError",
    ):
        return str(exc), ExitCode.ERROR  # settings and model problems, whatever the stage
    if isinstance(exc, LqzError):
        return str(exc), default
    if isinstance(exc, MemoryError):
        return "out of memory", ExitCode.ERROR
    return f"internal error: {type(exc).__name__}: {exc}", ExitCode.ERROR


F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """``--quiet`` and ``--debug``, and turning every failure into one line and an exit code."""

    @click.option("--quiet", is_flag=True, help="Print only errors and warnings.")
    @click.option("--debug", is_flag=True, help="Show a traceback on errors.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs["debug"]
        try:
            code = func(*args, **kwargs)
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            error("interrupted")
            code = ExitCode.INTERRUPTED
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


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Job:
    """One file to process: ``source``/``dest`` None mean stdin/stdout; ``failure`` is known
    before any work (missing input, output exists, name clash)."""

    source: Path | None
    dest: Path | None = None
    failure: CliError | None = None

    @property
    def label(self) -> str:
        return "<stdin>" if self.source is None else str(self.source)

    @property
    def dest_label(self) -> str:
        return "<stdout>" if self.dest is None else str(self.dest)


def expand_inputs(args: Iterable[str], suffixes: Callable[[], set[str]]) -> tuple[list[Job], bool]:
    """Jobs for the command-line inputs and whether this is a batch.

    A file is taken as given; a directory contributes its files (not recursive, hidden files
    skipped) whose suffix is in ``suffixes()``; a pattern that is not a path is globbed
    (``**`` recurses). ``-`` (stdin) must be the only input. A batch is several inputs, a
    directory or a pattern, even if only one file comes of it.
    """
    args = list(args)
    if STDIO in args:
        if len(args) > 1:
            raise click.UsageError("'-' (stdin) cannot be combined with other inputs")
        return [Job(source=None)], False
    jobs: list[Job] = []
    seen: set[Path] = set()
    batch = len(args) > 1

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            jobs.append(Job(source=path))

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            batch = True
            try:
                entries = sorted(path.iterdir())
            except OSError as exc:
                jobs.append(Job(path, failure=_input_error(path, exc)))
                continue
            wanted = suffixes()
            found = [
                p
                for p in entries
                if p.suffix.lower() in wanted and not p.name.startswith(".") and p.is_file()
            ]
            if not found:
                failure = CliError(f"{path}: no input files in this folder", ExitCode.INPUT)
                jobs.append(Job(path, failure=failure))
            for p in found:
                add(p)
        elif not path.exists() and GLOB_CHARS & set(arg):
            batch = True
            matches = sorted(glob.glob(arg, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                jobs.append(Job(path, failure=CliError(f"{arg}: no files match", ExitCode.INPUT)))
            for p in files:
                add(p)
        elif not path.exists():
            jobs.append(Job(path, failure=_input_error(path, FileNotFoundError())))
        else:
            add(path)
    return jobs, batch


def _input_error(path: Path | None, exc: OSError) -> CliError:
    label = "<stdin>" if path is None else str(path)
    if isinstance(exc, FileNotFoundError):
        return CliError(f"{label}: no such file", ExitCode.INPUT)
    if isinstance(exc, PermissionError):
        return CliError(f"{label}: permission denied", ExitCode.INPUT)
    if isinstance(exc, IsADirectoryError):
        return CliError(f"{label}: is a directory", ExitCode.INPUT)
    return CliError(f"{label}: cannot read: {exc.strerror or exc}", ExitCode.INPUT)


def _binary(stream: Any) -> BinaryIO:
    """The binary layer of a standard stream (``sys.stdin`` may be replaced, e.g. in tests)."""
    return getattr(stream, "buffer", stream)


def read_input(job: Job) -> bytes:
    """The bytes of the job's input (stdin when ``source`` is None)."""
    if job.source is None:
        stream = _binary(sys.stdin)
        if stream.isatty():
            raise CliError("refusing to read binary data from a terminal", ExitCode.INPUT)
        try:
            return stream.read()
        except OSError as exc:
            raise _input_error(None, exc) from None
    try:
        return job.source.read_bytes()
    except OSError as exc:
        raise _input_error(job.source, exc) from None


# ---------------------------------------------------------------------------------------------
# Outputs


def plan_outputs(
    jobs: list[Job],
    output: str | None,
    batch: bool,
    name: Callable[[Path], str],
    force: bool,
) -> None:
    """Set every job's destination; fail jobs whose output exists (without ``force``) or
    clashes with another job's.

    Without ``-o`` an output goes next to its input (stdin: stdout). With one input, ``-o`` is
    the output file, ``-`` (stdout) or an existing folder; with several it is a folder, created
    if needed.
    """
    out_dir: Path | None = None
    if output is not None and (batch or output.endswith(("/", os.sep))):
        if output == STDIO:
            raise click.UsageError("with several inputs, -o must name a folder, not '-'")
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise CliError(f"{out_dir}: exists and is not a folder", ExitCode.OUTPUT)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(
                f"{out_dir}: cannot create folder: {exc.strerror}", ExitCode.OUTPUT
            ) from None
    elif output is not None and output != STDIO and Path(output).is_dir():
        out_dir = Path(output)

    claimed: dict[Path, Job] = {}
    for job in jobs:
        if job.failure is not None:
            continue
        if out_dir is not None:
            if job.source is None:
                job.failure = CliError("give an output file name for stdin input (-o FILE)")
                continue
            job.dest = out_dir / name(job.source)
        elif output == STDIO or (output is None and job.source is None):
            job.dest = None
        elif output is not None:
            job.dest = Path(output)
        else:
            assert job.source is not None
            job.dest = job.source.with_name(name(job.source))
            if job.dest == job.source:  # input already has the output's suffix: append it
                job.dest = job.source.with_name(job.source.name + job.dest.suffix)
        if job.dest is None:
            continue
        if job.source is not None and _same_file(job.source, job.dest):
            job.failure = CliError(f"{job.dest}: output would overwrite the input", ExitCode.OUTPUT)
            continue
        key = job.dest.resolve()
        if key in claimed:
            other = claimed[key].label
            job.failure = CliError(
                f"{job.label}: output {job.dest} is also the output of {other}", ExitCode.OUTPUT
            )
            continue
        claimed[key] = job
        if job.dest.is_dir():
            job.failure = CliError(f"{job.dest}: is a folder", ExitCode.OUTPUT)
        elif not force and os.path.lexists(job.dest):
            job.failure = CliError(
                f"{job.dest}: already exists (use --force to overwrite)", ExitCode.OUTPUT
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_output(dest: Path | None, write: Callable[[BinaryIO], None], force: bool) -> None:
    """Write through ``write`` to ``dest`` (None: stdout), atomically.

    The data go to a hidden temporary file in the destination folder that is renamed over
    ``dest`` only once complete; on any failure, Ctrl-C included, it is removed and an existing
    ``dest`` stays untouched. Without ``force`` an existing ``dest`` is never replaced, even one
    that appeared while we worked (hard link, which fails if the name exists).
    """
    if dest is None:
        stream = _binary(sys.stdout)
        if stream.isatty():
            raise CliError(
                "refusing to write binary data to a terminal (redirect stdout or use -o FILE)",
                ExitCode.OUTPUT,
            )
        try:
            write(stream)
            stream.flush()
        except BrokenPipeError:
            _silence_stdout()
            raise CliError("stdout closed before the output was written", ExitCode.OUTPUT) from None
        except OSError as exc:
            raise CliError(
                f"cannot write to stdout: {exc.strerror or exc}", ExitCode.OUTPUT
            ) from None
        return
    folder = dest.parent
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{dest.name}.", suffix=".part")
    except FileNotFoundError:
        raise CliError(f"{dest}: folder {folder} does not exist", ExitCode.OUTPUT) from None
    except OSError as exc:
        raise CliError(f"{dest}: cannot write: {exc.strerror or exc}", ExitCode.OUTPUT) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if force:
            os.replace(tmp, dest)
        else:
            _rename_no_clobber(tmp, dest)
    except OSError as exc:
        raise CliError(f"{dest}: cannot write: {exc.strerror or exc}", ExitCode.OUTPUT) from None
    finally:
        with suppress(OSError):
            tmp.unlink()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the flush at exit does not fail again."""
    with suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _rename_no_clobber(tmp: Path, dest: Path) -> None:
    exists = CliError(f"{dest}: already exists (use --force to overwrite)", ExitCode.OUTPUT)
    try:
        os.link(tmp, dest)  # atomic, and fails if dest exists
    except FileExistsError:
        raise exists from None
    except OSError:  # no hard links on this file system: check, then rename
        if os.path.lexists(dest):
            raise exists from None
        os.replace(tmp, dest)


# ---------------------------------------------------------------------------------------------
# Running a batch


def _ours(item: warnings.WarningMessage) -> bool:
    """Warnings about the user's data: raised by lqz, the CLI or Pillow (not by torch & co)."""
    path = Path(item.filename).resolve().parts
    return any(part in ("lqz", "codec", "cli", "PIL") for part in path[-3:-1])


@contextmanager
def captured_warnings(label: str, debug: bool = False) -> Iterator[None]:
    """Show warnings raised while handling a file as ``lqz: warning: FILE: ...``: those about the
    data; library chatter (torch, numba) only with ``--debug``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            shown: set[str] = set()
            for item in caught:
                text = one_line(item.message)
                if text not in shown and (debug or _ours(item)):
                    shown.add(text)
                    warn(f"{label}: {text}")


@dataclass
class Result:
    """What one successful job reports for the summary."""

    in_bytes: int
    out_bytes: int
    bpp: float


@dataclass
class Batch:
    """Runs jobs with a progress bar (TTY only), per-file lines and a closing summary."""

    verb: str
    quiet: bool
    debug: bool
    batch: bool
    stage_code: ExitCode
    results: list[Result] = field(default_factory=list)
    failures: list[ExitCode] = field(default_factory=list)

    def run(self, jobs: list[Job], work: Callable[[Job], Result]) -> ExitCode:
        start = time.perf_counter()
        bar = self._bar(len(jobs))
        try:
            for job in jobs:
                if bar is not None:
                    bar.set_postfix_str(job.label[-40:], refresh=False)
                self._one(job, work)
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
        if self.batch and not self.quiet:
            click.echo(self.summary(time.perf_counter() - start), err=True)
        if not self.failures:
            return ExitCode.OK
        if not self.results and len(set(self.failures)) == 1:
            return self.failures[0]  # nothing done, for one reason: that reason's code
        return ExitCode.PARTIAL

    def _bar(self, total: int) -> Any:
        if self.quiet or not self.batch or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit="file", desc=self.verb, file=sys.stderr, leave=False)

    def _one(self, job: Job, work: Callable[[Job], Result]) -> None:
        try:
            if job.failure is not None:
                raise job.failure
            with captured_warnings(job.label, self.debug):
                self.results.append(work(job))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if self.debug:
                traceback.print_exc()
            message, code = classify(exc, self.stage_code)
            if not isinstance(exc, CliError) and not message.startswith(job.label):
                message = f"{job.label}: {message}"
            error(message)
            self.failures.append(code)

    def say(self, line: str) -> None:
        """A per-file line on stderr (above the progress bar), unless --quiet."""
        if self.quiet:
            return
        if self.batch and sys.stderr.isatty():
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    def summary(self, seconds: float) -> str:
        done = len(self.results)
        total_in = sum(r.in_bytes for r in self.results)
        total_out = sum(r.out_bytes for r in self.results)
        mean_bpp = sum(r.bpp for r in self.results) / done if done else 0.0
        failed = f", {len(self.failures)} failed" if self.failures else ""
        return (
            f"{self.verb} {done} file{'s' if done != 1 else ''}{failed}: "
            f"{total_in:,} -> {total_out:,} bytes, mean {mean_bpp:.4f} bpp, {seconds:.2f} s"
        )


def set_threads(threads: int | None) -> None:
    """``--threads``: torch's intra-op threads."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


#: Told once on stderr when numba's kernel cache is cold (unless --quiet).
COLD_KERNELS_NOTE = "lqz: preparing compiled kernels (first run only, may take a minute)..."


def load_model(debug: bool = False, quiet: bool = False, operation: str = "encode") -> Any:
    """Load the model once, before the first file (so that a missing model is one error);
    the deprecation chatter of torch and its libraries is shown only with ``--debug``.

    When ``operation`` will first compile numba kernels (a fresh install), say so once.
    """
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("ignore")
        from lqz import api

        loaded = api.model_set()
        if not quiet and api.kernels_cold(operation):
            click.echo(COLD_KERNELS_NOTE, err=True)
        return loaded
