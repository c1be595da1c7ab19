"""Held-out rate-distortion of spatially adaptive depth against one depth per image.

For a model and held-out images (the last ``--holdout`` of ``--data``, centre crops of
512 x 768, Kodak's size): the uniform curve (every position coded with one level's groups) and
the adaptive one, where each latent position keeps the level minimizing ``D + lam * R``:
D the squared error of its stride x stride block in the uniform reconstruction at that level,
R the bits of its tokens under the prior. The adaptive figures are then measured for real: the
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

from ..entropy import depthmap
from ..entropy.shell_pmf import log_prob
from ..nn.model import LqzModel
from ..nn.schedule import coding_steps, pass_mask
from ..nn.tokenizer import group_mask
from .data import list_images, load_rgb

#: held-out crop (height, width): Kodak's landscape size
CROP = (512, 768)
#: default trade-offs, squared error (pixels in [0, 1]) per bit
LAMBDAS = (0.02, 0.008, 0.003, 0.0012, 0.0005, 0.0002)


def masked(model: LqzModel, indices: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Codeword latent (1, 24T, h, w) of ``indices`` (1, k, h, w) keeping ``depth`` (h, w)
    groups per position: what a decoder of the depth map holds."""
    latent = model.tokenizer.latent_of(indices)
    return latent * group_mask(depth[None], model.config.token_groups)


@torch.no_grad()
def token_bits(model: LqzModel, indices: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """-log2 p (k, h, w) of every token under the prior reading the tokens ``depth`` keeps
    (entries of tokens not coded are meaningless)."""
    _, k, h, w = indices.shape
    latent = masked(model, indices, depth)
    out = torch.zeros(k, h, w, dtype=torch.float64)
    for group, pass_ in coding_steps(model.config, k):
        tables, logits = model.prior(latent, group, pass_)
        where = pass_mask(h, w, pass_)
        bits = -log_prob(tables[0], logits[0], indices[0, group]) / math.log(2)
        out[group][where] = bits[where].double()
    return out


def block_errors(a: torch.Tensor, b: torch.Tensor, stride: int) -> torch.Tensor:
    """Squared error (h, w) of each stride x stride block of (1, 3, H, W) images."""
    se = ((a - b) ** 2).sum(1)[0].double()
    h, w = se.shape[0] // stride, se.shape[1] // stride
    return se.view(h, stride, w, stride).sum((1, 3))


def choose_depths(errors: torch.Tensor, bits: torch.Tensor, lam: float) -> torch.Tensor:
    """Index (h, w) of the choice minimizing ``errors + lam * bits`` (both (C, h, w)) per
    position."""
    return (errors + lam * bits).argmin(0)


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
    model: LqzModel, x: torch.Tensor, lambdas: tuple[float, ...]
) -> tuple[list[Point], list[Point]]:
    """(uniform points per level, adaptive points per lambda) of one image (1, 3, H, W)."""
    levels = list(model.config.levels)
    k, s = levels[-1], model.config.stride
    tok = model.tokenizer
    indices = tok.encode(x, k)
    h, w = indices.shape[-2:]
    pixels, values = x.shape[-1] * x.shape[-2], x.numel()
    errors, uniform = [], []
    for groups in levels:
        depth = torch.full((h, w), groups)
        shown = tok.synthesize(masked(model, indices, depth)).clamp(0, 1)
        errors.append(block_errors(shown, x, s))
        bits = token_bits(model, indices, depth)[:groups].sum()
        se = float(errors[-1].sum())
        uniform.append(Point(float(bits) / pixels, psnr_of(se, values), psnr_of(se, values)))
    errors_t = torch.stack(errors)
    full = token_bits(model, indices, torch.full((h, w), k)).cumsum(0)
    cost_bits = full[torch.tensor(levels) - 1]
    adaptive = []
    for lam in lambdas:
        choice = choose_depths(errors_t, cost_bits, lam)
        depth = torch.tensor(levels)[choice]
        shown = tok.synthesize(masked(model, indices, depth)).clamp(0, 1)
        predicted = float(errors_t.gather(0, choice[None]).sum())
        coded = torch.arange(k)[:, None, None] < depth[None]
        bits = float(token_bits(model, indices, depth)[coded].sum())
        map_bits = depthmap.code_length(choice.numpy(), len(levels))
        se = float(block_errors(shown, x, s).sum())
        adaptive.append(
            Point(
                (bits + map_bits) / pixels,
                psnr_of(se, values),
                psnr_of(predicted, values),
                map_bits / pixels,
            )
        )
    return uniform, adaptive


def heldout_images(data: Path, holdout: int, count: int) -> list[torch.Tensor]:
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
        crop = np.ascontiguousarray(image[y : y + ch, x : x + cw])
        out.append(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0)
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
