"""The complete model: tokenizer (transforms + quantizer) and autoregressive prior."""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .contract import CodingPrior
from .prior import Prior
from .tokenizer import Tokenizer


class LqzModel(nn.Module):
    """Tokenizer and prior under one config; the unit that is trained, shipped and loaded."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = Tokenizer(config)
        self.prior: CodingPrior = Prior(config)
