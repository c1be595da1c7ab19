"""Threads: numba's counts set without disturbing torch's, and torch work whose floats do not
depend on the thread count.

numba's OpenMP threading layer starts on the first ``numba.set_num_threads`` (or parallel kernel)
of a process and then calls ``omp_set_num_threads(NUMBA_NUM_THREADS)``. torch runs on the same
OpenMP runtime, so from then on ``torch.get_num_threads()`` is numba's default (every core), not
what ``torch.set_num_threads``, ``lqz --threads`` or ``OMP_NUM_THREADS`` asked for. Everything in
lqz that sets numba's threads goes through :func:`set_numba_threads`, which puts torch's back.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def set_numba_threads(threads: int | None = None) -> None:
    """Run numba's kernels on ``threads`` threads (default: torch's count, when torch is loaded),
    at most ``NUMBA_NUM_THREADS``; torch's thread count stays what it was."""
    import numba

    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    wanted = threads if threads is not None else torch_threads
    if wanted is None:
        wanted = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(max(1, min(int(wanted), numba.config.NUMBA_NUM_THREADS)))
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Put torch's thread count back on exit, whatever the code inside did to it."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


_pool: tuple[int, ThreadPoolExecutor] | None = None


def _worker() -> ThreadPoolExecutor:
    """The thread that runs the calls after the first (a new one in a forked child: the
    parent's is not there)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="lqz-band")
    return _pool[1]


def _one_thread(call: Callable[[], T]) -> T:
    import torch

    if torch.get_num_threads() != 1:  # a worker thread keeps its own OpenMP setting
        torch.set_num_threads(1)
    return call()


def single_threaded(calls: Sequence[Callable[[], T]]) -> list[T]:
    """The results of ``calls``, each run with torch on one thread.

    oneDNN's results change with the thread count; work cut into pieces by its size alone, each
    piece on one thread, gives the same floats whatever threads the caller allows. When the
    caller allows torch more than one thread, the calls after the first run concurrently on a
    worker thread (torch releases the GIL). Grad and inference mode are per thread: each call
    sets the mode it needs.
    """
    import torch

    first, *rest = calls
    with torch_threads_kept():
        parallel = bool(rest) and torch.get_num_threads() > 1
        torch.set_num_threads(1)
        if not parallel:
            return [call() for call in calls]
        pending = [_worker().submit(_one_thread, call) for call in rest]
        return [first(), *(f.result() for f in pending)]
