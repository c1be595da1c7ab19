"""Decode time of hostile .lqz files: the worst time per payload byte and per file.

    python benchmarks/bench_hostile.py [--threads N] [--repeat N]

The files are those of ``tests/test_hostile.py``: one tile of the largest size the format
admits, at every level of every shipped model, with an empty, truncated or random payload and
valid CRCs. Each must fail with an LqzError; the issue's bar is at most 2 s per file on 2 idle
cores. Prints one row per file (best of ``--repeat``) and the worst figures. Not a test; run it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

import lqz

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_hostile import hostile_files  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    files = list(hostile_files())
    with contextlib.suppress(lqz.LqzError):  # model loads and compiling are not the files'
        lqz.decode(files[0][1])
    worst_file = worst_byte = (0.0, "")
    print(f"{'file':<44} {'bytes':>6} {'payload':>7} {'seconds':>8}  error")
    for name, data in files:
        best, error = float("inf"), "decoded (a hostile file must not decode)"
        for _ in range(args.repeat):
            start = time.perf_counter()
            try:
                lqz.decode(data)
            except lqz.LqzError as exc:
                error = type(exc).__name__
            best = min(best, time.perf_counter() - start)
        payload = len(data) - lqz.format.header_size(lqz.format.read_header(data))
        print(f"{name:<44} {len(data):>6} {payload:>7} {best:>8.3f}  {error}")
        worst_file = max(worst_file, (best, name))
        worst_byte = max(worst_byte, (best / len(data), name))
    print(f"worst per file: {worst_file[0]:.3f} s ({worst_file[1]})")
    print(f"worst per byte: {1e3 * worst_byte[0]:.3f} ms/byte ({worst_byte[1]})")


if __name__ == "__main__":
    main()
