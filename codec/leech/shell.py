"""The 196,560 minimal vectors of the Leech lattice and their canonical index order.

Vectors are scaled by sqrt(8): integer coordinates in -4..4 with squared norm 32.
The canonical order (fixed forever for format version 1; the index goes into the bitstream):

====== =========== ======== ================================================================
shape  first index count    index within the shape
====== =========== ======== ================================================================
A      0           1,104    ``pair * 4 + signs``: pair ``(i < j)`` in lexicographic order (276);
                            sign bit 0 set when ``v_i = -4``, bit 1 when ``v_j = -4``
B      1,104       97,152   ``octad * 128 + signs``: octads (weight-8 Golay words) sorted by
                            their 24-bit support mask (bit ``j`` = coordinate ``j``); bit ``k``
                            of ``signs`` set when the ``k``-th support coordinate (ascending)
                            is ``-2``, for ``k < 7``; the 8th sign makes the count of minus
                            signs even
C      98,256      98,304   ``codeword * 24 + position``: Golay word ``c`` in Turyn order
                            (:mod:`.golay`), ``v_j = (1 - 2 c_j)`` except ``v_p = -3 (1 - 2 c_p)``
                            at the position ``p`` of the -3
====== =========== ======== ================================================================

This is shape-major, then support/codeword, then signs/position, so the sub-symbol chain
shape -> (pair | octad | codeword) -> (signs | position) is a bijection onto indices.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .golay import golay_codewords

DIM = 24
SQUARED_NORM = 32
VALUES = 9  # integer coordinate values of the codewords: -4..4
NUM_PAIRS = 276
NUM_OCTADS = 759
NUM_GOLAY = 4096
COUNT_A = NUM_PAIRS * 4
COUNT_B = NUM_OCTADS * 128
COUNT_C = NUM_GOLAY * DIM
OFFSET_A = 0
OFFSET_B = COUNT_A
OFFSET_C = COUNT_A + COUNT_B
SIZE = COUNT_A + COUNT_B + COUNT_C  # 196,560


class ShellTables(NamedTuple):
    """Index tables that define the canonical order."""

    pairs: np.ndarray  # (276, 2) int64, i < j
    pair_index: np.ndarray  # (24, 24) int64, -1 off the upper triangle
    octads: np.ndarray  # (759, 8) int64 ascending support coordinates
    octad_masks: np.ndarray  # (759,) int64, ascending
    golay: np.ndarray  # (4096, 24) uint8
    golay_masks_sorted: np.ndarray  # (4096,) int64
    golay_mask_order: np.ndarray  # (4096,) int64: Turyn index of each sorted mask


def _masks(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.int64) << np.arange(DIM, dtype=np.int64)).sum(axis=-1)


@lru_cache(maxsize=1)
def tables() -> ShellTables:
    """The (cached) index tables of the canonical order."""
    iu, ju = np.triu_indices(DIM, k=1)
    pairs = np.stack([iu, ju], axis=1).astype(np.int64)
    pair_index = np.full((DIM, DIM), -1, dtype=np.int64)
    pair_index[iu, ju] = np.arange(NUM_PAIRS)

    golay = golay_codewords()
    weights = golay.sum(axis=1)
    octad_bits = golay[weights == 8]
    octad_masks = _masks(octad_bits)
    order = np.argsort(octad_masks)
    octad_masks = octad_masks[order]
    octads = np.nonzero(octad_bits[order])[1].reshape(NUM_OCTADS, 8).astype(np.int64)

    golay_masks = _masks(golay)
    mask_order = np.argsort(golay_masks)
    return ShellTables(
        pairs, pair_index, octads, octad_masks, golay, golay_masks[mask_order], mask_order
    )


@lru_cache(maxsize=1)
def integer_codebook() -> np.ndarray:
    """All 196,560 vectors in canonical order, shape (196560, 24), int8, squared norm 32."""
    t = tables()
    book = np.zeros((SIZE, DIM), dtype=np.int8)

    signs4 = np.array([[1, 1], [-1, 1], [1, -1], [-1, -1]], dtype=np.int8)
    block_a = book[OFFSET_A:OFFSET_B].reshape(NUM_PAIRS, 4, DIM)
    rows = np.arange(NUM_PAIRS)[:, None]
    block_a[rows, :, t.pairs[:, 0:1]] = 4 * signs4[None, :, 0]
    block_a[rows, :, t.pairs[:, 1:2]] = 4 * signs4[None, :, 1]

    sign_bits = (np.arange(128)[:, None] >> np.arange(7)) & 1  # (128, 7)
    last = sign_bits.sum(axis=1, keepdims=True) & 1
    octad_signs = (2 - 4 * np.concatenate([sign_bits, last], axis=1)).astype(np.int8)
    block_b = book[OFFSET_B:OFFSET_C].reshape(NUM_OCTADS, 128, DIM)
    block_b[
        np.arange(NUM_OCTADS)[:, None, None], np.arange(128)[None, :, None], t.octads[:, None, :]
    ] = octad_signs[None]

    s = (1 - 2 * t.golay.astype(np.int8))[:, None, :]  # (4096, 1, 24)
    minus3 = np.ones((DIM, DIM), dtype=np.int8) - 4 * np.eye(DIM, dtype=np.int8)
    book[OFFSET_C:] = (s * minus3[None]).reshape(COUNT_C, DIM)
    book.setflags(write=False)
    return book


def index_to_codeword(index: np.ndarray) -> np.ndarray:
    """Integer codewords (..., 24) int8 of canonical indices (any integer array shape)."""
    index = np.asarray(index)
    if index.size and (index.min() < 0 or index.max() >= SIZE):
        raise ValueError(f"Leech shell indices must lie in 0..{SIZE - 1}")
    return integer_codebook()[index]


def codeword_to_index(vectors: np.ndarray) -> np.ndarray:
    """Canonical indices (int64, shape ``vectors.shape[:-1]``) of integer shell vectors.

    Raises ValueError if any row is not one of the 196,560 minimal vectors.
    """
    v = np.asarray(vectors)
    if v.shape[-1:] != (DIM,):
        raise ValueError(f"expected a trailing dimension of {DIM}, got shape {v.shape}")
    batch_shape = v.shape[:-1]
    original = v.reshape(-1, DIM)
    v = original.astype(np.int64)
    t = tables()
    out = np.full(len(v), -1, dtype=np.int64)
    nonzero = v != 0
    nnz = nonzero.sum(axis=1)
    negative = v < 0

    rows = np.nonzero(nnz == 2)[0]
    if rows.size:
        first = np.argmax(nonzero[rows], axis=1)
        last = DIM - 1 - np.argmax(nonzero[rows, ::-1], axis=1)
        bits = negative[rows, first].astype(np.int64) | (negative[rows, last].astype(np.int64) << 1)
        out[rows] = OFFSET_A + t.pair_index[first, last] * 4 + bits

    rows = np.nonzero(nnz == 8)[0]
    if rows.size:
        octad = np.clip(np.searchsorted(t.octad_masks, _masks(nonzero[rows])), 0, NUM_OCTADS - 1)
        rank = np.cumsum(nonzero[rows], axis=1) - 1
        free = nonzero[rows] & (rank < 7)
        bits = (negative[rows] & free).astype(np.int64) << np.where(free, rank, 0)
        out[rows] = OFFSET_B + octad * 128 + bits.sum(axis=1)

    rows = np.nonzero(nnz == DIM)[0]
    if rows.size:
        position = np.argmax(np.abs(v[rows]) == 3, axis=1)
        minus = negative[rows].copy()
        minus[np.arange(rows.size), position] ^= True
        slot = np.clip(np.searchsorted(t.golay_masks_sorted, _masks(minus)), 0, NUM_GOLAY - 1)
        out[rows] = OFFSET_C + t.golay_mask_order[slot] * DIM + position

    valid = (out >= 0) & (v == original).all(axis=1)
    valid[valid] = (integer_codebook()[out[valid]] == v[valid]).all(axis=1)
    if not valid.all():
        raise ValueError(
            "not a minimal vector of the Leech lattice (scaled: norm^2 32, entries -4..4)"
        )
    return out.reshape(batch_shape)
