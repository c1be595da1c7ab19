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
    """Token groups kept, as a float mask over the codeword latent's channels.

    ``groups_used``: (B,) counts per image -> (B, 24*groups, 1, 1), or a depth map (B, h, w) of
    counts per latent position -> (B, 24*groups, h, w); the first ``count`` groups are kept."""
    index = torch.arange(groups, device=groups_used.device)
    if groups_used.dim() == 1:
        keep = index[None] < groups_used[:, None]
        return keep.repeat_interleave(DIM, dim=1)[:, :, None, None].float()
    keep = index[None, :, None, None] < groups_used[:, None]
    return keep.repeat_interleave(DIM, dim=1).float()


class Tokenizer(nn.Module):
    """Image <-> Λ24 token indices. Groups are importance-ordered (trained with truncation)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.analysis = AnalysisTransform(config)
        self.quantizer = LeechQuantizer(config.stages)
        self.synthesis = SynthesisTransform(config)

    def forward(
        self,
        image: torch.Tensor,
        groups_used: torch.Tensor,
        groups_needed: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: returns (reconstruction, codewords (B, 24T, h, w), indices (B, T, h, w))
        of the T token groups; the codewords are what the prior reads (:meth:`latent_of`).

        ``groups_used`` (B,): token groups each image's reconstruction uses, or (B, h, w): per
        latent position (a depth map, :func:`group_mask`). ``groups_needed`` (B,), at least
        ``groups_used`` everywhere: quantize only that many token groups of each image (the
        rest come back zero); default all.
        """
        codewords, indices = self.quantizer(self.analysis(channels_last(image)), groups_needed)
        mask = group_mask(groups_used, self.config.token_groups)
        used = self.synthesis_input(codewords * mask)
        return self.synthesis(channels_last(used)), codewords, indices

    @torch.no_grad()
    def encode(self, image: torch.Tensor, groups_used: int) -> torch.Tensor:
        """Image (B,3,H,W) in [0,1], H and W multiples of the stride -> indices (B, k, h, w) of
        the first k = ``groups_used`` token groups."""
        if self.config.stages > 1:
            latent = self.analysis(channels_last(image))
            needed = torch.full((len(image),), groups_used, device=latent.device)
            _, indices = self.quantizer(latent, needed)
            return indices[:, :groups_used]
        latent = self.analysis(channels_last(image))[:, : DIM * groups_used]
        _, indices = self.quantizer(latent)
        return indices

    def padded(self, codewords: torch.Tensor) -> torch.Tensor:
        """Codewords of the first k token groups (B, 24k, h, w) -> the full codeword latent
        (B, 24T, h, w), the token groups not coded zero (what the prior expects, and
        :meth:`synthesize` sums)."""
        b, c, h, w = codewords.shape
        rest = codewords.new_zeros(b, self.config.token_channels - c, h, w)
        return torch.cat([codewords, rest], dim=1)

    def latent_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, k, h, w) of the first k token groups -> the full codeword latent
        (B, 24T, h, w): each token group's unit codeword, what the prior reads."""
        b, k, h, w = indices.shape
        return self.padded(decode(indices).movedim(-1, 2).reshape(b, k * DIM, h, w))

    prior_latent = latent_of

    def synthesis_input(self, latent: torch.Tensor) -> torch.Tensor:
        """Codeword latent (B, 24T, h, w) -> what the synthesis reads: the stages of each slice
        summed (:meth:`LeechQuantizer.reconstruction`), or, ``stage_input="concat"``, the
        latent itself. Token groups not coded must be zero."""
        if self.config.stage_input == "concat":
            return latent
        return self.quantizer.reconstruction(latent)

    def synthesize(self, latent: torch.Tensor) -> torch.Tensor:
        """Codeword latent (B, 24T, h, w) -> image (B,3,H,W), unclamped."""
        return self.synthesis(channels_last(self.synthesis_input(latent)))

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, k, h, w) of the first k token groups -> image (B,3,H,W), clamped to
        [0,1]."""
        return self.synthesize(self.latent_of(indices)).clamp(0, 1)
