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
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import tiles
from ..entropy import depthmap
from ..nn.model import LqzModel
from .data import list_images, load_rgb
from .ladder import write_spec

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


@dataclass
class ImageCosts:
    """One held-out image, its tokens at the model's top level and its depth costs."""

    pixels: np.ndarray  # uint8 (H, W, 3)
    indices: torch.Tensor  # (k, h, w)
    errors: torch.Tensor  # (L, h, w): :func:`lqz.tiles.depth_costs` over the model's levels
    bits: torch.Tensor  # (L, h, w)
    refined: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict
    )  # (groups, effort) -> tokens refined for one depth, their depth costs

    def refined_costs(
        self, model: LqzModel, groups: int, effort: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(indices, errors, bits) of the tokens refined with ``effort`` steps for ``groups``
        everywhere, the costs over the levels up to it (computed once)."""
        key = (groups, effort)
        if key not in self.refined:
            levels = tuple(g for g in model.config.levels if g <= groups)
            indices = tiles.tile_indices(model, self.pixels, groups, effort)
            self.refined[key] = (indices, *tiles.depth_costs(model, self.pixels, indices, levels))
        return self.refined[key]


@torch.no_grad()
def image_costs(model: LqzModel, pixels: np.ndarray) -> ImageCosts:
    """Plain tokens (effort 0) and depth costs of one image, as :mod:`lqz.tiles` codes a tile."""
    levels = tuple(model.config.levels)
    indices = tiles.tile_indices(model, pixels, levels[-1])
    errors, bits = tiles.depth_costs(model, pixels, indices, levels)
    return ImageCosts(pixels, indices, errors, bits)


def uniform_points(model: LqzModel, costs: ImageCosts, effort: int = 0) -> list[Point]:
    """One point per level: every position at that level's groups (tokens refined for it with
    ``effort`` steps, as the encoder codes one depth everywhere)."""
    pixels = costs.pixels
    size, values = pixels.shape[0] * pixels.shape[1], pixels.size
    out = []
    for c, groups in enumerate(model.config.levels):
        if effort:
            _, errors, bits = costs.refined_costs(model, groups, effort)
            bits, se = bits[-1].sum(), float(errors[-1].sum())
        else:
            # group g's prior reads groups below g only: the bits of the first n groups with all
            # groups decoded are their bits when only they are
            bits = costs.bits[c].sum()
            se = float(costs.errors[c].sum())
        out.append(Point(float(bits) / size, psnr_of(se, values), psnr_of(se, values)))
    return out


def squared_error(
    model: LqzModel, pixels: np.ndarray, indices: torch.Tensor, depth: torch.Tensor | None
) -> float:
    """Squared error (pixels in [0, 1]) of the image a decoder of ``indices`` and ``depth``
    shows."""
    shown = model.tokenizer.synthesize(tiles.masked_latent(model, indices, depth)).clamp(0, 1)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
    return float(
        ((shown[..., : pixels.shape[0], : pixels.shape[1]] - x) ** 2).sum(1).double().sum()
    )


@torch.no_grad()
def adaptive_point(
    model: LqzModel,
    costs: ImageCosts,
    level: int,
    lam: float,
    effort: int = 0,
    map_from: str = "plain",
) -> Point:
    """The real figures of adaptive depth capped at ``level`` (1-based) at trade-off ``lam``:
    the image synthesized from the map, the kept tokens' bits under the prior reading what a
    decoder holds, the map's code length. ``map_from`` "plain": the map chosen from the plain
    tokens, the tokens then refined for it with ``effort`` steps; "refined": the tokens refined
    with ``effort`` steps for the level everywhere, the map chosen from their costs, no
    refinement after."""
    levels = tuple(model.config.levels)[:level]
    pixels, k = costs.pixels, levels[-1]
    size, values = pixels.shape[0] * pixels.shape[1], pixels.size
    refined = effort and map_from == "refined"
    if refined:
        indices, errors, bits = costs.refined_costs(model, k, effort)
    else:
        indices, errors, bits = costs.indices[:k], costs.errors[:level], costs.bits[:level]
    depth = tiles.choose_depths(errors, bits, levels, lam)
    choice = torch.from_numpy(tiles.choice_indices(depth, levels))
    predicted = float(errors.gather(0, choice[None]).sum())
    if effort and not refined:
        indices = tiles.tile_indices(model, pixels, k, effort, depth)
    se = squared_error(model, pixels, indices, depth)
    coded = torch.arange(k)[:, None, None] < depth[None]
    token_bits = float(tiles.token_bits(model, indices, depth, exact=False)[coded].sum())
    map_bits = depthmap.code_length(tiles.block_map(choice).numpy(), len(levels))
    return Point(
        (token_bits + map_bits) / size, psnr_of(se, values), psnr_of(predicted, values),
        map_bits / size,
    )  # fmt: skip


def measure_image(
    model: LqzModel, pixels: np.ndarray, lambdas: tuple[float, ...]
) -> tuple[list[Point], list[Point]]:
    """(uniform points per level, adaptive points per lambda at the top level) of one image."""
    costs = image_costs(model, pixels)
    top = len(model.config.levels)
    return uniform_points(model, costs), [adaptive_point(model, costs, top, v) for v in lambdas]


def slope_lambdas(uniform: list[Point]) -> list[float]:
    """Per level from the second: the uniform curve's slope into it, squared error per bit
    (3 * the drop in mean squared error over the rise in bpp): the trade-off of that rung."""
    mse = [10 ** (-p.psnr / 10) for p in uniform]
    return [
        3 * (mse[i - 1] - mse[i]) / max(uniform[i].bpp - uniform[i - 1].bpp, 1e-9)
        for i in range(1, len(uniform))
    ]


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
    parser.add_argument("--effort", type=int, default=0, help="encoder refinement steps")
    parser.add_argument(
        "--map-from",
        choices=("plain", "refined"),
        default="plain",
        help="choose the depth map from the plain tokens (then refine for it) or from tokens "
        "refined for one depth (no refinement after)",
    )
    parser.add_argument(
        "--ladder",
        type=Path,
        default=None,
        help="a quality ladder (JSON) to update: its adaptive rungs of this model get the "
        "measured lambdas and held-out figures (see update_ladder)",
    )
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    model = load_model(args.weights)
    lambdas = tuple(float(v) for v in args.lambdas.split(","))
    costs = [
        image_costs(model, pixels)
        for pixels in heldout_images(args.data, args.holdout, args.images)
    ]
    n, levels = len(costs), model.config.levels
    effort = args.effort
    uniform = average([uniform_points(model, c, effort) for c in costs])
    top = len(levels)
    sweep = average(
        [[adaptive_point(model, c, top, v, effort, args.map_from) for v in lambdas] for c in costs]
    )
    rung_lambdas = slope_lambdas(uniform)
    rungs = average(
        [
            [
                adaptive_point(model, c, level, lam, effort, args.map_from)
                for level, lam in enumerate(rung_lambdas, 2)
            ]
            for c in costs
        ]
    )
    print(
        f"{args.weights}: {n} held-out crops {CROP[0]}x{CROP[1]}, effort {effort}, "
        f"map from {args.map_from} tokens"
    )
    for groups, p in zip(levels, uniform, strict=True):
        print(f"  uniform  {groups:2d} groups          bpp {p.bpp:.4f}  psnr {p.psnr:.3f}")
    for lam, p in zip(lambdas, sweep, strict=True):
        print(f"  adaptive <= {levels[-1]} lam {lam:<8g} {describe(p)}")
    for level, lam, p in zip(range(2, top + 1), rung_lambdas, rungs, strict=True):
        print(f"  rung     <= {levels[level - 1]} lam {lam:<8.3g} {describe(p)}")
    if args.ladder is not None:
        changed = update_ladder(args.ladder, args.weights, rung_lambdas, rungs)
        print(f"  {args.ladder}: lambdas of levels {changed or 'none'} updated")
    try:
        from kodak_eval.bdrate import bd_rate
    except ImportError:
        return
    curve = ([p.bpp for p in uniform], [p.psnr for p in uniform])
    for name, points in (("lambda sweep", sweep), ("rungs", [uniform[0], *rungs])):
        delta = bd_rate(curve, ([p.bpp for p in points], [p.psnr for p in points]))
        print(
            f"  BD-rate, {name} vs uniform: "
            + ("no overlap" if delta is None else f"{delta:+.1f} %")
        )


def update_ladder(
    ladder: Path, weights: Path, lambdas: list[float], rungs: list[Point]
) -> list[int]:
    """Give every rung of ``ladder`` that codes ``weights`` with adaptive depth (it has a
    ``"lambda"``) level L's slope ``lambdas[L - 2]`` (3 significant digits) and its measured
    held-out bpp and PSNR; which rungs are adaptive stays the ladder's choice. Written
    atomically; returns the levels changed."""
    spec = json.loads(ladder.read_text())
    changed = []
    for rung in spec["qualities"]:
        level = rung["level"]
        same = (ladder.parent / rung["weights"]).resolve() == weights.resolve()
        if not same or "lambda" not in rung or level < 2:
            continue
        point = rungs[level - 2]
        rung["lambda"] = float(f"{lambdas[level - 2]:.3g}")
        rung["heldout_bpp"], rung["heldout_psnr"] = round(point.bpp, 4), round(point.psnr, 3)
        changed.append(level)
    write_spec(ladder, spec)
    return changed


def average(per_image: list[list[Point]]) -> list[Point]:
    """The mean point per column of per-image point lists."""
    out = [Point() for _ in per_image[0]]
    for points in per_image:
        for total, p in zip(out, points, strict=True):
            total.add(p, len(per_image))
    return out


def describe(p: Point) -> str:
    return (
        f"bpp {p.bpp:.4f}  psnr {p.psnr:.3f}  (blocks predicted {p.predicted_psnr:.3f}; "
        f"depth map {p.depth_bpp:.4f} bpp)"
    )


if __name__ == "__main__":
    main()
