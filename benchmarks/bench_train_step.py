"""Training step on the CPU: the GPU code path against the previous CPU path, in one run.

    python benchmarks/bench_train_step.py [--weights W] [--batch 16] [--crop 128] [--steps 6]
                                          [--threads 2] [--data ../shared/train_images]

Same model (the shipped one by default), same batch size and crop, same step code
(:class:`lqz.train.loop.TrainStep`); the two paths differ in where crops and the search run:

- ``cpu-path``: crops cut from numpy images on the host (:class:`CropSampler`) and the search
  through :class:`lqz.leech.LeechQuantizer` (numba search, CPU codebook lookups);
- ``gpu-path``: crops drawn from a uint8 tensor on the device (:class:`DeviceCrops`) and
  :class:`lqz.train.quantizer.DeviceQuantizer` (on the CPU: the same numba search, the
  codebook lookup on the latent's device), with the per-part timers.

Steps alternate between the paths, and which path goes first alternates too (two warm-up steps
each first), so machine load and cache state hit both alike. Prints s/step (median) and
images/s per path and the step's time shares of the GPU path. Not a test; run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lqz.leech import LeechQuantizer
from lqz.nn.weights import read_weights
from lqz.qualities import DEFAULT_WEIGHTS
from lqz.train.data import CropSampler, DeviceCrops, list_images, load_rgb
from lqz.train.loop import Session, Timers, TrainStep

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "train_images"


def images(folder: Path, crop: int, count: int) -> list[np.ndarray]:
    """Up to ``count`` training images of at least ``crop`` pixels a side (random noise when
    the folder is missing)."""
    if folder.is_dir():
        found = [load_rgb(p) for p in list_images(folder)[:count]]
        found = [im for im in found if min(im.shape[:2]) >= crop]
        if found:
            return found
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (crop * 2, crop * 2, 3), dtype=np.uint8) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6, help="measured steps per path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    config, state = read_weights(args.weights)
    pictures = images(args.data, args.crop, 32)
    # both paths' crops: one crop-size square of each image, as a pack holds them (the search's
    # cost depends on the content: the paths must see the same pixels)
    squares = torch.from_numpy(np.stack([im[: args.crop, : args.crop] for im in pictures]))
    paths = {}
    for name in ("cpu-path", "gpu-path"):
        torch.manual_seed(0)
        session = Session.new(config, device, 1e-4, 1e-3, 0.998, state)
        timers = Timers(device)
        step = TrainStep(session, device, True, 32, False, None, timers)
        if name == "cpu-path":
            session.model.tokenizer.quantizer = LeechQuantizer()
            sampler = CropSampler(list(squares.numpy()), args.crop)  # the same pixels
            batch = lambda s=sampler: s.batch(args.batch).to(device)  # noqa: E731
        else:
            sampler = DeviceCrops(squares.to(device), args.crop)
            batch = lambda s=sampler: s.batch(args.batch)  # noqa: E731
        paths[name] = (step, batch, timers, [])
    for i in range(args.steps + 2):
        order = list(paths.values())
        for step, batch, timers, times in order if i % 2 else order[::-1]:
            start = time.perf_counter()
            step(batch())
            if i >= 2:
                times.append(time.perf_counter() - start)
            else:
                timers.totals.clear()
    print(f"model {args.weights.name}, batch {args.batch} x {args.crop}^2, {args.threads} threads")
    for name, (_, _, timers, times) in paths.items():
        median = statistics.median(times)
        shares = timers.shares()
        rate = args.batch / median
        line = f"{name}: {median:.3f} s/step (min {min(times):.3f}), {rate:.1f} images/s"
        if name == "gpu-path":  # the previous quantizer has no search timer
            line += (
                f"; search {shares['share_search']:.0%}, pmf {shares['share_pmf']:.0%}, "
                f"transforms {shares['share_transforms']:.0%}"
            )
        print(line)


if __name__ == "__main__":
    main()
