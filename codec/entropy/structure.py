"""Static index tables of the sub-symbol chain, derived from the canonical shell order.

The chain is ``shape -> support -> detail`` (see :mod:`lqz.leech.shell`):

====== ============================== ===========================================================
shape  support                        detail
====== ============================== ===========================================================
A (0)  pair ``(i < j)``, 276          2 sign bits: bit 0 when ``v_i = -4``, bit 1 when ``v_j = -4``
B (1)  octad (sorted by mask), 759    7 sign bits of the first 7 octad coordinates (8th: parity)
C (2)  Golay word (Turyn index), 4096 position of the ``-3`` (24)
====== ============================== ===========================================================

Golay words in Turyn order: index ``x * 256 + a * 16 + b`` has the three 8-coordinate blocks
``hp[x] ^ h[a]``, ``hp[x] ^ h[b]``, ``hp[x] ^ h[a ^ b]`` (``h``, ``hp``: the Hamming codes H and
H'; XOR of word indices is XOR of words). ``block_patterns()[x, y]`` is the 8-bit pattern of
``hp[x] ^ h[y]`` (bit ``j`` = block coordinate ``j``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..leech.golay import golay_codewords, hamming_prime_words, hamming_words
from ..leech.shell import tables

SHAPES = 3
SUPPORT_SIZES = (276, 759, 4096)
DETAIL_SIZES = (4, 128, 24)
OFFSETS = (0, 276 * 4, 276 * 4 + 759 * 128)
CODEBOOK_SIZE = OFFSETS[2] + 4096 * 24

#: Column of the value axis for coordinate value ``a`` is ``a + 4``.
VALUE_OFFSET = 4


def pairs() -> np.ndarray:
    """(276, 2) int64 coordinate pairs ``i < j`` in canonical order."""
    return tables().pairs


def octads() -> np.ndarray:
    """(759, 8) int64 ascending octad coordinates in canonical order."""
    return tables().octads


def golay_bits() -> np.ndarray:
    """(4096, 24) uint8 Golay words in canonical (Turyn) order."""
    return golay_codewords()


@lru_cache(maxsize=1)
def octad_block_patterns() -> np.ndarray:
    """(759, 3) int64: the octads' 8-bit patterns on coordinate blocks 0-7, 8-15, 16-23."""
    masks = tables().octad_masks
    out = np.stack([(masks >> (8 * k)) & 255 for k in range(3)], axis=1).astype(np.int64)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def block_patterns() -> np.ndarray:
    """(16, 16) int64: 8-bit pattern of ``hp[x] ^ h[y]`` (bit ``j`` = block coordinate ``j``)."""
    h = hamming_words().astype(np.int64)
    hp = hamming_prime_words().astype(np.int64)
    weights = 1 << np.arange(8, dtype=np.int64)
    words = hp[:, None, :] ^ h[None, :, :]
    out = (words * weights).sum(axis=-1)
    _check_turyn(out)
    return out


def _check_turyn(patterns: np.ndarray) -> None:
    """The kernels rely on the Turyn block layout of :func:`golay_bits`; verify it once."""
    bits = golay_bits().astype(np.int64)
    weights = 1 << np.arange(8, dtype=np.int64)
    blocks = np.stack([(bits[:, 8 * k : 8 * k + 8] * weights).sum(axis=1) for k in range(3)], 1)
    t = np.arange(4096)
    x, a, b = t // 256, (t // 16) % 16, t % 16
    expected = np.stack([patterns[x, a], patterns[x, b], patterns[x, a ^ b]], axis=1)
    if not np.array_equal(blocks, expected):
        raise RuntimeError("Golay word order is not the Turyn layout the entropy kernels assume")


@lru_cache(maxsize=1)
def golay_coder_order() -> tuple[np.ndarray, np.ndarray]:
    """``(column, word)``: the coder's column of each Golay word, and its inverse (int64).

    The coding kernels lay out the 4,096 weights of shape C with the Turyn ``x`` innermost:
    word ``x * 256 + a * 16 + b`` is column ``a * 256 + b * 16 + x`` of the support pmf."""
    t = np.arange(4096, dtype=np.int64)
    column = ((t >> 4) & 15) * 256 + (t & 15) * 16 + (t >> 8)
    word = np.empty_like(column)
    word[column] = t
    column.setflags(write=False)
    word.setflags(write=False)
    return column, word


@lru_cache(maxsize=1)
def codebook_columns() -> np.ndarray:
    """(196560, 24) int64 value-axis columns ``v + 4`` of every codeword, canonical order."""
    from ..leech.shell import integer_codebook

    out = integer_codebook().astype(np.int64) + VALUE_OFFSET
    out.setflags(write=False)
    return out
