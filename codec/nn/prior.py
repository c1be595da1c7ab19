"""The autoregressive prior over Λ24 token indices: a small conv net per coding step.

Implements :class:`lqz.nn.contract.CodingPrior` for the steps of :mod:`lqz.nn.schedule`. Every
step's pmf parameters come from one network whose input is the codewords already decoded: all
groups before the current one, plus the current group's tokens of its earlier passes, and an
embedding of (group, pass). It outputs, per token, ``mixtures`` tables L[24, 9] and mixture
logits: the exact pmf family of :mod:`lqz.entropy.shell_pmf`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..leech.shell import DIM, VALUES
from .config import ModelConfig
from .schedule import Pass, context_mask, group_passes, pass_mask


class Prior(nn.Module):
    """Context network: decoded codewords -> per-token pmf parameters for one (group, pass)."""

    #: rows of context a band reads on each side: the reach of the trunk's two 3x3 convolutions
    halo = 2

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.prior_channels
        self.config = config
        self.groups = groups = config.token_groups  # token groups: slices x residual stages
        self.mixtures = config.mixtures
        # one row per (group, pass) in use: ANCHORS/EVEN (neither reads the group) share a row
        self.embed = nn.Embedding(groups * 2 + config.split_first_group, c)
        self.context_in = nn.Conv2d(DIM * groups + DIM, c, 1)
        self.trunk = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.GELU(),
        )
        out = self.mixtures * (DIM * VALUES + 1)
        self.head_weight = nn.Parameter(torch.zeros(groups, out, c))
        self.head_bias = nn.Parameter(torch.zeros(groups, out))
        nn.init.normal_(self.head_weight, std=0.01 / c**0.5)

    def embed_row(self, group: int, pass_: int) -> int:
        """Row of :attr:`embed` that tells the net which (group, pass) it computes."""
        if pass_ not in group_passes(self.config, group):
            raise ValueError(f"group {group} has no pass {Pass(pass_).name}")
        if pass_ == Pass.ODD:
            return self.groups * 2
        return group * 2 + (pass_ == Pass.REST)

    def context(self, codewords: torch.Tensor, group: int, pass_: int) -> torch.Tensor:
        """Network input for (group, pass) from the full codeword latent (B, 24G, h, w)."""
        b, _, h, w = codewords.shape
        keep = torch.zeros(self.groups * DIM, device=codewords.device)
        keep[: group * DIM] = 1
        previous = codewords * keep.view(1, -1, 1, 1)
        current = codewords[:, group * DIM : (group + 1) * DIM]
        seen = current * context_mask(h, w, pass_, codewords.device)
        return torch.cat([previous, seen], dim=1)

    def forward(
        self,
        codewords: torch.Tensor,
        group: torch.Tensor | int,
        pass_: torch.Tensor | int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters for every position of (group, pass).

        ``codewords``: (B, 24G, h, w) decoded latent (entries of not-yet-decoded tokens are
        ignored). ``group``, ``pass_``: ints, or (B,) tensors, one per image (training).
        Returns tables (B, h, w, M, 24, 9) and mixture logits (B, h, w, M).
        """
        b, _, h, w = codewords.shape
        groups = torch.as_tensor(group).expand(b).tolist()
        passes = torch.as_tensor(pass_).expand(b).tolist()
        if isinstance(group, int) and isinstance(pass_, int):
            x = self.context(codewords, group, pass_)
        else:
            x = torch.cat(
                [
                    self.context(codewords[i : i + 1], g, p)
                    for i, (g, p) in enumerate(zip(groups, passes, strict=True))
                ]
            )
        rows = torch.tensor(
            [self.embed_row(g, p) for g, p in zip(groups, passes, strict=True)],
            device=codewords.device,
        )
        feat = self.context_in(x) + self.embed(rows)[:, :, None, None]
        feat = self.trunk(feat)  # (B, c, h, w)
        heads = torch.tensor(groups, device=codewords.device)
        weight = self.head_weight[heads]  # (B, out, c)
        out = torch.einsum("boc,bchw->bhwo", weight, feat) + self.head_bias[heads][:, None, None]
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
        of it); it reads codewords within :attr:`halo` rows of the band, so bands can run
        independently. Returns tables (T, M, 24, 9) and mixture logits (T, M).
        """
        _, _, h, w = codewords.shape
        r0, r1 = rows if rows is not None else (0, h)
        s0, s1 = max(0, r0 - self.halo), min(h, r1 + self.halo)
        if pass_ == Pass.EVEN:  # (group 0 of the three-pass order; two-pass models' group-0
            # anchors, also without context, keep the full-band path their files were coded with)
            feat = self._contextless_features(pass_, r0, r1, s0, s1, w)
            return self._head(feat, group)
        feat = self._context_features(codewords[0, :, s0:s1], group, pass_, s0)
        conv2, gelu2 = self.trunk[3:]
        a, b = max(0, r0 - 1), min(h, r1 + 1)  # the rows conv2 reads
        feat = self._first_conv(feat, s0, s1, a, b)
        if pass_ in (Pass.ANCHORS, Pass.REST):
            start = (r0 + pass_) % 2  # column parity of the pass's positions on row r0
            feat = self._checkerboard_conv(conv2, feat, r0 - a, r1 - a, start)
        else:
            parity = 0 if pass_ == Pass.EVEN else 1
            first = r0 + (parity - r0) % 2  # the band's first row of that parity
            feat = self._lattice_conv(conv2, feat, first - a, r1 - a, parity)
        return self._head(gelu2(feat), group)

    def _head(self, feat: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables (T, M, 24, 9) and logits (T, M) from trunk features (c, T)."""
        out = torch.addmm(self.head_bias[group], feat.T, self.head_weight[group].T)
        m = self.mixtures
        tables = out[:, : m * DIM * VALUES].reshape(-1, m, DIM, VALUES)
        return tables, out[:, m * DIM * VALUES :]

    def _contextless_features(
        self, pass_: int, r0: int, r1: int, s0: int, s1: int, w: int
    ) -> torch.Tensor:
        """Trunk features (c, T) of group 0's EVEN pass at its positions in rows [r0, r1) of
        a band read over rows [s0, s1): its input is one constant vector everywhere, so a
        feature depends only on how close its position is to the band's edges (the zero
        padding of the two 3x3 convolutions reaches 2 rows/columns in). The trunk runs on a
        field of at most 5 x 5 positions -- edges, then one interior row/column -- instead of the
        whole band."""
        bias = self.context_in.bias + self.embed.weight[self.embed_row(0, pass_)]
        halo = self.halo

        def squeeze(n: int) -> tuple[int, torch.Tensor]:  # field size, position -> field index
            m = min(n, 2 * halo + 1)
            index = torch.arange(n)
            return m, torch.where(index < halo, index, torch.clamp(index - (n - m), min=halo))

        rows, row_of = squeeze(s1 - s0)
        cols, col_of = squeeze(w)
        field = bias[None, :, None, None].expand(1, -1, rows, cols)
        feat = self.trunk(field)[0]  # (c, rows, cols)
        where = pass_mask(r1, w, pass_)[r0:].nonzero()  # the pass's positions, row-major
        return feat[:, row_of[where[:, 0] + r0 - s0], col_of[where[:, 1]]]

    def _context_features(
        self, codewords: torch.Tensor, group: int, pass_: int, row0: int
    ) -> torch.Tensor:
        """``context_in(context(...))`` + embedding on rows ``row0..`` of a (24G, rows, w) slice,
        multiplying only the channels that are not masked to zero."""
        _, rows, w = codewords.shape
        weight = self.context_in.weight[:, :, 0, 0]
        bias = self.context_in.bias + self.embed.weight[self.embed_row(group, pass_)]
        k = group * DIM
        x = codewords[:k]
        if pass_ in (Pass.REST, Pass.ODD):
            seen = context_mask(rows + row0, w, pass_, codewords.device)[row0:]
            current = codewords[k : k + DIM] * seen
            x = torch.cat([x, current])
            weight = torch.cat([weight[:, :k], weight[:, self.groups * DIM :]], dim=1)
        else:
            weight = weight[:, :k]
        if x.shape[0] == 0:
            return bias[:, None, None].expand(-1, rows, w).contiguous()
        out = torch.addmm(bias[:, None], weight, x.reshape(x.shape[0], -1))
        return out.view(-1, rows, w)

    def _first_conv(self, feat: torch.Tensor, s0: int, s1: int, a: int, b: int) -> torch.Tensor:
        """The trunk up to its second convolution, (1, c, b - a, w) at rows ``[a, b)``, from
        (c, s1 - s0, w) features of rows ``[s0, s1)``."""
        gelu0, conv1, gelu1 = self.trunk[:3]
        return gelu1(conv1(gelu0(feat)))[None, :, a - s0 : b - s0]

    @staticmethod
    def _valid_conv(conv: nn.Conv2d, x: torch.Tensor, stride: int) -> torch.Tensor:
        """``conv``'s kernel over (1, c, h, w) ``x`` at ``stride``, without padding."""
        return F.conv2d(x, conv.weight, conv.bias, stride=stride)

    def _lattice_conv(
        self, conv: nn.Conv2d, x: torch.Tensor, first: int, r1: int, col: int
    ) -> torch.Tensor:
        """``conv(x)`` (3x3, padding 1) of (1, c, h, w) ``x`` at rows ``first, first + 2, ...``
        below ``r1`` and columns ``col, col + 2, ...``: (c, T) in row-major order. One stride-2
        convolution."""
        x = F.pad(x, (1, 1, 1, 1))
        w = x.shape[-1] - 2
        n_rows, n_cols = len(range(first, r1, 2)), len(range(col, w, 2))
        if not (n_rows and n_cols):
            return x.new_zeros(conv.out_channels, 0)
        window = x[:, :, first : first + 2 * n_rows + 1, col : col + 2 * n_cols + 1]
        return self._valid_conv(conv, window, 2)[0].flatten(1)

    def _checkerboard_conv(
        self, conv: nn.Conv2d, x: torch.Tensor, r0: int, r1: int, start: int
    ) -> torch.Tensor:
        """``conv(x)`` (3x3, padding 1) at rows ``[r0, r1)`` of (1, c, h, w) ``x``, only at the
        checkerboard positions whose column parity on row ``r0`` is ``start``: (c, T) in
        row-major order. Two stride-2 convolutions, one per row parity."""
        even = self._lattice_conv(conv, x, r0, r1, start)  # rows r0, r0 + 2, ...
        odd = self._lattice_conv(conv, x, r0 + 1, r1, 1 - start)  # rows r0 + 1, r0 + 3, ...
        n_even, n_odd = len(range(r0, r1, 2)), len(range(r0 + 1, r1, 2))
        c, w = conv.out_channels, x.shape[-1]
        even = even.view(c, n_even, len(range(start, w, 2)))
        odd = odd.view(c, n_odd, len(range(1 - start, w, 2)))
        pairs = torch.cat([even[:, :n_odd], odd], dim=2).flatten(1)
        if n_even > n_odd:
            pairs = torch.cat([pairs, even[:, -1]], dim=1)
        return pairs
