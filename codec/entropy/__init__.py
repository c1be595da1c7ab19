"""Exact probabilities of Λ24 shell tokens and their range coding.

- :mod:`.shell_pmf`: the pmf family (mixtures of 24 x 9 tables) in torch, differentiable, and
  the index <-> (shape, support, detail) split of the sub-symbol chain.
- :mod:`.coder`: :class:`TokenEncoder` / :class:`TokenDecoder` (constriction range coding) and
  :func:`ideal_bits` / :func:`symbol_bits` (code lengths).
- :mod:`.depthmap`: the depth maps of adaptive depth (one choice per latent position), coded
  in the same stream as the tokens.
- :mod:`.chain`, :mod:`.kernels`, :mod:`.params`, :mod:`.detmath`: the deterministic coding
  path (grid-rounded parameters, exact conditional pmfs in numba).
"""

from importlib import import_module
from typing import Any

from .shell_pmf import (
    DETAIL_SIZES,
    SHAPES,
    SUPPORT_SIZES,
    join_index,
    log_partition,
    log_prob,
    split_index,
)

__all__ = [
    "DETAIL_SIZES",
    "SHAPES",
    "SUPPORT_SIZES",
    "CorruptStream",
    "TokenDecoder",
    "TokenEncoder",
    "ideal_bits",
    "join_index",
    "log_partition",
    "log_prob",
    "split_index",
    "symbol_bits",
]

#: The coder needs ``constriction``; the training path (the pmf only) must not.
_CODER = {"CorruptStream", "TokenDecoder", "TokenEncoder", "ideal_bits", "symbol_bits"}


def __getattr__(name: str) -> Any:
    if name in _CODER:
        return getattr(import_module(".coder", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
