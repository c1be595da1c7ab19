"""Library encode/decode time, rate and PSNR of one image at every quality level.

    python benchmarks/bench_levels.py [--image PATH] [--threads N] [--repeat N] [--effort STEPS]

Uses ``$LQZ_WEIGHTS`` or the shipped model. Times are ``lqz.encode`` / ``lqz.decode`` calls with
the model already loaded and the compiled kernels warm (best of ``--repeat``). Prints a table;
not a test. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import lqz

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / ".." / "shared" / "kodak" / "kodim23.png"


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--effort", type=int, default=None, help="encoder refinement steps")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    image = Image.open(args.image).convert("RGB")
    pixels = np.asarray(image).astype(np.float64)
    lqz.decode(lqz.encode(image, lqz.QUALITIES[0]))  # load the model, compile the kernels

    from lqz.effort import DEFAULT_EFFORT

    effort = DEFAULT_EFFORT if args.effort is None else args.effort
    print(
        f"{args.image.name} {image.width}x{image.height}, torch threads {args.threads}, "
        f"effort {effort}"
    )
    print(f"{'level':>5} {'bytes':>8} {'bpp':>7} {'PSNR dB':>8} {'encode s':>9} {'decode s':>9}")
    for level in lqz.QUALITIES:
        enc_s, data = best_time(lambda q=level: lqz.encode(image, q, effort=effort), args.repeat)
        dec_s, decoded = best_time(lambda d=data: lqz.decode(d), args.repeat)
        mse = np.mean((np.asarray(decoded.convert("RGB")).astype(np.float64) - pixels) ** 2)
        bpp = 8 * len(data) / (image.width * image.height)
        psnr = 10 * np.log10(255**2 / mse)
        print(f"{level:>5} {len(data):>8} {bpp:>7.4f} {psnr:>8.2f} {enc_s:>9.2f} {dec_s:>9.2f}")


if __name__ == "__main__":
    main()
