"""Exact nearest-codeword search on the Leech shell, by the structure of the Golay code.

All 196,560 codewords have the same norm, so the nearest one to ``x`` on the sphere is the one
with the largest inner product. Per shape (integer codewords, see :mod:`.shell`):

- A ``(+-4, +-4, 0^22)``: the two largest ``|x_i|`` with the signs of ``x``.
- B ``(+-2^8, 0^16)``: per octad ``2 sum |x_i|``, minus ``4 min |x_i|`` when the parity of the
  negative entries is odd (the smallest entry then takes the wrong sign).
- C ``(-+3, +-1^23)``: for a Golay word with signs ``s`` the correlation ``t = <s, x>`` plus
  ``4 max_j(-s_j x_j)`` (the -3 goes where the sign agrees least). All 4,096 values of ``t``
  come from Turyn's form with 8-point Walsh-Hadamard transforms (16 x 64 cells of 4 words);
  the exact score is evaluated only for cells whose bound ``t + 4 max |x|`` reaches the best
  score found so far.

Ties (equal float64 scores) go to the smallest canonical index.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from ..jit import kernel
from ..threads import set_numba_threads
from .golay import hamming_prime_words
from .shell import DIM, NUM_GOLAY, NUM_OCTADS, OFFSET_B, OFFSET_C, tables


@kernel()
def _walsh8(z: np.ndarray, out: np.ndarray) -> None:
    """Sylvester-ordered 8-point Walsh-Hadamard transform: out[w] = sum_j (-1)^{|w & j|} z[j]."""
    a0 = z[0] + z[1]
    a1 = z[0] - z[1]
    a2 = z[2] + z[3]
    a3 = z[2] - z[3]
    a4 = z[4] + z[5]
    a5 = z[4] - z[5]
    a6 = z[6] + z[7]
    a7 = z[6] - z[7]
    b0 = a0 + a2
    b1 = a1 + a3
    b2 = a0 - a2
    b3 = a1 - a3
    b4 = a4 + a6
    b5 = a5 + a7
    b6 = a4 - a6
    b7 = a5 - a7
    out[0] = b0 + b4
    out[1] = b1 + b5
    out[2] = b2 + b6
    out[3] = b3 + b7
    out[4] = b0 - b4
    out[5] = b1 - b5
    out[6] = b2 - b6
    out[7] = b3 - b7


@kernel()
def _better(score: float, index: int, best: float, best_index: int) -> bool:
    return score > best or (score == best and index < best_index)


@kernel()
def _nearest_one(
    x: np.ndarray,
    search_tables: tuple[np.ndarray, ...],
    work: np.ndarray,
    spectra: np.ndarray,
    cell_bound: np.ndarray,
) -> int:
    pair_index, octads, xsigns, walsh, golay_rank = search_tables
    u = np.abs(x)
    # Shape A: the two largest magnitudes (first occurrence wins ties, which is the smallest index).
    i1 = 0
    for i in range(1, DIM):
        if u[i] > u[i1]:
            i1 = i
    i2 = 1 if i1 == 0 else 0
    for i in range(DIM):
        if i != i1 and u[i] > u[i2]:
            i2 = i
    lo, hi = min(i1, i2), max(i1, i2)
    best = 4.0 * (u[i1] + u[i2])
    bits = (1 if x[lo] < 0 else 0) | (2 if x[hi] < 0 else 0)
    best_index = pair_index[lo, hi] * 4 + bits
    umax = u[i1]

    # Shape C, pass 1: the Walsh spectra of every x-word and the best sign choice per cell.
    for xi in range(16):
        for k in range(3):
            for j in range(8):
                work[j] = xsigns[xi, j] * x[8 * k + j]
            _walsh8(work, spectra[xi, k])
    for xi in range(16):
        f1 = spectra[xi, 0]
        f2 = spectra[xi, 1]
        f3 = spectra[xi, 2]
        for wa in range(8):
            for wb in range(8):
                a = f1[wa]
                b = f2[wb]
                c = f3[wa ^ wb]
                t = a + b + c
                t = max(t, a - b - c)
                t = max(t, -a + b - c)
                t = max(t, -a - b + c)
                cell_bound[xi * 64 + wa * 8 + wb] = t + 4.0 * umax

    # Shape B: octads, pruned by 2 * sum |x_i| >= best.
    for o in range(NUM_OCTADS):
        total = 0.0
        for k in range(8):
            total += u[octads[o, k]]
        if 2.0 * total < best:
            continue
        negatives = 0
        smallest = u[octads[o, 0]]
        for k in range(8):
            if x[octads[o, k]] < 0:
                negatives += 1
            smallest = min(smallest, u[octads[o, k]])
        score = 2.0 * total
        argmin = 0
        if negatives & 1:
            score -= 4.0 * smallest
            # Among tied smallest entries flip the one giving the smallest index: the highest
            # negative among the 7 sign-bit coordinates, else the 8th, else the lowest one.
            argmin = -1
            for k in range(6, -1, -1):
                if u[octads[o, k]] == smallest and x[octads[o, k]] < 0:
                    argmin = k
                    break
            if argmin < 0 and u[octads[o, 7]] == smallest:
                argmin = 7
            if argmin < 0:
                for k in range(7):
                    if u[octads[o, k]] == smallest:
                        argmin = k
                        break
        if score < best:
            continue
        sign_bits = 0
        for k in range(7):
            negative = x[octads[o, k]] < 0
            if (negatives & 1) and k == argmin:
                negative = not negative
            if negative:
                sign_bits |= 1 << k
        index = OFFSET_B + o * 128 + sign_bits
        if _better(score, index, best, best_index):
            best = score
            best_index = index

    # Shape C, pass 2: exact scores in the cells that can still win.
    for cell in range(16 * 64):
        if cell_bound[cell] < best:
            continue
        xi = cell // 64
        wa = (cell // 8) % 8
        wb = cell % 8
        wc = wa ^ wb
        a = spectra[xi, 0, wa]
        b = spectra[xi, 1, wb]
        c = spectra[xi, 2, wc]
        for ea in range(2):
            sa = 1.0 - 2.0 * ea
            for eb in range(2):
                sb = 1.0 - 2.0 * eb
                t = sa * a + sb * b + sa * sb * c
                if t + 4.0 * umax < best:
                    continue
                gain = -np.inf
                position = 0
                for j in range(DIM):
                    k = j // 8
                    if k == 0:
                        s = sa * walsh[wa, j % 8]
                    elif k == 1:
                        s = sb * walsh[wb, j % 8]
                    else:
                        s = sa * sb * walsh[wc, j % 8]
                    g = -s * xsigns[xi, j % 8] * x[j]
                    if g > gain:
                        gain = g
                        position = j
                score = t + 4.0 * gain
                word = xi * 256 + (2 * wa + ea) * 16 + (2 * wb + eb)
                index = OFFSET_C + golay_rank[word] * DIM + position
                if _better(score, index, best, best_index):
                    best = score
                    best_index = index
    return best_index


@kernel(parallel=True, nogil=False)
def _nearest_batch(x: np.ndarray, search_tables: tuple[np.ndarray, ...]) -> np.ndarray:
    """Indices of the codewords nearest to the rows of ``x`` (tables: :func:`_kernel_tables`)."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.int64)
    chunk = 256
    for c in numba.prange((n + chunk - 1) // chunk):
        work = np.empty(8)
        spectra = np.empty((16, 3, 8))
        cell_bound = np.empty(16 * 64)
        for r in range(c * chunk, min(n, (c + 1) * chunk)):
            out[r] = _nearest_one(x[r], search_tables, work, spectra, cell_bound)
    return out


@lru_cache(maxsize=1)
def _kernel_tables() -> tuple[np.ndarray, ...]:
    """The search's tables: pair index, octads, x-word signs, Walsh signs, Golay ranks."""
    t = tables()
    xsigns = (1.0 - 2.0 * hamming_prime_words()).astype(np.float64)
    y = np.arange(8)
    walsh = np.array([[1.0 - 2.0 * (bin(w & int(j)).count("1") & 1) for j in y] for w in range(8)])
    # The kernel enumerates Golay words in Turyn order; the canonical order is the same.
    golay_rank = np.arange(NUM_GOLAY, dtype=np.int64)
    return t.pair_index, t.octads, xsigns, walsh, golay_rank


def nearest_indices(x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Canonical indices (int64, shape ``x.shape[:-1]``) of the codewords nearest to ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1:] != (DIM,):
        raise ValueError(f"expected a trailing dimension of {DIM}, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("cannot quantize non-finite values")
    flat = x.reshape(-1, DIM)
    # Scale rows by powers of two (exact) so that no score can overflow near float64's maximum.
    _, exponent = np.frexp(np.abs(flat).max(axis=1, initial=0.0))
    flat = np.ascontiguousarray(np.ldexp(flat, -exponent[:, None]))
    set_numba_threads(threads)
    out = _nearest_batch(flat, _kernel_tables())
    return out.reshape(x.shape[:-1])
