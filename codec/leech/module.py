"""Torch module: per-group L2 normalization, Leech quantization, straight-through gradient."""

from __future__ import annotations

import torch
from torch import nn

from .shell import DIM


class LeechQuantizer(nn.Module):
    """Quantize a latent (B, 24*G, H, W) group by group to unit Leech shell codewords.

    Channels ``24*g .. 24*g+23`` form group ``g``. Returns ``(codewords, indices)``:
    codewords have the latent's shape (straight-through gradient to the normalized latent),
    indices are int64 (B, G, H, W).

    ``needed`` (B,) optionally limits image ``b`` to its first ``needed[b]`` groups: the
    others are not searched (the costly part of a training step) and come back as zero
    codewords with index 0.
    """

    eps: float = 1e-6

    def forward(
        self, latent: torch.Tensor, needed: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._quantize(latent, needed)

    def _search(self, unit: torch.Tensor) -> torch.Tensor:
        """Indices (int64, on ``unit``'s device) of the codewords nearest to unit vectors."""
        from . import quantize

        return quantize(unit).to(unit.device)

    def _codewords(self, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The unit codewords of ``indices``, with ``like``'s device and dtype."""
        from . import decode

        return decode(indices).to(device=like.device, dtype=like.dtype)

    def _quantize(
        self, latent: torch.Tensor, needed: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = latent.shape
        if c % DIM:
            raise ValueError(f"latent channels ({c}) must be a multiple of {DIM}")
        groups = latent.reshape(b, c // DIM, DIM, h, w).movedim(2, -1)
        unit = groups / groups.norm(dim=-1, keepdim=True).clamp_min(self.eps)
        if needed is None:
            indices = self._search(unit.detach())
            hard = self._codewords(indices, unit)
        else:
            keep = torch.arange(c // DIM, device=latent.device)[None] < needed[:, None]
            indices = torch.zeros(unit.shape[:-1], dtype=torch.int64, device=latent.device)
            indices[keep] = self._search(unit.detach()[keep])
            hard = self._codewords(indices, unit) * keep[:, :, None, None, None]
        codewords = hard + (unit - unit.detach())  # forward: exactly hard; backward: through unit
        return codewords.movedim(-1, 2).reshape(b, c, h, w), indices
