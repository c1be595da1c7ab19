"""Explicit 4-wide float64 vector code for the hottest loop of the coding kernels.

LLVM does not vectorize the Golay word loop well by itself (16-element inner loops with
runtime alias checks, or gathers). :func:`golay_word_block` emits the vector operations
directly. Vector ``fadd``/``fmul`` without fast-math flags round every lane exactly like the
scalar operations (no contraction into FMA, no reassociation), so the results are
bit-identical to the scalar loop described below, on any target LLVM supports.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

_V4 = ir.VectorType(ir.DoubleType(), 4)
_I64 = ir.IntType(64)

#: Offsets in the flat grid (6 x 256 float64) of the per-block tables, rows y, columns x:
#: Phi of blocks 0, 1, 2, then Psi of blocks 0, 1, 2.
PHI0, PHI1, PHI2, PSI0, PSI1, PSI2 = 0, 256, 512, 768, 1024, 1280


def _vector_pointer(builder, data, offset):
    return builder.bitcast(builder.gep(data, [offset]), _V4.as_pointer())


@intrinsic
def golay_word_block(typingctx, grid, w, a, b, acc):  # noqa: ARG001
    """The 16 word weights with Turyn ``a``, ``b`` and ``x = 0..15``, into ``w[a*256 + b*16 + x]``.

    ``v = Phi2[c] * (Psi0[a] * Phi1[b] + Phi0[a] * Psi1[b]) + Psi2[c] * (Phi0[a] * Phi1[b])``
    per ``x``, with ``c = a ^ b`` (row indices of the flat ``grid``, see ``PHI0``...), and
    ``acc[x] += v`` (``acc``: 16 float64 partial sums). No bounds checks:
    ``grid`` holds at least 1,536 values, ``w`` 4,096, and ``0 <= a, b < 16``.
    """
    sig = types.void(grid, w, a, b, acc)

    def codegen(context, builder, signature, args):
        grid_v, w_v, a_v, b_v, acc_v = args
        g = context.make_array(signature.args[0])(context, builder, grid_v).data
        out = context.make_array(signature.args[1])(context, builder, w_v).data
        accum = context.make_array(signature.args[4])(context, builder, acc_v).data
        sixteen = ir.Constant(_I64, 16)
        row_a = builder.mul(a_v, sixteen)
        row_b = builder.mul(b_v, sixteen)
        row_c = builder.mul(builder.xor(a_v, b_v), sixteen)
        base = builder.add(builder.mul(a_v, ir.Constant(_I64, 256)), row_b)

        def load(row, table, lane):
            offset = builder.add(row, ir.Constant(_I64, table + lane))
            return builder.load(_vector_pointer(builder, g, offset), align=8)

        values = []
        for q in range(0, 16, 4):
            fa, ga = load(row_a, PHI0, q), load(row_a, PSI0, q)
            fb, gb = load(row_b, PHI1, q), load(row_b, PSI1, q)
            fc, gc = load(row_c, PHI2, q), load(row_c, PSI2, q)
            inner = builder.fadd(builder.fmul(ga, fb), builder.fmul(fa, gb))
            values.append(
                builder.fadd(builder.fmul(fc, inner), builder.fmul(gc, builder.fmul(fa, fb)))
            )
        for q, v in zip(range(0, 16, 4), values, strict=True):
            offset = builder.add(base, ir.Constant(_I64, q))
            builder.store(v, _vector_pointer(builder, out, offset), align=8)
            sum_ptr = _vector_pointer(builder, accum, ir.Constant(_I64, q))
            total = builder.load(sum_ptr, align=8)
            builder.store(builder.fadd(total, v), sum_ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen
