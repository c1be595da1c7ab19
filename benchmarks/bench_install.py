"""Install cost: wall time, disk and package count of ``pip install`` into fresh venvs.

Each variant gets a new venv (``python -m venv``) and installs the checkout at a git ref:
``default`` is ``pip install SRC``; ``cpu`` installs CPU-only torch first (``--torch-cpu``, by
default from PyTorch's CPU wheel index) and then SRC. Downloads come from pip's cache when it
is warm: run each variant twice and keep the second figure for a like-for-like comparison.

    python benchmarks/bench_install.py                         # HEAD, both variants
    python benchmarks/bench_install.py --ref e9dbc3d --ref HEAD --variant default
    python benchmarks/bench_install.py --torch-cpu /path/to/torch-2.x+cpu-....whl
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_TORCH = "torch --index-url https://download.pytorch.org/whl/cpu"


def disk_bytes(folder: Path) -> int:
    """Bytes allocated under ``folder`` (as ``du`` counts: blocks, hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(parent, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def export(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (a commit of this repository) as plain files under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def install(src: Path, venv: Path, first: str | None) -> tuple[float, int, int]:
    """(wall seconds, venv bytes, installed distributions) of a fresh venv with ``src``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if first:
        subprocess.run([*pip, *shlex.split(first)], check=True)
    subprocess.run([*pip, str(src)], check=True)
    wall = time.perf_counter() - start
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return wall, disk_bytes(venv), len(listed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", action="append", help="git ref to install (default HEAD)")
    parser.add_argument(
        "--variant", action="append", choices=("default", "cpu"), help="default: both"
    )
    parser.add_argument("--torch-cpu", default=CPU_TORCH, help=f"pip args (default {CPU_TORCH!r})")
    args = parser.parse_args()
    print(f"{'ref':<12} {'variant':<8} {'wall s':>8} {'disk MiB':>9} {'packages':>9}")
    with tempfile.TemporaryDirectory(prefix="lqz-install-") as tmp:
        for ref in args.ref or ["HEAD"]:
            tag = ref.replace("/", "_")
            src = export(ref, Path(tmp) / f"src-{tag}")
            for variant in args.variant or ["default", "cpu"]:
                venv = Path(tmp) / f"venv-{tag}-{variant}"
                first = args.torch_cpu if variant == "cpu" else None
                wall, size, count = install(src, venv, first)
                print(f"{ref:<12} {variant:<8} {wall:>8.1f} {size / 2**20:>9,.0f} {count:>9}")
                subprocess.run(["rm", "-rf", str(venv)], check=True)


if __name__ == "__main__":
    main()
