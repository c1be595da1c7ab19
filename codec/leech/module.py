"""Torch module: per-group L2 normalization, Leech quantization, straight-through gradient."""

from __future__ import annotations

import torch
from torch import nn

from .shell import DIM

#: Reconstruction gain of each residual stage, relative to the unit vector it refines: the
#: gains 3.77, 2.41, 1.54, 0.98, 0.63, 0.40 of Gaussian vectors with unit-variance coordinates
#: (docs: DESIGN-NOTES, "Why the rate-distortion curve flattens") over sqrt(24), their norm.
RESIDUAL_GAINS: tuple[float, ...] = tuple(
    g / DIM**0.5 for g in (3.77, 2.41, 1.54, 0.98, 0.63, 0.40)
)


class LeechQuantizer(nn.Module):
    """Quantize a latent (B, 24*G, H, W) group by group to unit Leech shell codewords.

    Channels ``24*g .. 24*g+23`` form slice ``g``. Returns ``(codewords, indices)``:
    codewords (B, 24*T, H, W) of the T = G * ``stages`` token groups (straight-through gradient
    to the normalized latent on the first stage's channels), indices int64 (B, T, H, W).

    With ``stages`` > 1 each slice's unit vector u is quantized residually: stage 1 codes the
    nearest codeword c_1 to u, stage k the nearest c_k to the direction of
    ``r = u - sum_{i<k} a_i c_i`` (gains :data:`RESIDUAL_GAINS`). Token group ``t`` is slice
    ``t % G`` at stage ``t // G``; its channels hold the unit codeword c (what the prior reads);
    :meth:`reconstruction` sums the stages.

    ``needed`` (B,) optionally limits image ``b`` to its first ``needed[b]`` token groups: the
    others are not searched (the costly part of a training step) and come back as zero
    codewords with index 0.
    """

    eps: float = 1e-6

    def __init__(self, stages: int = 1) -> None:
        super().__init__()
        if not 1 <= stages <= len(RESIDUAL_GAINS):
            raise ValueError(f"stages must be in 1..{len(RESIDUAL_GAINS)}, got {stages}")
        self.stages = stages

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
        if self.stages > 1:
            return self._quantize_residual(unit, needed)
        indices, hard = self._stage(unit.detach(), unit, needed, 0)
        codewords = hard + (unit - unit.detach())  # forward: exactly hard; backward: through unit
        return codewords.movedim(-1, 2).reshape(b, c, h, w), indices

    def _stage(
        self, direction: torch.Tensor, unit: torch.Tensor, needed: torch.Tensor | None, stage: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (B, G, h, w) and unit codewords (B, G, h, w, 24) nearest to ``direction``
        (B, G, h, w, 24) for the token groups of ``stage``; with ``needed``, the token groups
        past each image's count are not searched (index 0, zero codeword)."""
        if needed is None:
            indices = self._search(direction)
            return indices, self._codewords(indices, unit)
        g = direction.shape[1]
        tokens = torch.arange(stage * g, (stage + 1) * g, device=unit.device)
        keep = tokens[None] < needed[:, None]
        indices = torch.zeros(direction.shape[:-1], dtype=torch.int64, device=unit.device)
        indices[keep] = self._search(direction[keep])
        return indices, self._codewords(indices, unit) * keep[:, :, None, None, None]

    def _quantize_residual(
        self, unit: torch.Tensor, needed: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_quantize` for ``stages`` > 1; ``unit`` (B, G, h, w, 24)."""
        b, g, h, w, _ = unit.shape
        residual = unit.detach()
        hards, all_indices = [], []
        for k in range(self.stages):
            direction = residual / residual.norm(dim=-1, keepdim=True).clamp_min(self.eps)
            indices, hard = self._stage(direction, unit, needed, k)
            residual = residual - RESIDUAL_GAINS[k] * hard
            hards.append(hard)
            all_indices.append(indices)
        hards[0] = hards[0] + (unit - unit.detach())
        codewords = torch.cat(hards, dim=1)  # (B, T, h, w, 24), stage-major
        return codewords.movedim(-1, 2).reshape(b, DIM * g * self.stages, h, w), torch.cat(
            all_indices, dim=1
        )

    def reconstruction(self, codewords: torch.Tensor) -> torch.Tensor:
        """Codewords (B, 24*T, h, w) of every token group -> the synthesis input (B, 24*G, h, w):
        per slice ``sum_k (a_k / a_1) c_k``, stage 1 at the scale of a one-stage model's unit
        codeword. Token groups not coded must be zero."""
        if self.stages == 1:
            return codewords
        b, c, h, w = codewords.shape
        per_stage = codewords.reshape(b, self.stages, c // self.stages, h, w)
        scale = torch.tensor(
            [a / RESIDUAL_GAINS[0] for a in RESIDUAL_GAINS[: self.stages]],
            dtype=codewords.dtype,
            device=codewords.device,
        )
        return (per_stage * scale.view(1, -1, 1, 1, 1)).sum(1)
