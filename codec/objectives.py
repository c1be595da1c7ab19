"""The training and measurement objectives: distortion (MSE, PSNR) and rate (bits under the prior).

One home for the figures the trainer optimises and reports (:mod:`lqz.train.loop`), the
held-out measurements (:mod:`lqz.train.heldout`) and the encoder's refinement
(:mod:`lqz.nn.refine`) use; it imports neither the trainer nor the coder.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .leech import SIZE
from .leech.shell import DIM, SQUARED_NORM
from .nn.config import ModelConfig
from .nn.schedule import group_passes, pass_mask

#: Bits of a token without a prior: log2 196,560.
BITS_PER_TOKEN = math.log2(SIZE)


def mse_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every pixel of the batch (the training loss)."""
    return torch.mean((a - b) ** 2)


def image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error (B,) of (B, ...) batches."""
    return torch.mean((a - b) ** 2, dim=tuple(range(1, a.dim())))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image RGB PSNR (dB) of a reconstruction ``a`` (clamped, as shown) of ``b`` in [0, 1]."""
    return -10 * torch.log10(image_mse(a.clamp(0, 1), b).clamp_min(1e-10))


def prior_bits(
    prior: nn.Module,
    codewords: torch.Tensor,
    indices: torch.Tensor,
    groups: torch.Tensor,
    pass_: torch.Tensor | int,
    sample: int | None = None,
    coded: torch.Tensor | None = None,
    rate_grad: bool = False,
) -> torch.Tensor:
    """-log2 p (B, n) of the n tokens of (groups[b], pass_[b]) of each image b.

    ``prior``: the model's :class:`~lqz.nn.prior.Prior` (or a wrapper with its forward, e.g.
    DistributedDataParallel). ``pass_``: one pass for all images, or a (B,) tensor of passes
    (training; then ``sample`` is needed, as the passes differ in size). ``sample``: score only
    this many randomly chosen positions of each image's pass (at most as many as the smallest
    pass has); the exact pmf is the costly part of a training step, the context net is not.
    ``coded`` (B, h, w) bool, with ``sample``: only these positions hold a token (a depth
    map's); an image with fewer than n of them in its pass gets NaN for the rest.
    ``rate_grad``: the bits are also differentiable w.r.t. the scored tokens' own codewords
    (``codewords`` straight-through, see ``coords`` of
    :func:`~lqz.entropy.shell_pmf.log_prob`), not only through the context they form.
    """
    from .entropy.shell_pmf import log_prob

    b, _, h, w = codewords.shape
    tables, logits = prior(codewords, groups, pass_)
    passes = torch.as_tensor(pass_).expand(b).tolist()
    masks = torch.stack([pass_mask(h, w, p, codewords.device).flatten() for p in passes])
    valid = None
    if coded is not None:
        if sample is None:
            raise ValueError("scoring only coded positions needs a sample size")
        valid = masks & coded.flatten(1)
    if sample is None:
        if len(set(passes)) > 1:
            raise ValueError("scoring whole passes of different sizes needs one pass")
        where = masks[0].nonzero()[:, 0].expand(b, -1)
    else:
        n = min(sample, int(masks.sum(1).min()))
        noise = torch.rand(masks.shape, device=masks.device).masked_fill(~masks, -2.0)
        if valid is not None:  # positions without a token come after every coded one
            noise = noise.masked_fill(masks & ~valid, -1.0)
        where = noise.topk(n, dim=1).indices.sort(dim=1).values  # row-major, as coded
    rows = torch.arange(b, device=where.device)[:, None]
    tables, logits = tables.flatten(1, 2)[rows, where], logits.flatten(1, 2)[rows, where]
    target = indices[torch.arange(b, device=indices.device), groups].flatten(1)[rows, where]
    coords = None
    if rate_grad:
        channels = groups[:, None] * DIM + torch.arange(DIM, device=groups.device)  # (B, 24)
        own = codewords.flatten(2)[rows[:, :, None], channels[:, :, None], where[:, None, :]]
        coords = own.movedim(1, -1) * math.sqrt(SQUARED_NORM)  # (B, n, 24)
    bits = -log_prob(tables, logits, target, coords) / math.log(2)
    if valid is None:
        return bits
    return torch.where(valid[rows, where], bits, torch.nan)


@torch.no_grad()
def group_bits(
    prior: nn.Module, codewords: torch.Tensor, indices: torch.Tensor, groups: int
) -> torch.Tensor:
    """Ideal code length in bits (B, groups) of each image's tokens of each of the first
    ``groups`` groups, every pass of the group (what the range coder achieves to ~0.5 %)."""
    b = codewords.shape[0]
    out = torch.zeros(b, groups, dtype=torch.float64)
    for g in range(groups):
        chosen = torch.full((b,), g, device=codewords.device)
        for pass_ in group_passes(prior.config, g):
            bits = prior_bits(prior, codewords, indices, chosen, pass_)
            out[:, g] += bits.sum(1).double().cpu()
    return out


def sampled_bpp(
    config: ModelConfig,
    bits: torch.Tensor,
    groups: torch.Tensor,
    passes: torch.Tensor,
    used: torch.Tensor,
    grid: tuple[int, int],
) -> torch.Tensor:
    """Unbiased estimate (B,) of each image's bpp at its level from :func:`prior_bits` of one
    (group, pass) per image, the group uniform over all token groups and the pass uniform over
    the group's passes: the tokens' mean bits times the pass's size, the group's passes and the
    token groups, over the pixels; a group at or past the image's ``used`` level counts zero.
    ``grid``: the latent's (h, w)."""
    h, w = grid
    sizes = torch.tensor(
        [
            int(pass_mask(h, w, p).sum()) * len(group_passes(config, g))
            for g, p in zip(groups.tolist(), passes.tolist(), strict=True)
        ],
        device=bits.device,
    )
    scale = sizes * config.token_groups / (h * w * config.stride**2)
    return torch.where(groups < used, bits.mean(1) * scale, 0.0)
