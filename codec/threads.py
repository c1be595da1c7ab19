"""Thread counts of numba's kernels, set without disturbing torch's.

numba's OpenMP threading layer starts on the first ``numba.set_num_threads`` (or parallel kernel)
of a process and then calls ``omp_set_num_threads(NUMBA_NUM_THREADS)``. torch runs on the same
OpenMP runtime, so from then on ``torch.get_num_threads()`` is numba's default (every core), not
what ``torch.set_num_threads``, ``lqz --threads`` or ``OMP_NUM_THREADS`` asked for. Everything in
lqz that sets numba's threads goes through :func:`set_numba_threads`, which puts torch's back.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


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
