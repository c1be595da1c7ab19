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
import torch.nn.functional as F
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


HALO = 2  # rows of context a band needs on each side: the trunk's two 3x3 convolutions


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

    def pass_params(
        self, codewords: torch.Tensor, group: int, pass_: int, rows: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s parameters at only the positions of (group, pass), row-major.

        The coding path: the same math as ``forward(...)[..][pass positions]`` up to float
        rounding, but the last convolution and the head run only where they are used.
        ``codewords``: (1, 24G, h, w). ``rows``: a band ``[r0, r1)`` of the grid (default: all
        of it); it reads codewords within :data:`HALO` rows of the band, so bands can run
        independently. Returns tables (T, M, 24, 9) and mixture logits (T, M).
        """
        _, _, h, w = codewords.shape
        r0, r1 = rows if rows is not None else (0, h)
        s0, s1 = max(0, r0 - HALO), min(h, r1 + HALO)
        feat = self._context_features(codewords[0, :, s0:s1], group, pass_, s0)
        gelu0, conv1, gelu1, conv2, gelu2 = self.trunk
        feat = gelu1(conv1(gelu0(feat)))[None]
        feat = gelu2(self._checkerboard_conv(conv2, feat, r0 - s0, r1 - s0, (r0 + pass_) % 2))
        out = torch.addmm(self.head_bias[group], feat.T, self.head_weight[group].T)
        m = self.mixtures
        tables = out[:, : m * DIM * VALUES].reshape(-1, m, DIM, VALUES)
        return tables, out[:, m * DIM * VALUES :]

    def _context_features(
        self, codewords: torch.Tensor, group: int, pass_: int, row0: int
    ) -> torch.Tensor:
        """``context_in(context(...))`` + embedding on rows ``row0..`` of a (24G, rows, w) slice,
        multiplying only the channels that are not masked to zero."""
        _, rows, w = codewords.shape
        weight = self.context_in.weight[:, :, 0, 0]
        bias = self.context_in.bias + self.embed.weight[group * PASSES + pass_]
        k = group * DIM
        x = codewords[:k]
        if pass_ == 1:
            anchors = anchor_mask(rows + row0, w, codewords.device)[0, :, row0:]
            current = codewords[k : k + DIM] * anchors
            x = torch.cat([x, current])
            weight = torch.cat([weight[:, :k], weight[:, self.groups * DIM :]], dim=1)
        else:
            weight = weight[:, :k]
        if x.shape[0] == 0:
            return bias[:, None, None].expand(-1, rows, w).contiguous()
        out = torch.addmm(bias[:, None], weight, x.reshape(x.shape[0], -1))
        return out.view(-1, rows, w)

    @staticmethod
    def _checkerboard_conv(
        conv: nn.Conv2d, x: torch.Tensor, r0: int, r1: int, start: int
    ) -> torch.Tensor:
        """``conv(x)`` (3x3, padding 1) at rows ``[r0, r1)`` of (1, c, h, w) ``x``, only at the
        checkerboard positions whose column parity on row ``r0`` is ``start``: (c, T) in
        row-major order. Two stride-2 convolutions, one per row parity."""
        x = F.pad(x, (1, 1, 1, 1))
        w = x.shape[-1] - 2
        parts = []
        for first, col in ((r0, start), (r0 + 1, 1 - start)):
            n_rows, n_cols = len(range(first, r1, 2)), len(range(col, w, 2))
            if n_rows and n_cols:
                window = x[:, :, first : first + 2 * n_rows + 1, col : col + 2 * n_cols + 1]
                part = F.conv2d(window, conv.weight, conv.bias, stride=2)[0]
            else:
                part = x.new_zeros(conv.out_channels, n_rows, n_cols)
            parts.append(part)
        even, odd = parts  # rows r0, r0 + 2, ... and r0 + 1, r0 + 3, ...
        pairs = torch.cat([even[:, : odd.shape[1]], odd], dim=2).flatten(1)
        if even.shape[1] > odd.shape[1]:
            pairs = torch.cat([pairs, even[:, -1]], dim=1)
        return pairs
