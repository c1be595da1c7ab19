"""Files per second of ``lqz encode`` and ``lqz decode`` batches with ``-j 1`` and ``-j N``.

    python benchmarks/bench_batch.py [--folder DIR] [--jobs N] [--effort E] [--limit K]

Codes every image of ``--folder`` (default: the 24 Kodak images, ``../shared/kodak``) as one
batch, ``lqz encode DIR -o OUT -j 1`` and then ``-j N`` (default 2), each as a new process
(start-up, imports and model loads included, as a user sees it), then decodes the ``-j 1``
outputs the same two ways. Checks that ``-j N`` wrote the same bytes as ``-j 1`` and prints
wall time and files/s per run. Uses ``$LQZ_WEIGHTS`` or the shipped models. Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: ``../shared/kodak`` next to the repository, or the project's shared folder (worktrees).
KODAK = [Path(__file__).resolve().parents[2] / "shared" / "kodak", Path("/work/shared/kodak")]
DEFAULT_FOLDER = next((path for path in KODAK if path.is_dir()), KODAK[0])


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def batch(command: str, source: Path, out: Path, jobs: int, extra: list[str]) -> float:
    """Seconds of one ``lqz COMMAND SOURCE -o OUT -j JOBS`` process."""
    args = [sys.executable, "-m", "lqz", command, str(source), "-o", f"{out}/", "-j", str(jobs)]
    start = time.perf_counter()
    done = subprocess.run([*args, "--quiet", *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="images to code")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel runs")
    parser.add_argument("--effort", type=int, default=None, help="encoder effort (-e)")
    parser.add_argument("--limit", type=int, default=None, help="code only the first K images")
    args = parser.parse_args()
    folder = args.folder.resolve()
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")[: args.limit]
    if not images:
        sys.exit(f"{folder}: no .png images")
    extra = [] if args.effort is None else ["-e", str(args.effort)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{len(images)} images from {folder}, {cores} cores, -j 1 vs -j {args.jobs}")
    with tempfile.TemporaryDirectory(prefix="lqz-bench-batch-") as scratch:
        root = Path(scratch)
        source = root / "images"
        source.mkdir()
        for image in images:
            shutil.copy(image, source / image.name)
        for command, inputs, options in (
            ("encode", source, extra),
            ("decode", root / "encode-j1", []),
        ):
            outputs = {}
            for jobs in (1, args.jobs):
                out = root / f"{command}-j{jobs}"
                seconds = batch(command, inputs, out, jobs, options)
                outputs[jobs] = contents(out)
                rate = len(images) / seconds
                print(f"{command} -j {jobs}: {seconds:7.2f} s, {rate:6.3f} files/s")
            same = outputs[1] == outputs[args.jobs]
            print(f"{command}: -j {args.jobs} outputs identical to -j 1: {same}")
            if not same:
                sys.exit(1)


if __name__ == "__main__":
    main()
