"""The complete model: tokenizer (transforms + quantizer) and autoregressive prior."""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .contract import CodingPrior
from .exact_prior import ExactPrior
from .prior import Prior
from .tokenizer import Tokenizer


class LqzModel(nn.Module):
    """Tokenizer and prior under one config; the unit that is trained, shipped and loaded."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = Tokenizer(config)
        self.prior: CodingPrior = Prior(config)

    def coding_prior(self, exact: bool = True) -> CodingPrior:
        """The prior the tile coder codes with: :class:`~lqz.nn.exact_prior.ExactPrior` (the
        same pmfs on every machine; files from format version 3 on), or the float prior that
        earlier files were coded with. The exact one is derived from the current weights on
        first use and again after they change."""
        if not exact:
            return self.prior
        key = tuple((p.data_ptr(), p._version) for p in self.prior.parameters())
        cached = self.__dict__.get("_exact_prior")
        if cached is None or cached[0] != key:
            cached = key, ExactPrior.of(self.prior)
            self.__dict__["_exact_prior"] = cached  # not a submodule: no state, no training
        return cached[1]
