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


#: Lanes of the octad kernels: jobs (a component of a token) computed side by side.
JOB_LANES = 4


def _lane_vector(builder, data, index):
    """The 4 lanes at element ``index`` (an LLVM i64) of a float64 array."""
    return builder.load(_vector_pointer(builder, data, index), align=8)


@intrinsic
def octad_table_step(typingctx, tab, fac, src, dst, d):  # noqa: ARG001
    """Block-table doubling step for 4 lanes: entry ``dst`` from entry ``src`` and coordinate
    ``d``'s factors. Entries ``[P, T, A, D]`` lie at ``tab[(entry * 4 + q) * 4 + lane]``,
    factors ``[e, t, a, eps]`` at ``fac[(q * 24 + d) * 4 + lane]``; the new entry is
    ``[P e, T t, A a, D + A eps]`` (as the scalar doubling in :mod:`.kernels`)."""
    sig = types.void(tab, fac, src, dst, d)

    def codegen(context, builder, signature, args):
        tab_v, fac_v, src_v, dst_v, d_v = args
        t = context.make_array(signature.args[0])(context, builder, tab_v).data
        f = context.make_array(signature.args[1])(context, builder, fac_v).data
        sixteen = ir.Constant(_I64, 16)
        src_base = builder.mul(src_v, sixteen)
        dst_base = builder.mul(dst_v, sixteen)
        fac_base = builder.mul(d_v, ir.Constant(_I64, 4))

        def entry(base, q):
            return builder.add(base, ir.Constant(_I64, 4 * q))

        def factor(q):
            return _lane_vector(builder, f, builder.add(fac_base, ir.Constant(_I64, 96 * q)))

        p_old, t_old, a_old, d_old = (
            _lane_vector(builder, t, entry(src_base, q)) for q in range(4)
        )
        e, tt, a, eps = (factor(q) for q in range(4))
        new = (
            builder.fmul(p_old, e),
            builder.fmul(t_old, tt),
            builder.fmul(a_old, a),
            builder.fadd(d_old, builder.fmul(a_old, eps)),
        )
        for q, v in enumerate(new):
            builder.store(v, _vector_pointer(builder, t, entry(dst_base, q)), align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def octad_weights(typingctx, tab, w, o, p0, p1, p2):  # noqa: ARG001
    """Weight of octad ``o`` (block patterns ``p0, p1, p2``) for 4 lanes, into
    ``w[lane * 759 + o]``: ``((P0 P1) P2) f`` with ``f = (1 + (T0 T1) T2) / 2``, or
    ``(D0 + A0 (D1 + A1 D2)) / 2`` where ``(T0 T1) T2 < -1/2`` (as ``_octad_weight``). Block
    ``k``'s entry for pattern ``p`` is entry ``k * 256 + p`` of ``tab`` (see
    :func:`octad_table_step`)."""
    sig = types.void(tab, w, o, p0, p1, p2)

    def codegen(context, builder, signature, args):
        tab_v, w_v, o_v, p0_v, p1_v, p2_v = args
        t = context.make_array(signature.args[0])(context, builder, tab_v).data
        out = context.make_array(signature.args[1])(context, builder, w_v).data
        sixteen = ir.Constant(_I64, 16)
        entries = []
        for k, p in enumerate((p0_v, p1_v, p2_v)):
            base = builder.mul(builder.add(p, ir.Constant(_I64, 256 * k)), sixteen)
            entries.append(
                [
                    _lane_vector(builder, t, builder.add(base, ir.Constant(_I64, 4 * q)))
                    for q in range(4)
                ]
            )
        (p_0, t_0, a_0, d_0), (p_1, t_1, a_1, d_1), (p_2, t_2, _, d_2) = entries

        def splat(value):
            return ir.Constant(_V4, [value] * 4)

        prod_t = builder.fmul(builder.fmul(t_0, t_1), t_2)
        d = builder.fadd(d_0, builder.fmul(a_0, builder.fadd(d_1, builder.fmul(a_1, d_2))))
        plain = builder.fmul(splat(0.5), builder.fadd(splat(1.0), prod_t))
        cancelled = builder.fmul(splat(0.5), d)
        f = builder.select(builder.fcmp_ordered(">=", prod_t, splat(-0.5)), plain, cancelled)
        v = builder.fmul(builder.fmul(builder.fmul(p_0, p_1), p_2), f)
        for lane in range(4):
            index = builder.add(o_v, ir.Constant(_I64, 759 * lane))
            element = builder.extract_element(v, ir.Constant(ir.IntType(32), lane))
            builder.store(element, builder.gep(out, [index]), align=8)
        return context.get_dummy_value()

    return sig, codegen
