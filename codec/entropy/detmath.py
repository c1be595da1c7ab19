"""Deterministic ``exp`` and ``log`` for the coding path (numba, IEEE basic operations only).

The range coder's probabilities must be bit-identical in encoder and decoder. Library ``exp``
and ``log`` may differ between SIMD widths, CPU features and library versions; these use only
``+ - * /``, ``floor``-free rounding and exact power-of-two scaling, in a fixed order, so the
result depends on nothing but the input (numba does not contract or reassociate without
``fastmath``). Accuracy is a few ulp, far below what the coder can resolve.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)

LN2_HI = 6.93147180369123816490e-01  # trailing zero bits: k * LN2_HI is exact for |k| < 2**11
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer (ties to even)
MAGIC_BITS = np.int64(np.array([MAGIC]).view(np.int64)[0])
#: Arguments below this give exactly 0 (the result would be subnormal or zero).
EXP_FLOOR = -708.0
EXP_CEIL = 709.0
SQRT_HALF = 0.70710678118654752440


@numba.njit(inline="always", **_JIT)
def _poly_exp(r: float) -> float:
    """exp(r) for |r| <= ln(2)/2 (Taylor, degree 12: relative error < 2e-16)."""
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0


@numba.njit(**_JIT)
def dexp(x: float) -> float:
    """Deterministic exp; 0 below ``EXP_FLOOR``."""
    if x < EXP_FLOOR:
        return 0.0
    x = min(x, EXP_CEIL)
    k = (x * INV_LN2 + MAGIC) - MAGIC
    r = (x - k * LN2_HI) - k * LN2_LO
    return math.ldexp(_poly_exp(r), int(k))


@numba.njit(**_JIT)
def vexp(x: np.ndarray, n: int, scratch: np.ndarray) -> None:
    """In place ``x[:n] = dexp(x[:n])`` (vectorizable; ``scratch``: float64, length >= n)."""
    bits = scratch.view(np.int64)
    for i in range(n):
        xi = min(max(x[i], EXP_FLOOR), EXP_CEIL)
        k = (xi * INV_LN2 + MAGIC) - MAGIC
        r = (xi - k * LN2_HI) - k * LN2_LO
        scratch[i] = k + (1023.0 + MAGIC)
        x[i] = _poly_exp(r) if x[i] >= EXP_FLOOR else 0.0
    for i in range(n):
        bits[i] = (bits[i] - MAGIC_BITS) << 52
    for i in range(n):
        x[i] = x[i] * scratch[i]


@numba.njit(**_JIT)
def dlog(x: float) -> float:
    """Deterministic natural log of a positive finite number (-inf for 0)."""
    if x <= 0.0:
        return -np.inf
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m = m * 2.0
        e -= 1
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = 1.0 / 21.0
    p = p * z + 1.0 / 19.0
    p = p * z + 1.0 / 17.0
    p = p * z + 1.0 / 15.0
    p = p * z + 1.0 / 13.0
    p = p * z + 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z + 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z + 1.0 / 3.0
    p = p * z + 1.0
    return e * LN2_HI + (e * LN2_LO + 2.0 * s * p)
