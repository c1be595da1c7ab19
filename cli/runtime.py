"""The codec in a CLI process: thread budgets, loading the model, a batch worker's set-up."""

from __future__ import annotations

import os
import signal
import warnings
from typing import Any

import click

#: Told once on stderr when numba's kernel cache is cold (unless --quiet).
COLD_KERNELS_NOTE = "lqz: preparing compiled kernels (first run only, may take a minute)..."


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_threads(workers: int, threads: int | None) -> int:
    """Threads of each of ``workers`` processes: ``--threads`` if given, else an even share
    of the cores (at least 1)."""
    return threads if threads is not None else max(1, cores() // workers)


threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    metavar="N",
    help="CPU threads of torch and the entropy coder (of each worker with -j). Default: "
    "torch's (the cores, or $OMP_NUM_THREADS); with -j, the cores shared out evenly.",
)
jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Files coded at the same time, each worker process with its own model; outputs "
    "are the same bytes as with -j 1 and are reported in input order.",
)


def output_option(text: str) -> Any:
    """``-o/--output OUT`` of a coding command, with its help ``text``."""
    return click.option("-o", "--output", metavar="OUT", help=text)


def set_threads(threads: int | None) -> None:
    """``--threads``: torch's intra-op threads (numba's kernels follow torch's count)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


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


def start_worker(threads: int, debug: bool) -> None:
    """Set-up of a batch worker process: its thread budget and the model.

    Ctrl-C reaches the whole process group; the parent handles it and stops the workers, so
    they ignore it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(threads)
    load_model(debug, quiet=True)
