"""Choose the quality ladder from held-out data: ``python -m lqz.train.ladder``.

Every level of every given model is measured on the trainer's held-out crops (PSNR, and bpp as
the ideal code length under the model's prior), encoded as ``lqz.encode`` does (the default
encoder effort unless ``--effort`` says otherwise); the ladder keeps the Pareto-optimal points
(no other point has as few bits and a PSNR as high), at least :data:`MIN_RATE_RATIO` apart in
rate, ascending. Kodak is never used here.

``python -m lqz.train.ladder --data ../shared/train_images --out models/ladder.json
models/lqz-mse-s16.safetensors models/lqz-mse.safetensors``
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..effort import DEFAULT_EFFORT
from ..errors import OutputError, TrainingDataError
from ..nn.model import LqzModel
from ..nn.weights import load_model
from .data import held_out_crops, list_images, load_rgb
from .entry import run_main
from .heldout import measure_levels
from .loop import TrainOptions

#: Rungs closer in rate than this factor are one too many: the lower one goes.
MIN_RATE_RATIO = 1.15
#: ... and so are rungs closer in PSNR than this (dB): on 8 held-out crops a smaller difference
#: is within the noise of the measurement (it has ranked two rungs the other way round from
#: Kodak; see the model card).
MIN_PSNR_STEP = 0.25


@dataclass(frozen=True)
class Point:
    """One level of one model on the held-out crops."""

    weights: Path
    level: int
    bpp: float
    psnr: float


def choose_rungs(
    points: list[Point], min_ratio: float = MIN_RATE_RATIO, min_step: float = MIN_PSNR_STEP
) -> list[Point]:
    """The ladder: the Pareto front of (bpp, PSNR) -- no other point has fewer or as many bits
    and a higher or equal PSNR -- thinned from the top so that each rung has at least
    ``min_ratio`` times the bits and ``min_step`` dB more than the one below (of two close
    points the higher, better one stays). Ascending in both bpp and PSNR."""
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (p.bpp, -p.psnr)):
        if not front or p.psnr > front[-1].psnr:
            if front and p.bpp == front[-1].bpp:
                continue
            front.append(p)
    chosen: list[Point] = []
    for p in reversed(front):
        if not chosen or (
            p.bpp * min_ratio <= chosen[-1].bpp and p.psnr + min_step <= chosen[-1].psnr
        ):
            chosen.append(p)
    return chosen[::-1]


def measure_level(
    model: LqzModel, crops: torch.Tensor, groups: int, effort: int, batch: int = 4
) -> tuple[float, float]:
    """(bpp under the prior, mean PSNR) of ``crops`` coded with ``groups`` groups after
    ``effort`` refinement steps (:func:`lqz.train.heldout.measure_levels`)."""
    return measure_levels(model, crops, [groups], effort, batch)[0]


def measure(weights: Path, crops: torch.Tensor, effort: int = DEFAULT_EFFORT) -> list[Point]:
    """Every level of the model in ``weights`` on ``crops``."""
    model = load_model(weights)
    points = []
    for level in range(1, len(model.config.levels) + 1):
        bpp, quality = measure_level(model, crops, model.config.groups_at(level), effort)
        points.append(Point(weights, level, bpp, quality))
    return points


def write_ladder(points: list[Point], out: Path, effort: int = DEFAULT_EFFORT) -> None:
    """``points`` (ascending) as a ladder file at ``out``, naming each weights file by its path
    relative to ``out``'s folder (how :meth:`lqz.qualities.Ladder.load` finds it)."""
    spec = {
        "about": "lqz qualities 1..n, ascending: each is one level of one shipped model, chosen "
        "by python -m lqz.train.ladder on held-out crops (see MODEL_CARD.md)",
        "effort": effort,
        "qualities": [
            {
                "weights": os.path.relpath(p.weights.resolve(), out.parent.resolve()),
                "level": p.level,
                "heldout_bpp": round(p.bpp, 4),
                "heldout_psnr": round(p.psnr, 3),
            }
            for p in points
        ],
    }
    write_spec(out, spec)


def write_spec(out: Path, spec: dict) -> None:
    """Write a ladder file's JSON ``spec`` to ``out`` atomically (a reader never sees half)."""
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lqz.train.ladder", description=__doc__)
    parser.add_argument("weights", type=Path, nargs="+", help="models (safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="the training images folder")
    parser.add_argument("--holdout", type=int, default=TrainOptions.holdout)
    parser.add_argument("--out", type=Path, required=True, help="ladder file to write")
    parser.add_argument(
        "--effort", type=int, default=DEFAULT_EFFORT, help="encoder refinement steps"
    )
    args = parser.parse_args(argv)
    if not args.out.parent.resolve().is_dir():  # before minutes of measuring, not after
        raise OutputError(f"cannot write {args.out}: no folder {args.out.parent}")
    paths = list_images(args.data)
    if len(paths) <= args.holdout:
        raise TrainingDataError(f"need more than {args.holdout} images in {args.data}")
    crops = held_out_crops([load_rgb(p) for p in paths[-args.holdout :]])
    points = [p for w in args.weights for p in measure(w, crops, args.effort)]
    chosen = choose_rungs(points)
    for p in sorted(points, key=lambda p: p.bpp):
        mark = "*" if p in chosen else " "
        print(f"{mark} {p.weights.name} level {p.level}: {p.bpp:.4f} bpp {p.psnr:.3f} dB")
    write_ladder(chosen, args.out, args.effort)
    print(f"{len(chosen)} qualities -> {args.out}")


if __name__ == "__main__":
    run_main(main, "lqz.train.ladder")
