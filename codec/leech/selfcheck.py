"""A short self-check of the codebook and the quantizer, with a report of what it verified."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def run(vectors: int = 2000, echo: Callable[[str], None] = print) -> None:
    """Check the codebook's invariants and ``quantize`` against brute force on random vectors."""
    from . import SIZE, codeword_to_index, integer_codebook, quantize

    start = time.perf_counter()
    book = integer_codebook().astype(np.int64)
    norms = (book**2).sum(axis=1)
    assert len(book) == SIZE and (norms == 32).all(), "codebook size or norm is wrong"
    assert len(np.unique(book, axis=0)) == SIZE, "codebook has repeated vectors"
    roundtrip = codeword_to_index(book)
    assert (roundtrip == np.arange(SIZE)).all(), "index <-> codeword is not a bijection"
    echo(f"codebook: {SIZE:,} distinct integer vectors of squared norm 32; index round trip exact")

    rng = np.random.default_rng(2024)
    x = rng.standard_normal((vectors, 24))
    quantize(x[:8])  # compile the kernel (or load it from numba's cache) before timing
    t0 = time.perf_counter()
    got = quantize(x).numpy()
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = x @ book.T.astype(np.float64)
    brute = time.perf_counter() - t0
    best = scores.max(axis=1)
    assert np.allclose(scores[np.arange(vectors), got], best, rtol=0, atol=1e-9), "not nearest"
    echo(
        f"quantize: {vectors:,} random vectors match brute force "
        f"({vectors / fast:,.0f} vectors/s vs {vectors / brute:,.0f} brute force)"
    )
    echo(f"self-check passed in {time.perf_counter() - start:.1f} s")
