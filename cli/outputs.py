"""Outputs of a command: where each job writes, and writing it atomically (never half a file)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from contextlib import suppress
from pathlib import Path

import click

from .exits import CliError, ExitCode
from .inputs import STDIO, Job, binary_stream

#: Tests only: when this environment variable names a file, :func:`write_output` writes the
#: temporary file's path there and waits before the rename, so that a test can signal a
#: process in the middle of a write.
PAUSE_BEFORE_RENAME = "LQZ_TEST_PAUSE_BEFORE_RENAME"
PAUSE_SECONDS = 60.0


def plan_outputs(
    jobs: list[Job],
    output: str | None,
    batch: bool,
    name: Callable[[Path], str],
    force: bool,
    file_suffixes: Collection[str] = (),
) -> None:
    """Set every job's destination; fail jobs whose output exists (without ``force``) or
    clashes with another job's.

    Without ``-o`` an output goes next to its input (stdin: stdout). With one input, ``-o`` is
    the output file, ``-`` (stdout) or an existing folder; with several it is a folder, created
    if needed, and a name with one of ``file_suffixes`` (the command's output files) is refused
    rather than made a folder, unless it ends in ``/``.
    """
    out_dir: Path | None = None
    if output is not None and (batch or output.endswith(("/", os.sep))):
        if output == STDIO:
            raise click.UsageError("with several inputs, -o must name a folder, not '-'")
        out_dir = Path(output)
        if (
            batch
            and not output.endswith(("/", os.sep))
            and not out_dir.is_dir()
            and out_dir.suffix.lower() in file_suffixes
        ):
            raise click.UsageError(
                f"several inputs need an output folder, and -o {output} names a file "
                f"(write -o {output}/ for a folder of that name)"
            )
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


def write_output(dest: Path | None, data: bytes, force: bool) -> None:
    """Write ``data`` to ``dest`` (None: stdout), atomically.

    The data go to a hidden temporary file in the destination folder that is renamed over
    ``dest`` only once complete; on any failure, Ctrl-C and SIGTERM included, it is removed and
    an existing ``dest`` stays untouched. Without ``force`` an existing ``dest`` is never
    replaced, even one that appeared while we worked (hard link, which fails if the name
    exists).
    """
    if dest is None:
        stream = binary_stream(sys.stdout)
        if stream.isatty():
            raise CliError(
                "refusing to write binary data to a terminal (redirect stdout or use -o FILE)",
                ExitCode.OUTPUT,
            )
        try:
            stream.write(data)
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
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        _test_pause(tmp)
        if force:
            os.replace(tmp, dest)
        else:
            _rename_no_clobber(tmp, dest)
    except OSError as exc:
        raise CliError(f"{dest}: cannot write: {exc.strerror or exc}", ExitCode.OUTPUT) from None
    finally:
        with suppress(OSError):
            tmp.unlink()


def _test_pause(tmp: Path) -> None:
    """See :data:`PAUSE_BEFORE_RENAME`."""
    flag = os.environ.get(PAUSE_BEFORE_RENAME)
    if not flag:
        return
    Path(f"{flag}.tmp").write_text(str(tmp))
    os.replace(f"{flag}.tmp", flag)
    deadline = time.monotonic() + PAUSE_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)


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
