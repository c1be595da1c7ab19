"""Held-out figures of a model: PSNR and bpp per quality level, for validation and the ladder."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..nn.model import LqzModel
from ..nn.refine import refine_indices
from ..objectives import BITS_PER_TOKEN, group_bits, psnr
from .quantizer import decode, latent_of


@torch.no_grad()
def measure_levels(
    model: LqzModel,
    crops: torch.Tensor,
    levels: Sequence[int],
    effort: int = 0,
    batch: int = 4,
    with_prior: bool = True,
) -> list[tuple[float, float]]:
    """(bpp under the prior, mean PSNR) of ``crops`` coded with each count of ``levels`` groups
    after ``effort`` refinement steps, as ``lqz.encode`` codes them (bpp is NaN without the
    prior). ``crops`` may live on any device; the model must be on the one they are moved to."""
    device = next(model.parameters()).device
    tokenizer = model.tokenizer
    bits = torch.zeros(len(levels), dtype=torch.float64)
    scores: list[list[torch.Tensor]] = [[] for _ in levels]
    for start in range(0, len(crops), batch):
        x = crops[start : start + batch].to(device)
        plain = tokenizer.encode(x, max(levels)) if effort == 0 else None
        lengths = None
        if plain is not None and with_prior:  # one code length per group serves every level
            lengths = group_bits(model.prior, latent_of(tokenizer, plain), plain, max(levels))
        for i, groups in enumerate(levels):
            if plain is not None:
                indices = plain[:, :groups]
            else:
                indices = refine_indices(tokenizer, x, groups, effort)
            scores[i].append(psnr(decode(tokenizer, indices), x).cpu())
            if with_prior:
                if lengths is None:
                    codewords = latent_of(tokenizer, indices)
                    bits[i] += group_bits(model.prior, codewords, indices, groups).sum()
                else:
                    bits[i] += lengths[:, :groups].sum()
    pixels = len(crops) * crops.shape[-2] * crops.shape[-1]
    return [
        ((bits[i] / pixels).item() if with_prior else float("nan"), torch.cat(s).mean().item())
        for i, s in enumerate(scores)
    ]


def validate(model: LqzModel, crops: torch.Tensor, with_prior: bool) -> dict[str, float]:
    """PSNR and bpp on the fixed validation crops at every quality level of the model's config.

    ``raw_bpp`` is the token rate without a prior (log2 196,560 bits per token); ``bpp`` the
    ideal code length under the prior. Plain tokens, no encoder refinement.
    """
    was_training = model.training
    model.eval()
    config = model.config
    figures = measure_levels(model, crops, config.levels, with_prior=with_prior)
    out: dict[str, float] = {}
    for level, (groups, (bpp, quality)) in enumerate(
        zip(config.levels, figures, strict=True), start=1
    ):
        out[f"psnr_q{level}"] = quality
        out[f"raw_bpp_q{level}"] = groups * BITS_PER_TOKEN / config.stride**2
        if with_prior:
            out[f"bpp_q{level}"] = bpp
    model.train(was_training)
    return out
