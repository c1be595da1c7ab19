"""Inputs of a command: what the arguments name (files, folders, globs, stdin) and their bytes."""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import click

from .exits import CliError, ExitCode

#: The name of stdin and stdout on the command line.
STDIO = "-"
GLOB_CHARS = frozenset("*?[")


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


def binary_stream(stream: Any) -> BinaryIO:
    """The binary layer of a standard stream (``sys.stdin`` may be replaced, e.g. in tests)."""
    return getattr(stream, "buffer", stream)


def read_input(job: Job) -> bytes:
    """The bytes of the job's input (stdin when ``source`` is None)."""
    if job.source is None:
        stream = binary_stream(sys.stdin)
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
