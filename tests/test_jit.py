"""numba's cache of lqz's kernels is keyed by their source: a change to any kernel source
(also one that only a callee in another file sees) moves every kernel to a fresh cache."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lqz
from lqz import jit

PACKAGE = Path(lqz.__file__).resolve().parent
#: Prints which lqz a new process imported and where its kernels would be cached. Only lqz.jit
#: (no torch): that every kernel module caches in ``cache_dir()`` is checked in this process.
PROBE = """
import json
import lqz, lqz.jit
print(json.dumps({"package": lqz.__file__, "cache_dir": str(lqz.jit.cache_dir())}))
"""


def sha256_key(root: Path) -> str:
    """The expected key, computed here from the files themselves."""
    digest = hashlib.sha256()
    for name in jit.KERNEL_SOURCES:
        text = (root / name).read_bytes()
        digest.update(f"{name}\0{len(text)}\0".encode() + text)
    return digest.hexdigest()[:16]


def probe(package_parent: Path | None, cache: Path) -> dict:
    """Run :data:`PROBE` in a new process: lqz from ``package_parent`` (None: the installed
    one), ``$NUMBA_CACHE_DIR`` = ``cache``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    if package_parent is not None:
        env["PYTHONPATH"] = str(package_parent)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_every_kernel_is_cached_under_the_key_of_the_current_sources() -> None:
    from lqz.entropy import detmath, kernels, params
    from lqz.leech import search

    assert jit.source_key() == sha256_key(PACKAGE)
    folder = jit.cache_dir()
    assert folder is not None and folder.name == jit.source_key()
    assert folder.parent == jit.cache_base().resolve()
    dispatchers = [
        f
        for module in (detmath, kernels, params, search)
        for f in vars(module).values()
        if hasattr(f, "_cache") and hasattr(f, "py_func")
    ]
    assert len(dispatchers) > 30 and kernels.encode_kernel in dispatchers
    for f in dispatchers:
        assert Path(f._cache._cache_path).parent == folder, f


def test_a_changed_callee_source_moves_every_kernel(tmp_path: Path) -> None:
    """A copy of lqz whose detmath.py differs by one byte caches its kernels elsewhere (all of
    them: also kernels.py's, which only call detmath); an identical copy shares the key."""
    cache = tmp_path / "numba"
    copies = {}
    for name in ("same", "changed"):
        copies[name] = tmp_path / name
        shutil.copytree(PACKAGE, copies[name] / "lqz", ignore=shutil.ignore_patterns("__pycache__"))
    detmath = copies["changed"] / "lqz" / "entropy" / "detmath.py"
    detmath.write_bytes(detmath.read_bytes() + b"\n")

    same, changed = probe(copies["same"], cache), probe(copies["changed"], cache)
    assert Path(same["package"]).is_relative_to(copies["same"])  # the copies ran, not lqz
    assert Path(changed["package"]).is_relative_to(copies["changed"])
    assert same["cache_dir"] == str((cache / jit.source_key()).resolve())
    assert changed["cache_dir"] == str((cache / sha256_key(copies["changed"] / "lqz")).resolve())
    assert changed["cache_dir"] != same["cache_dir"]


def test_numba_cache_dir_is_a_base_and_an_unwritable_one_is_not_used(tmp_path: Path) -> None:
    base = tmp_path / "base"
    assert probe(None, base)["cache_dir"] == str((base / jit.source_key()).resolve())
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")  # nothing can be created under it
    result = probe(None, blocked)
    assert not Path(result["cache_dir"]).is_relative_to(blocked)
    assert Path(result["cache_dir"]).name == jit.source_key()


def _decorated_kernels(tree: ast.Module) -> bool:
    """Whether the module defines numba kernels or intrinsics."""
    names = {"kernel", "njit", "jit", "intrinsic", "vectorize", "guvectorize"}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                name = (
                    target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                )
                if name in names:
                    return True
    return False


def _lqz_imports(path: Path, tree: ast.Module) -> set[str]:
    """The lqz modules (paths relative to the package) that ``path`` imports from."""
    found = set()
    here = path.parent.relative_to(PACKAGE).parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = list(here[: len(here) - node.level + 1]) + (node.module or "").split(".")
            target = PACKAGE.joinpath(*[p for p in parts if p])
            if target.with_suffix(".py").exists():
                found.add(target.with_suffix(".py").relative_to(PACKAGE).as_posix())
            elif (target / "__init__.py").exists() and node.module:
                found.add((target / "__init__.py").relative_to(PACKAGE).as_posix())
    return found


def test_kernel_sources_list_every_kernel_module_and_what_it_imports() -> None:
    trees = {
        p.relative_to(PACKAGE).as_posix(): (p, ast.parse(p.read_text()))
        for p in PACKAGE.rglob("*.py")
    }
    needed = {name for name, (_, tree) in trees.items() if _decorated_kernels(tree)}
    todo = list(needed)
    while todo:
        path, tree = trees[todo.pop()]
        for imported in _lqz_imports(path, tree) - needed:
            needed.add(imported)
            todo.append(imported)
    assert "entropy/kernels.py" in needed and "leech/shell.py" in needed
    assert needed <= set(jit.KERNEL_SOURCES), sorted(needed - set(jit.KERNEL_SOURCES))
    direct = [n for n, (_, t) in trees.items() if n != "jit.py" and "numba.njit" in ast.unparse(t)]
    assert not direct, f"compile kernels through lqz.jit.kernel: {direct}"


@pytest.mark.parametrize("options", [{}, {"parallel": True}])
def test_kernel_compiles_like_njit(options: dict) -> None:
    import numpy as np

    @jit.kernel(**options)
    def total(x):
        s = 0.0
        for v in x:
            s += v
        return s

    assert total(np.arange(5.0)) == 10.0
    assert total.targetoptions["nogil"] is True
    assert Path(total._cache._cache_path).parent == jit.cache_dir()
