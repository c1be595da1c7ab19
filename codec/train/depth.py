"""Random depth maps: how many token groups each latent position keeps, for training.

An encoder with spatially adaptive depth codes a different number of token groups at each
position. A synthesis trained only on one count per image does not expect that: on the shipped
stride-8 model, depths chosen per 8x8 block by their own distortion lose ~1 dB against what the
blocks predicted, as neighbours' missing groups bleed in (``models/MODEL_CARD.md``). Training
on random maps of every granularity teaches the transforms and the prior mixed depths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: side of the blocks of one depth, in latent positions: 2**0 .. 2**MAX_BLOCK_LOG2
MAX_BLOCK_LOG2 = 3


def random_depths(levels: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """(batch, height, width) group counts, each one of ``levels`` (ascending counts).

    Per image: a block side 1..2**MAX_BLOCK_LOG2 and a range of levels [lo, hi], both uniform;
    each block's level uniform in that range."""
    device = levels.device
    n = len(levels)
    out = torch.empty(batch, height, width, dtype=levels.dtype, device=device)
    for i in range(batch):
        side = 1 << int(torch.randint(MAX_BLOCK_LOG2 + 1, ()))
        lo, hi = sorted(torch.randint(n, (2,)).tolist())
        rows, cols = -(-height // side), -(-width // side)
        blocks = torch.randint(lo, hi + 1, (1, 1, rows, cols), device=device)
        grid = F.interpolate(blocks.float(), scale_factor=side, mode="nearest").long()
        out[i] = levels[grid[0, 0, :height, :width]]
    return out
