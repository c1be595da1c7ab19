"""Held-out rate-distortion of spatially adaptive depth against one depth per image.

For a model and held-out images (the last ``--holdout`` of ``--data``, centre crops of
512 x 768, Kodak's size): the uniform curve (every position coded with one level's groups) and
the adaptive one, where each latent position keeps the level the encoder picks at ``lam``
(:func:`lqz.tiles.tile_depths`: its block's squared error in the uniform reconstruction at that
level plus ``lam`` times its tokens' bits). The adaptive figures are then measured for real: the
image synthesized from the mixed map, the tokens' bits under the prior reading only the coded
tokens (as a decoder would), plus the depth map's code length (:mod:`lqz.entropy.depthmap`).
Prints both curves, the block-predicted PSNR beside the real one, and the BD-rate of adaptive
against uniform.

    python -m lqz.train.adaptive --weights models/lqz-mse.safetensors --data ../shared/train_images
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import tiles
from ..entropy import depthmap
from ..nn.model import LqzModel
from .data import list_images, load_rgb

#: held-out crop (height, width): Kodak's landscape size
CROP = (512, 768)
#: default trade-offs, squared error (pixels in [0, 1]) per bit
LAMBDAS = (0.02, 0.008, 0.003, 0.0012, 0.0005, 0.0002)


@dataclass
class Point:
    bpp: float = 0.0
    psnr: float = 0.0
    predicted_psnr: float = 0.0
    depth_bpp: float = 0.0

    def add(self, other: Point, n: int) -> None:
        for f in ("bpp", "psnr", "predicted_psnr", "depth_bpp"):
            setattr(self, f, getattr(self, f) + getattr(other, f) / n)


def psnr_of(squared_error: float, values: int) -> float:
    return -10 * math.log10(squared_error / values)


@torch.no_grad()
def measure_image(
    model: LqzModel, pixels: np.ndarray, lambdas: tuple[float, ...]
) -> tuple[list[Point], list[Point]]:
    """(uniform points per level, adaptive points per lambda) of one uint8 (H, W, 3) image,
    plain tokens (effort 0), coded as :mod:`lqz.tiles` codes one tile."""
    levels = tuple(model.config.levels)
    k = levels[-1]
    indices = tiles.tile_indices(model, pixels, k)
    h, w = indices.shape[1:]
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
    size, values = pixels.shape[0] * pixels.shape[1], pixels.size
    errors, costs = tiles.depth_costs(model, pixels, indices, levels)
    uniform = []
    for c, groups in enumerate(levels):
        bits = tiles.token_bits(model, indices[:groups], exact=False).sum()
        se = float(errors[c].sum())
        uniform.append(Point(float(bits) / size, psnr_of(se, values), psnr_of(se, values)))
    adaptive = []
    for lam in lambdas:
        depth = tiles.choose_depths(errors, costs, levels, lam)
        choice = (depth[None] == torch.tensor(levels)[:, None, None]).int().argmax(0)
        predicted = float(errors.gather(0, choice[None]).sum())
        latent = tiles.masked_latent(model, indices, depth)
        shown = model.tokenizer.synthesize(latent).clamp(0, 1)[
            ..., : pixels.shape[0], : pixels.shape[1]
        ]
        se = float(((shown - x) ** 2).double().sum())
        coded = torch.arange(k)[:, None, None] < depth[None]
        bits = float(tiles.token_bits(model, indices, depth, exact=False)[coded].sum())
        map_bits = depthmap.code_length(choice.numpy(), len(levels))
        adaptive.append(
            Point(
                (bits + map_bits) / size,
                psnr_of(se, values),
                psnr_of(predicted, values),
                map_bits / size,
            )
        )
    return uniform, adaptive


def heldout_images(data: Path, holdout: int, count: int) -> list[np.ndarray]:
    """Centre crops (:data:`CROP`, portrait images turned) of the first ``count`` of the last
    ``holdout`` images of ``data``."""
    out = []
    for path in list_images(data)[-holdout:][:count]:
        image = load_rgb(path)
        if image.shape[0] > image.shape[1]:
            image = image.transpose(1, 0, 2)
        (h, w), (ch, cw) = image.shape[:2], CROP
        if h < ch or w < cw:
            continue
        y, x = (h - ch) // 2, (w - cw) // 2
        out.append(np.ascontiguousarray(image[y : y + ch, x : x + cw]))
    return out


def main(argv: list[str] | None = None) -> None:
    from ..nn.weights import load_model

    parser = argparse.ArgumentParser(prog="python -m lqz.train.adaptive", description=__doc__)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--holdout", type=int, default=8)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--lambdas", default=",".join(map(str, LAMBDAS)))
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    model = load_model(args.weights)
    lambdas = tuple(float(v) for v in args.lambdas.split(","))
    images = heldout_images(args.data, args.holdout, args.images)
    n = len(images)
    uniform = [Point() for _ in model.config.levels]
    adaptive = [Point() for _ in lambdas]
    for x in images:
        u, a = measure_image(model, x, lambdas)
        for total, p in zip(uniform + adaptive, u + a, strict=True):
            total.add(p, n)
    print(f"{args.weights}: {n} held-out crops {CROP[0]}x{CROP[1]}")
    for groups, p in zip(model.config.levels, uniform, strict=True):
        print(f"  uniform  {groups:2d} groups   bpp {p.bpp:.4f}  psnr {p.psnr:.3f}")
    for lam, p in zip(lambdas, adaptive, strict=True):
        print(
            f"  adaptive lam {lam:<8g} bpp {p.bpp:.4f}  psnr {p.psnr:.3f}  "
            f"(blocks predicted {p.predicted_psnr:.3f}; depth map {p.depth_bpp:.4f} bpp)"
        )
    try:
        from kodak_eval.bdrate import bd_rate
    except ImportError:
        return
    delta = bd_rate(
        ([p.bpp for p in uniform], [p.psnr for p in uniform]),
        ([p.bpp for p in adaptive], [p.psnr for p in adaptive]),
    )
    print(f"  BD-rate adaptive vs uniform: {delta:+.1f} %" if delta is not None else "  no overlap")


if __name__ == "__main__":
    main()
