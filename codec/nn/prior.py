"""Autoregressive prior over Λ24 token indices: groups in order, each in two checkerboard passes.

Decoding order: group 0 pass 0 (anchors, ``(row + col)`` even), group 0 pass 1 (the rest),
group 1 pass 0, ... Every step's pmf parameters come from a small conv net whose input is the
codewords already decoded: all groups before the current one, plus the current group's
anchors in pass 1. All tokens of one step are independent given the context, so a step is one
batched network evaluation and one batched entropy-coding call.

The net outputs, per token, ``mixtures`` tables L[24, 9] and mixture logits: the exact pmf
family of :mod:`lqz.entropy.shell_pmf`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..leech import DIM
from .config import ModelConfig

VALUES = 9  # coordinate values -4..4
PASSES = 2


def anchor_mask(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, h, w) float mask of checkerboard anchors (pass 0): (row + col) even."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == 0).float()[None, None]


class Prior(nn.Module):
    """Context network: decoded codewords -> per-token pmf parameters for one (group, pass)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.prior_channels
        self.config = config
        self.groups = config.groups
        self.mixtures = config.mixtures
        self.embed = nn.Embedding(config.groups * PASSES, c)
        self.context_in = nn.Conv2d(DIM * config.groups + DIM, c, 1)
        self.trunk = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.GELU(),
        )
        out = self.mixtures * (DIM * VALUES + 1)
        self.head_weight = nn.Parameter(torch.zeros(config.groups, out, c))
        self.head_bias = nn.Parameter(torch.zeros(config.groups, out))
        nn.init.normal_(self.head_weight, std=0.01 / c**0.5)

    def context(self, codewords: torch.Tensor, group: int, pass_: int) -> torch.Tensor:
        """Network input for (group, pass) from the full codeword latent (B, 24G, h, w)."""
        b, _, h, w = codewords.shape
        keep = torch.zeros(self.groups * DIM, device=codewords.device)
        keep[: group * DIM] = 1
        previous = codewords * keep.view(1, -1, 1, 1)
        current = codewords[:, group * DIM : (group + 1) * DIM]
        anchors = current * anchor_mask(h, w, codewords.device) if pass_ == 1 else current * 0
        return torch.cat([previous, anchors], dim=1)

    def forward(
        self, codewords: torch.Tensor, group: torch.Tensor | int, pass_: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters for every position of (group, pass).

        ``codewords``: (B, 24G, h, w) decoded latent (entries of not-yet-decoded tokens are
        ignored). ``group``: an int, or a (B,) tensor of groups (training).
        Returns tables (B, h, w, M, 24, 9) and mixture logits (B, h, w, M).
        """
        b, _, h, w = codewords.shape
        groups = torch.as_tensor(group, device=codewords.device).expand(b)
        if isinstance(group, int):
            x = self.context(codewords, group, pass_)
        else:
            x = torch.cat(
                [self.context(codewords[i : i + 1], int(g), pass_) for i, g in enumerate(groups)]
            )
        feat = self.context_in(x) + self.embed(groups * PASSES + pass_)[:, :, None, None]
        feat = self.trunk(feat)  # (B, c, h, w)
        weight = self.head_weight[groups]  # (B, out, c)
        out = torch.einsum("boc,bchw->bhwo", weight, feat) + self.head_bias[groups][:, None, None]
        m = self.mixtures
        tables = out[..., : m * DIM * VALUES].reshape(b, h, w, m, DIM, VALUES)
        logits = out[..., m * DIM * VALUES :]
        return tables, logits
