"""Exact conditional pmfs of the sub-symbol chain ``shape -> support -> detail`` (coding path).

All functions take :class:`~.params.CodingParams` (grid-rounded) and return float64 numpy arrays
computed by the deterministic kernels of :mod:`.kernels`: the same inputs give bit-identical
outputs whatever the thread count, and the same pmf row whichever function computes it.

- the encoder: :func:`encoder_pmfs` (shape pmfs; support and detail pmfs of each token's own
  shape, one pass);
- the decoder: :func:`decoder_pmfs` (shape pmfs, and the support pmfs of the decoded
  shapes), then :func:`grouped_detail_pmfs` for the decoded supports;
- analysis: :func:`summarize` (all three support pmfs of every token: ``5,131`` floats per
  token, so callers feed tokens in chunks, as the coder does with :data:`CHUNK`),
  :func:`detail_pmfs`, :func:`conditional_probabilities`, :func:`sample`.

Support pmf columns are the supports' indices, except for shape C, whose 4,096 Golay words the
kernels lay out in another order (:func:`support_columns`); the coder codes columns.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from ..threads import set_numba_threads
from . import kernels
from .params import CodingParams
from .shell_pmf import join_index, split_index
from .structure import (
    DETAIL_SIZES,
    SUPPORT_SIZES,
    block_patterns,
    golay_bits,
    golay_coder_order,
    octad_block_patterns,
    octads,
    pairs,
)

#: Tokens per summary call in the coder (bounds memory to about 42 MB).
CHUNK = 1024


def support_columns(shape: int, support: np.ndarray) -> np.ndarray:
    """Columns of supports of ``shape`` in the support pmfs (and coded symbols): the support
    itself, except for shape C (:func:`~.structure.golay_coder_order`)."""
    support = np.asarray(support, dtype=np.int64)
    return golay_coder_order()[0][support] if shape == 2 else support


def column_supports(shape: int, column: np.ndarray) -> np.ndarray:
    """Inverse of :func:`support_columns`."""
    column = np.asarray(column, dtype=np.int64)
    return golay_coder_order()[1][column] if shape == 2 else column


class Summary(NamedTuple):
    """Shape pmf, conditional support pmfs of every shape, and per-component normalizers.

    Support pmf columns: see :func:`support_columns`."""

    shape: np.ndarray  # (T, 3), normalized
    support: tuple[
        np.ndarray, np.ndarray, np.ndarray
    ]  # (T, 276), (T, 759), (T, 4096), unnormalized
    support_total: np.ndarray  # (T, 3): the sum of each support row (up to rounding)
    log_z: np.ndarray  # (T, M) natural log of each component's partition function
    log_pi: np.ndarray  # (T, M) log mixture weights


@lru_cache(maxsize=1)
def _structure() -> tuple[np.ndarray, ...]:
    return (
        np.ascontiguousarray(pairs()),
        np.ascontiguousarray(octads()),
        np.ascontiguousarray(block_patterns()),
        np.ascontiguousarray(golay_bits()),
        np.ascontiguousarray(octad_block_patterns()),
    )


def set_threads(threads: int | None) -> None:
    """Numba threads for the kernels (default: torch's thread count). Results do not change."""
    set_numba_threads(threads)


class SummaryBuffers:
    """Reusable output arrays for :func:`summarize` (saves page faults on repeated calls)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, int], Any] = {}

    def get(self, name: str, rows: int, cols: int) -> np.ndarray:
        """A (rows, cols) float64 view of a buffer that grows as needed."""
        key = (name, cols)
        array = self._arrays.get(key)
        if array is None or array.shape[0] < rows:
            array = np.empty((max(rows, 1), cols))
            self._arrays[key] = array
        return array[:rows]

    def kept(self, mixtures: int) -> tuple[np.ndarray, ...]:
        """Room for :func:`decoder_pmfs`'s kept weights of :data:`DECODE_STEP` tokens."""
        key = ("kept", mixtures)
        arrays = self._arrays.get(key)
        if arrays is None:
            items = -(-DECODE_STEP // kernels.ITEM_TOKENS)
            arrays = (
                np.empty((DECODE_STEP, mixtures, SUPPORT_SIZES[0])),
                np.empty((items, kernels.ITEM_TOKENS * mixtures, SUPPORT_SIZES[1])),
                np.empty((DECODE_STEP, mixtures, SUPPORT_SIZES[2])),
                np.empty((items, kernels.ITEM_TOKENS * mixtures, 6)),
            )
            self._arrays[key] = arrays
        return arrays

    def grid(self, mixtures: int) -> CodingParams:
        """Room for :data:`CHUNK` tokens of grid-rounded parameters with ``mixtures`` components."""
        tables = self._arrays.get(("grid_tables", mixtures))
        if tables is None:
            tables = np.empty((CHUNK, mixtures, 24, 9))
            self._arrays[("grid_tables", mixtures)] = tables
            self._arrays[("grid_logits", mixtures)] = np.empty((CHUNK, mixtures))
        return CodingParams(tables, self._arrays[("grid_logits", mixtures)])


def summarize(
    params: CodingParams, threads: int | None = None, buffers: SummaryBuffers | None = None
) -> Summary:
    """Shape pmfs and all support pmfs of every token.

    With ``buffers``, the returned arrays are views into them, valid until their next use.
    """
    set_threads(threads)
    pr, _, pat, _, opat = _structure()
    t, m = params.tables.shape[:2]
    buffers = buffers or SummaryBuffers()
    shape = buffers.get("shape", t, 3)
    support = tuple(buffers.get(f"support{k}", t, size) for k, size in enumerate(SUPPORT_SIZES))
    total = buffers.get("total", t, 3)
    log_z = buffers.get("log_z", t, m)
    log_pi = buffers.get("log_pi", t, m)
    if t:
        kernels.summary_kernel(
            params.tables, params.logits, pr, opat, pat, shape, *support, total, log_z, log_pi
        )
    return Summary(shape, support, total, log_z, log_pi)


def detail_pmfs(
    params: CodingParams,
    summary: Summary,
    shape: int,
    tokens: np.ndarray,
    support: np.ndarray,
    threads: int | None = None,
) -> np.ndarray:
    """Detail pmfs ``(n, DETAIL_SIZES[shape])`` of tokens ``tokens`` of ``shape`` given supports
    (:func:`kernels.details_kernel` on those tokens' rows)."""
    set_threads(threads)
    pr, oc, _, golay, _ = _structure()
    tokens = np.ascontiguousarray(tokens, dtype=np.int64)
    support = np.ascontiguousarray(support, dtype=np.int64)
    n = tokens.size
    rows = tuple(np.empty((n if s == shape else 0, size)) for s, size in enumerate(DETAIL_SIZES))
    if n:
        kernels.details_kernel(
            params.tables[tokens],
            summary.log_pi[tokens],
            summary.log_z[tokens],
            pr,
            oc,
            golay,
            np.full(n, shape, dtype=np.int64),
            support,
            np.arange(n, dtype=np.int64),
            *rows,
        )
    return rows[shape]


class ShapePmfs(NamedTuple):
    """The decoder's first pass: shape pmfs and per-component normalizers."""

    shape: np.ndarray  # (T, 3), normalized
    log_z: np.ndarray  # (T, M)
    log_pi: np.ndarray  # (T, M)


def _groups(shape: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Token numbers of each shape, and each token's row within its shape's group."""
    groups = tuple(np.flatnonzero(shape == s) for s in range(3))
    row = np.empty(shape.size, dtype=np.int64)
    for sel in groups:
        row[sel] = np.arange(sel.size)
    return groups, row


#: Tokens per step of :func:`decoder_pmfs`: it keeps every component's support weights of
#: this many tokens (``5,131 * M`` floats each) until their shapes are decoded.
DECODE_STEP = 64


class DecodedShapes(NamedTuple):
    """What :func:`decoder_pmfs` returns: the shapes and the support pmfs to decode next."""

    pmfs: ShapePmfs
    shape: np.ndarray  # (T,) int64, the decoded shapes
    groups: tuple[np.ndarray, np.ndarray, np.ndarray]  # token numbers of each shape, ascending
    support: tuple[np.ndarray, np.ndarray, np.ndarray]  # (n_s, SUPPORT_SIZES[s]) unnormalized
    # (columns: support_columns)


def decoder_pmfs(
    params: CodingParams,
    decode_shapes: Callable[[np.ndarray], np.ndarray],
    threads: int | None = None,
    buffers: SummaryBuffers | None = None,
) -> DecodedShapes:
    """The decoder's shapes and support pmfs: shape pmfs of :data:`DECODE_STEP` tokens at a
    time, ``decode_shapes(pmfs)`` (called in token order, on consecutive tokens: it returns
    their shapes), then the support pmf of each token's decoded shape, mixed from weights kept
    since the shape pmf (nothing is computed twice). Every row is bit-identical to
    :func:`encoder_pmfs`'s and :func:`summarize`'s.
    With ``buffers``, the returned arrays are views into them, valid until their next use.
    """
    set_threads(threads)
    pr, _, pat, _, opat = _structure()
    t, m = params.tables.shape[:2]
    buffers = buffers or SummaryBuffers()
    pmfs = ShapePmfs(
        buffers.get("shape", t, 3), buffers.get("log_z", t, m), buffers.get("log_pi", t, m)
    )
    rows = tuple(buffers.get(f"support{s}", t, size) for s, size in enumerate(SUPPORT_SIZES))
    total = buffers.get("total", t, 1)[:, 0]
    keep = buffers.kept(m)
    shape = np.empty(t, dtype=np.int64)
    counts = np.zeros(3, dtype=np.int64)
    for start in range(0, t, DECODE_STEP):
        stop = min(start + DECODE_STEP, t)
        part = slice(start, stop)
        kernels.shape_keep_kernel(
            params.tables[part], params.logits[part], pr, opat, pat,
            pmfs.shape[part], pmfs.log_z[part], pmfs.log_pi[part], *keep,
        )  # fmt: skip
        shape[part] = decode_shapes(pmfs.shape[part])
        if shape[part].min(initial=0) < 0 or shape[part].max(initial=0) > 2:
            raise ValueError("decode_shapes returned a shape outside 0..2")
        kernels.kept_support_kernel(
            pmfs.log_z[part], pmfs.log_pi[part], shape[part], counts, *keep, *rows, total[part]
        )
    groups = tuple(np.flatnonzero(shape == s) for s in range(3))
    support = tuple(rows[s][: groups[s].size] for s in range(3))
    return DecodedShapes(pmfs, shape, groups, support)


def grouped_detail_pmfs(
    params: CodingParams,
    shapes: ShapePmfs,
    shape: np.ndarray,
    support: np.ndarray,
    threads: int | None = None,
    buffers: SummaryBuffers | None = None,
) -> tuple[np.ndarray, ...]:
    """Detail pmfs of every token given its shape and support: row ``r`` of the result's
    ``[s]`` for the ``r``-th token of shape ``s`` (as :func:`detail_pmfs`)."""
    set_threads(threads)
    pr, oc, _, golay, _ = _structure()
    buffers = buffers or SummaryBuffers()
    shape = np.ascontiguousarray(shape, dtype=np.int64)
    support = np.ascontiguousarray(support, dtype=np.int64)
    groups, row = _groups(shape)
    rows = tuple(
        buffers.get(f"detail{s}", sel.size, size)
        for s, (sel, size) in enumerate(zip(groups, DETAIL_SIZES, strict=True))
    )
    if shape.size:
        kernels.details_kernel(
            params.tables, shapes.log_pi, shapes.log_z, pr, oc, golay, shape, support, row, *rows
        )
    return rows


class EncoderPmfs(NamedTuple):
    """The pmfs an encoder needs for tokens whose (shape, support, detail) it knows."""

    shape: np.ndarray  # (T, 3) shape pmfs, normalized
    groups: tuple[np.ndarray, np.ndarray, np.ndarray]  # token numbers of each shape, ascending
    support: tuple[np.ndarray, np.ndarray, np.ndarray]  # (n_s, SUPPORT_SIZES[s]) unnormalized
    # (columns: support_columns)
    detail: tuple[np.ndarray, np.ndarray, np.ndarray]  # (n_s, DETAIL_SIZES[s]) normalized
    support_total: np.ndarray  # (T,) the total of each token's support row (up to rounding)


def encoder_pmfs(
    params: CodingParams,
    shape: np.ndarray,
    support: np.ndarray,
    threads: int | None = None,
    buffers: SummaryBuffers | None = None,
) -> EncoderPmfs:
    """Shape pmfs of all tokens, and the support and detail pmfs of each token's own shape.

    Row ``r`` of ``support[s]`` and ``detail[s]`` belongs to token ``groups[s][r]``; these rows
    are bit-identical to the decoder's (:func:`summarize` and :func:`detail_pmfs`).
    With ``buffers``, the returned arrays are views into them, valid until their next use.
    """
    set_threads(threads)
    pr, oc, pat, golay, opat = _structure()
    t = len(params)
    buffers = buffers or SummaryBuffers()
    shape = np.ascontiguousarray(shape, dtype=np.int64)
    support = np.ascontiguousarray(support, dtype=np.int64)
    groups, row = _groups(shape)
    out_shape = buffers.get("shape", t, 3)
    sup = tuple(
        buffers.get(f"support{s}", sel.size, size)
        for s, (sel, size) in enumerate(zip(groups, SUPPORT_SIZES, strict=True))
    )
    det = tuple(
        buffers.get(f"detail{s}", sel.size, size)
        for s, (sel, size) in enumerate(zip(groups, DETAIL_SIZES, strict=True))
    )
    total = buffers.get("total", t, 1)[:, 0]
    if t:
        kernels.encode_kernel(
            params.tables, params.logits, pr, opat, pat, oc, golay, shape, support, row,
            out_shape, *sup, *det, total,
        )  # fmt: skip
    return EncoderPmfs(out_shape, groups, sup, det, total)


def conditional_probabilities(
    params: CodingParams, indices: np.ndarray, threads: int | None = None
) -> np.ndarray:
    """(T, 3) probabilities of each token's shape, support and detail under the chain."""
    indices = np.asarray(indices, dtype=np.int64)
    out = np.empty((len(params), 3))
    buffers = SummaryBuffers()
    for start in range(0, len(params), CHUNK):
        stop = min(start + CHUNK, len(params))
        shape, support, detail = split_index(indices[start:stop])
        pmfs = encoder_pmfs(params.rows(start, stop), shape, support, threads, buffers)
        rows = np.arange(stop - start)
        out[start:stop, 0] = pmfs.shape[rows, shape]
        for s, sel in enumerate(pmfs.groups):
            r = np.arange(sel.size)
            column = support_columns(s, support[sel])
            out[start + sel, 1] = pmfs.support[s][r, column] / pmfs.support_total[sel]
            out[start + sel, 2] = pmfs.detail[s][r, detail[sel]]
    return out


def _draw(pmf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(pmf, axis=1)
    u = rng.random(len(pmf)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), pmf.shape[1] - 1)


def sample(
    params: CodingParams, rng: np.random.Generator, threads: int | None = None
) -> np.ndarray:
    """Draw one index per token from the chain (for tests and benchmarks)."""
    out = np.empty(len(params), dtype=np.int64)
    for start in range(0, len(params), CHUNK):
        stop = min(start + CHUNK, len(params))
        chunk = params.rows(start, stop)
        summary = summarize(chunk, threads)
        shape = _draw(summary.shape, rng)
        support = np.zeros_like(shape)
        detail = np.zeros_like(shape)
        for s in range(3):
            sel = np.flatnonzero(shape == s)
            if sel.size:
                column = _draw(summary.support[s][sel], rng)  # _draw normalizes
                support[sel] = column_supports(s, column)
                detail[sel] = _draw(detail_pmfs(chunk, summary, s, sel, support[sel], threads), rng)
        out[start:stop] = join_index(shape, support, detail)
    return out
