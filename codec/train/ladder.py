"""Choose the quality ladder from held-out data: ``python -m lqz.train.ladder``.

Every level of every given model is measured on the trainer's held-out crops (PSNR, and bpp as
the ideal code length under the model's prior); the ladder keeps the points on the upper
concave hull of PSNR over bpp (no other point, nor any mix of two, is better at that rate),
ascending. Kodak is never used here.

``python -m lqz.train.ladder --data ../shared/train_images --out models/ladder.json
models/lqz-mse-s16.safetensors models/lqz-mse.safetensors``
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..nn.weights import load_model
from .data import held_out_crops, list_images, load_rgb
from .loop import TrainOptions, validate


@dataclass(frozen=True)
class Point:
    """One level of one model on the held-out crops."""

    weights: Path
    level: int
    bpp: float
    psnr: float


def upper_hull(points: list[Point]) -> list[Point]:
    """Points on the upper concave hull of PSNR over bpp, ascending in both (Andrew's monotone
    chain); among points of equal bpp only the best can be on it."""
    hull: list[Point] = []
    for p in sorted(points, key=lambda p: (p.bpp, -p.psnr)):
        if hull and p.bpp == hull[-1].bpp:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b is under (or on) the chord from a to p: drop it
            if (b.psnr - a.psnr) * (p.bpp - a.bpp) <= (p.psnr - a.psnr) * (b.bpp - a.bpp):
                hull.pop()
            else:
                break
        hull.append(p)
    # the hull's rising part: past the best PSNR, more bits buy nothing
    best = max(range(len(hull)), key=lambda i: hull[i].psnr)
    return hull[: best + 1]


def measure(weights: Path, crops: torch.Tensor) -> list[Point]:
    """Every level of the model in ``weights`` on ``crops``."""
    model = load_model(weights)
    metrics = validate(model, crops, torch.device("cpu"), with_prior=True)
    return [
        Point(weights, level, metrics[f"bpp_q{level}"], metrics[f"psnr_q{level}"])
        for level in range(1, len(model.config.levels) + 1)
    ]


def write_ladder(points: list[Point], out: Path) -> None:
    """``points`` (ascending) as a ladder file next to the weights it names."""
    spec = {
        "about": "lqz qualities 1..n, ascending: each is one level of one shipped model, chosen "
        "by python -m lqz.train.ladder on held-out crops (see MODEL_CARD.md)",
        "qualities": [
            {
                "weights": str(p.weights.resolve().relative_to(out.parent.resolve())),
                "level": p.level,
                "heldout_bpp": round(p.bpp, 4),
                "heldout_psnr": round(p.psnr, 3),
            }
            for p in points
        ],
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lqz.train.ladder", description=__doc__)
    parser.add_argument("weights", type=Path, nargs="+", help="models (safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="the training images folder")
    parser.add_argument("--holdout", type=int, default=TrainOptions.holdout)
    parser.add_argument("--out", type=Path, required=True, help="ladder file to write")
    args = parser.parse_args(argv)
    paths = list_images(args.data)
    if len(paths) <= args.holdout:
        parser.error(f"need more than {args.holdout} images in {args.data}")
    crops = held_out_crops([load_rgb(p) for p in paths[-args.holdout :]])
    points = [p for w in args.weights for p in measure(w, crops)]
    chosen = upper_hull(points)
    for p in sorted(points, key=lambda p: p.bpp):
        mark = "*" if p in chosen else " "
        print(f"{mark} {p.weights.name} level {p.level}: {p.bpp:.4f} bpp {p.psnr:.3f} dB")
    write_ladder(chosen, args.out)
    print(f"{len(chosen)} qualities -> {args.out}")


if __name__ == "__main__":
    main()
