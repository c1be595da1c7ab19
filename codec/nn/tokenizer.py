"""Λ24-SQ tokenizer: analysis transform, spherical Leech quantization, synthesis transform."""

from __future__ import annotations

import torch
from torch import nn

from ..leech import DIM, LeechQuantizer, decode
from .config import ModelConfig
from .transforms import AnalysisTransform, SynthesisTransform


def channels_last(x: torch.Tensor) -> torch.Tensor:
    # oneDNN's convolutions run faster on channels-last inputs on CPU (see the model card)
    return x.contiguous(memory_format=torch.channels_last)


def group_mask(groups_used: torch.Tensor, groups: int) -> torch.Tensor:
    """(B,) counts -> (B, 24*groups, 1, 1) mask keeping the first ``groups_used`` groups."""
    keep = torch.arange(groups, device=groups_used.device)[None] < groups_used[:, None]
    return keep.repeat_interleave(DIM, dim=1)[:, :, None, None].float()


class Tokenizer(nn.Module):
    """Image <-> Λ24 token indices. Groups are importance-ordered (trained with truncation)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.analysis = AnalysisTransform(config)
        self.quantizer = LeechQuantizer()
        self.synthesis = SynthesisTransform(config)

    def forward(
        self,
        image: torch.Tensor,
        groups_used: torch.Tensor,
        groups_needed: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: returns (reconstruction, codewords, indices (B, G, h, w)).

        ``groups_needed`` (B,), at least ``groups_used``: quantize only that many groups of
        each image (the rest come back zero); default all.
        """
        codewords, indices = self.quantizer(self.analysis(channels_last(image)), groups_needed)
        mask = group_mask(groups_used, self.config.groups)
        return self.synthesis(channels_last(codewords * mask)), codewords, indices

    @torch.no_grad()
    def encode(self, image: torch.Tensor, groups_used: int) -> torch.Tensor:
        """Image (B,3,H,W) in [0,1], H and W multiples of the stride -> indices (B, k, h, w)."""
        latent = self.analysis(channels_last(image))[:, : DIM * groups_used]
        _, indices = self.quantizer(latent)
        return indices

    def padded(self, codewords: torch.Tensor) -> torch.Tensor:
        """Codewords of the first k groups (B, 24k, h, w) -> the full latent (B, 24G, h, w), the
        groups not coded zero (what the synthesis and the prior expect)."""
        b, c, h, w = codewords.shape
        rest = codewords.new_zeros(b, self.config.latent_channels - c, h, w)
        return torch.cat([codewords, rest], dim=1)

    def latent_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, k, h, w) of the first k groups -> the full codeword latent (B, 24G, h, w)."""
        b, k, h, w = indices.shape
        return self.padded(decode(indices).movedim(-1, 2).reshape(b, k * DIM, h, w))

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, k, h, w) of the first k groups -> image (B,3,H,W), clamped to [0,1]."""
        return self.synthesis(channels_last(self.latent_of(indices))).clamp(0, 1)
