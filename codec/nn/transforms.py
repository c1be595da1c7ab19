"""Analysis (image -> latent) and synthesis (codewords -> image) transforms."""

from __future__ import annotations

import torch
from torch import nn

from ..leech.shell import DIM
from .config import ModelConfig
from .gdn import GDN


def _conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=2, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=kernel // 2, output_padding=1)


class AnalysisTransform(nn.Sequential):
    """Ballé-style analysis: strided convolutions with GDN, image (B,3,H,W) -> (B,24G,H/s,W/s)."""

    def __init__(self, config: ModelConfig) -> None:
        n, k, lk = config.channels, config.kernel, config.latent_kernel
        layers: list[nn.Module] = []
        cin = 3
        for _ in range(config.stride_log2 - (0 if lk else 1)):
            layers += [_conv(cin, n, k), GDN(n)]
            cin = n
        if lk:
            layers.append(nn.Conv2d(n, config.latent_channels, lk, padding=lk // 2))
        else:
            layers.append(_conv(cin, config.latent_channels, k))
        super().__init__(*layers)


class SynthesisTransform(nn.Module):
    """Codewords (B,24G,h,w) scaled by learned per-group gains -> image (B,3,h*s,w*s); with
    ``stage_input="concat"`` every token group's codewords (B,24T,h,w), scaled by their slice's
    gain."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        n, k, lk = config.channels, config.kernel, config.latent_kernel
        self.group_gain = nn.Parameter(torch.full((config.groups,), 24.0**0.5))
        layers: list[nn.Module] = []
        cin = config.synthesis_channels
        if lk:
            layers += [nn.Conv2d(cin, n, lk, padding=lk // 2), GDN(n, inverse=True)]
            cin = n
        for _ in range(config.stride_log2 - 1):
            layers += [_deconv(cin, n, k), GDN(n, inverse=True)]
            cin = n
        layers.append(_deconv(cin, 3, k))
        self.layers = nn.Sequential(*layers)
        self.groups = config.groups
        self.token_stages = config.stages if config.stage_input == "concat" else 1

    def forward(self, codewords: torch.Tensor) -> torch.Tensor:
        b, c, h, w = codewords.shape
        if self.token_stages > 1:  # every token group's codeword, stage-major: a slice's gain
            gain = self.group_gain.repeat_interleave(DIM).repeat(self.token_stages)
        else:
            gain = self.group_gain.repeat_interleave(c // self.groups)
        return self.layers(codewords * gain.view(1, c, 1, 1))
