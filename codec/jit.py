"""Compiling lqz's numba kernels, cached on disk under a key of their source code.

numba's on-disk cache checks only the source file of the function it loads: a cached kernel
that calls a function of another file (``kernels.py`` calls :mod:`.entropy.detmath`), or bakes
in a constant from one (``search.py`` reads :mod:`.leech.shell`), would run stale machine code
after that file changed. Every kernel is therefore compiled through :func:`kernel`, whose cache
lives in ``<base>/<key>``: ``key`` is the SHA-256 (first 16 hex digits) of every file in
:data:`KERNEL_SOURCES`, and ``base`` is ``$NUMBA_CACHE_DIR`` when set (numba's own setting),
else ``$XDG_CACHE_HOME/lqz/numba`` (``~/.cache/lqz/numba``). Kernels compiled from other
sources sit under another key and are never loaded. Where no such folder is writable, a
per-user folder in the temporary directory takes its place; failing that, kernels compile in
every process.

numba's global cache setting is only set for the moment a kernel is defined (numba fixes a
function's cache folder then), so other numba code in the process keeps its own.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numba

#: Files (relative to the ``lqz`` package) whose text decides what the kernels compile to: the
#: modules that define kernels and every lqz module they import from (``tests/test_jit.py``
#: checks that this list is complete).
KERNEL_SOURCES = (
    "jit.py",
    "entropy/detmath.py",
    "entropy/kernels.py",
    "entropy/params.py",
    "entropy/simd.py",
    "entropy/structure.py",
    "leech/golay.py",
    "leech/search.py",
    "leech/shell.py",
    "nn/exact_kernels.py",
    "threads.py",
)
PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def source_key() -> str:
    """First 16 hex digits of the SHA-256 of :data:`KERNEL_SOURCES` (names and contents)."""
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        try:
            text = (PACKAGE / name).read_bytes()
        except OSError:  # no source: numba cannot cache it either; the key stays well defined
            text = b""
        digest.update(f"{name}\0{len(text)}\0".encode())
        digest.update(text)
    return digest.hexdigest()[:16]


def cache_base() -> Path:
    """The folder that holds one cache folder per :func:`source_key`."""
    if numba.config.CACHE_DIR:  # $NUMBA_CACHE_DIR, as numba read it
        return Path(numba.config.CACHE_DIR).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return root / "lqz" / "numba"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


@lru_cache(maxsize=1)
def cache_dir() -> Path | None:
    """Where the kernels of these sources are cached; ``None``: nowhere writable (no cache)."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    fallback = Path(tempfile.gettempdir()) / f"lqz-numba-{user}"
    for base in (cache_base(), fallback):
        folder = (base / source_key()).resolve()
        if _writable(folder):
            return folder
    return None


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(nogil=True, cache=True, **options)``, cached in :func:`cache_dir`."""
    options = {"nogil": True, **options}

    def compile_(func: Callable[..., Any]) -> Any:
        folder = cache_dir()
        if folder is None:
            return numba.njit(cache=False, **options)(func)
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = str(folder)
        try:
            return numba.njit(cache=True, **options)(func)
        finally:
            numba.config.CACHE_DIR = saved

    return compile_
