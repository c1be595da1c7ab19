"""The codec runs on its declared dependencies alone: with every other installed package hidden
(the extras', the test tools'), encoding, decoding, the Pillow plugin and the CLI still work."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from lqz.qualities import ladder_path

ROOT = Path(__file__).resolve().parents[1]
#: Distributions of the extras that a codec user must never need (a readable first check).
NEVER = ("compressai", "torch_geometric", "torchvision", "matplotlib", "pandas", "scipy")

#: Encoding, decoding, the Pillow plugin and the CLI in one process, with the top-level modules
#: named in argv[1] (JSON) unimportable; prints the modules imported.
SCRIPT = """
import importlib.abc, importlib.machinery, json, sys, tempfile
from pathlib import Path
hidden = set(json.loads(sys.argv[1]))
class Hide(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # a spec without origin (what importlib.util.find_spec probes see), failing to load
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in hidden:
            return importlib.machinery.ModuleSpec(name, self)
        return None
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden)", name=spec.name)
    def exec_module(self, module):
        raise AssertionError("unreachable")
sys.meta_path.insert(0, Hide())
baseline = set(sys.modules)
import numpy as np
import lqz
from PIL import Image
rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
data = lqz.encode(pixels, quality=lqz.QUALITIES[0], effort=1)
assert lqz.decode(data).size == (40, 32)
lqz.register_pillow()
folder = Path(tempfile.mkdtemp())
Image.fromarray(pixels).convert("LA").save(folder / "a.lqz", bpp=1.0, effort=0)
with Image.open(folder / "a.lqz") as im:
    im.load()
from lqz.cli.main import cli
for args in (["info", str(folder / "a.lqz")], ["decode", str(folder / "a.lqz"), "--quiet"]):
    cli.main(args=args, standalone_mode=False)
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - baseline})))
"""


def _name(requirement: str) -> str:
    """The normalized distribution name a requirement string starts with."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _core_requirements() -> list[str]:
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def _closure(names: list[str]) -> set[str]:
    """Installed distributions the named ones need, transitively (extras' requirements left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r.replace("extra==", "extra ==")]
    return seen


def test_codec_needs_only_core_dependencies(tmp_path: Path) -> None:
    if not ladder_path().exists():
        pytest.skip("no shipped models")
    allowed = _closure([_name(r) for r in _core_requirements()]) | {"lqz"}
    owners = metadata.packages_distributions()
    hidden = sorted(
        module
        for module, dists in owners.items()
        if module not in sys.stdlib_module_names and not {_name(d) for d in dists} & allowed
    )
    for dist in NEVER:  # the check hides what it must, where it is installed
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            continue
        assert dist in hidden, dist
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(hidden)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    imported = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert not imported & set(hidden)
    assert {"torch", "numba", "constriction", "PIL", "click"} <= imported  # it did real work
