"""Spherical Leech quantization: the 196,560 minimal vectors of the Leech lattice.

Public API (stable):

- :func:`codebook` -> float32 tensor (196560, 24), unit norm, canonical order
- :func:`quantize` -> int64 indices of the nearest codewords, shape ``x.shape[:-1]``
- :func:`quantize_torch` -> the same indices from batched torch ops on ``x``'s device (CUDA)
- :class:`LeechQuantizer` -> torch module for training (normalize, quantize, straight-through)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .module import LeechQuantizer
from .search import nearest_indices
from .search_torch import quantize_torch
from .shell import (
    DIM,
    SIZE,
    SQUARED_NORM,
    codeword_to_index,
    index_to_codeword,
    integer_codebook,
)

__all__ = [
    "DIM",
    "SIZE",
    "SQUARED_NORM",
    "LeechQuantizer",
    "codebook",
    "codeword_to_index",
    "decode",
    "index_to_codeword",
    "integer_codebook",
    "quantize",
    "quantize_torch",
]


@lru_cache(maxsize=1)
def _unit_codebook() -> torch.Tensor:
    book = torch.from_numpy(integer_codebook().astype(np.float32)) / float(np.sqrt(SQUARED_NORM))
    return book


def codebook() -> torch.Tensor:
    """All 196,560 unit-norm codewords, float32 (196560, 24), in canonical order."""
    return _unit_codebook().clone()


def quantize(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Indices (int64, shape ``x.shape[:-1]``) of the codewords with the largest inner product.

    Exact: the same codeword as brute force over all 196,560 (ties go to the smallest index).
    """
    array = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return torch.from_numpy(nearest_indices(array, threads=torch.get_num_threads()))


def decode(indices: torch.Tensor) -> torch.Tensor:
    """Unit-norm codewords (float32, shape ``indices.shape + (24,)``) of canonical indices."""
    return _unit_codebook()[indices.long().cpu()]
