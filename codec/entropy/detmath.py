"""Deterministic ``exp`` and ``log`` for the coding path (numba, IEEE basic operations only).

The range coder's probabilities must be bit-identical in encoder and decoder. Library ``exp``
and ``log`` may differ between SIMD widths, CPU features and library versions; these use only
``+ - * /``, ``floor``-free rounding and exact power-of-two scaling (integer operations on the
bit pattern), in a fixed order, so the result depends on nothing but the input (numba does not
contract or reassociate without ``fastmath``; vectorizing an elementwise loop does not change
any result). Accuracy is a few ulp, far below what the coder can resolve.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ..jit import kernel

LN2_HI = 6.93147180369123816490e-01  # trailing zero bits: k * LN2_HI is exact for |k| < 2**11
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
RINT_BIAS = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer (ties to even)
RINT_BIAS_BITS = np.int64(np.array([RINT_BIAS]).view(np.int64)[0])
#: ``k + EXPONENT_BIAS`` has the bit pattern ``RINT_BIAS_BITS + k + 1023`` for integer
#: ``|k| < 2**51``.
EXPONENT_BIAS = 1023.0 + RINT_BIAS
#: Arguments below this give exactly 0 (the result would be subnormal or zero).
EXP_FLOOR = -708.0
EXP_CEIL = 709.0
SQRT_HALF = 0.70710678118654752440
MANTISSA_MASK = np.int64((1 << 52) - 1)
HALF_EXPONENT = np.int64(1022 << 52)  # bit pattern of the exponent field of [0.5, 1)
TWO54 = 18014398509481984.0
#: exp(r) for |r| <= ln(2)/2: Taylor coefficients 1/12!, ..., 1/1!, 1/0! (relative error
#: < 2e-16).
EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(12, -1, -1))
#: log((1 + s) / (1 - s)) / (2 s) in powers of s**2 (atanh series): 1/21, 1/19, ..., 1/3, 1.
LOG_ATANH = tuple(1.0 / k for k in range(21, 0, -2))
#: Elements per step of :func:`vexp`: independent lanes that hide the polynomial's latency.
VEXP_BLOCK = 16


@intrinsic
def as_int(typingctx, x):  # noqa: ARG001
    """The bit pattern of a float64 as an int64 (a no-op bitcast)."""

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def as_float(typingctx, x):  # noqa: ARG001
    """The float64 with the bit pattern of an int64 (a no-op bitcast)."""

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@kernel(inline="always")
def _horner(x: float, coefficients: tuple[float, ...]) -> float:
    """The polynomial with ``coefficients`` (highest degree first) at ``x``, by Horner's rule."""
    p = coefficients[0]
    for i in range(1, len(coefficients)):
        p = p * x + coefficients[i]
    return p


@kernel(inline="always")
def _exp(x: float) -> float:
    """Branch-free body of :func:`dexp` (vectorizes in loops)."""
    xc = x if x > EXP_FLOOR else EXP_FLOOR
    xc = xc if xc < EXP_CEIL else EXP_CEIL
    k = (xc * INV_LN2 + RINT_BIAS) - RINT_BIAS
    r = (xc - k * LN2_HI) - k * LN2_LO
    scale = as_float((as_int(k + EXPONENT_BIAS) - RINT_BIAS_BITS) << 52)  # 2**k, k in -1021..1023
    return (_horner(r, EXP_TAYLOR) if x >= EXP_FLOOR else 0.0) * scale


@kernel()
def dexp(x: float) -> float:
    """Deterministic exp; 0 below ``EXP_FLOOR`` (and for -inf)."""
    return _exp(x)


@kernel()
def vexp(x: np.ndarray, n: int) -> None:
    """In place ``x[:n] = dexp(x[:n])``, bit for bit, in blocks of :data:`VEXP_BLOCK`."""
    m = n - n % VEXP_BLOCK
    for i in range(0, m, VEXP_BLOCK):
        for j in range(VEXP_BLOCK):
            x[i + j] = _exp(x[i + j])
    for i in range(m, n):
        x[i] = _exp(x[i])


@kernel(inline="always")
def _log_reduced(m: float, e: float) -> float:
    """log(m * 2**e) for m in [sqrt(1/2), sqrt(2)) (atanh series)."""
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = _horner(z, LOG_ATANH)
    return e * LN2_HI + (e * LN2_LO + 2.0 * s * p)


@kernel(inline="always")
def _log_normal(x: float) -> float:
    """Branch-free :func:`dlog` of a positive normal number (vectorizes in loops)."""
    bits = as_int(x)
    e = (bits >> 52) - 1022
    m = as_float((bits & MANTISSA_MASK) | HALF_EXPONENT)
    small = m < SQRT_HALF
    m = m * 2.0 if small else m
    e = e - 1 if small else e
    return _log_reduced(m, float(e))


@kernel()
def vlog_normal(x: np.ndarray, n: int) -> None:
    """In place ``x[:n] = dlog(x[:n])``, bit for bit, for positive normal numbers only."""
    for i in range(n):
        x[i] = _log_normal(x[i])


@kernel()
def dlog(x: float) -> float:
    """Deterministic natural log of a positive finite number (-inf for 0)."""
    if x <= 0.0:
        return -np.inf
    adjust = 0
    if x < 2.2250738585072014e-308:  # subnormal: scale into the normal range (exact)
        x = x * TWO54
        adjust = 54
    bits = as_int(x)
    e = (bits >> 52) - 1022 - adjust  # x = m * 2**e, m in [0.5, 1) (frexp)
    m = as_float((bits & MANTISSA_MASK) | HALF_EXPONENT)
    if m < SQRT_HALF:
        m = m * 2.0
        e -= 1
    return _log_reduced(m, float(e))
