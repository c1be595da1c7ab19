"""Numba kernels for the exact sub-symbol pmfs on the coding grid (see :mod:`.params`).

Tables are ``L[d, k]`` with value column ``k = a + 4``; rows are max-normalized and lie in
[-512, 0] (the kernels rely on that range). Every loop runs in a fixed order and uses only
:mod:`.detmath` for ``exp``/``log``, so results depend on the inputs alone, never on threads
(tokens are independent; ``prange`` only distributes whole tokens).

Per component, the weights of each shape's supports are kept as linear values ``w`` relative
to a log shift ``sh`` (``W = exp(sh) * w``). Below, ``L[d, a]`` is indexed by the value ``a`` and
``base0 = sum_d L[d, 0]``:

- A, pair ``(i, j)``: ``base0 + lA_i + lA_j`` with ``lA_i = logaddexp(L[i,4], L[i,-4]) - L[i,0]``,
  as the product ``e_i e_j``, ``e_i = exp(lA_i - top / 2)`` (``top``: the largest pair).
- B, octad ``O``: ``base0 + sum_{i in O} lB_i + log f_O``, ``lB_i = logaddexp(L[i,2], L[i,-2]) -
  L[i,0]``; ``f_O = (1 + prod t_i) / 2`` (even parity, ``t_i = tanh((L[i,2] - L[i,-2]) / 2)``),
  or, where that cancels (``prod t_i < -1/2``), ``f_O = D / 2`` with ``D = 1 - prod |t_i|``
  built from non-negative terms only (``D' = D + prod|t| * eps`` per added coordinate,
  ``eps = 1 - |t| = 2 / (1 + e^|y|)``). Octad sums and products come from per-block tables over
  the 256 patterns of each 8-coordinate block. Linear path: ``prod_{i in O} exp(lB_i - c)``
  from block tables of products, when the spread of ``lB`` keeps every partial product within
  ``e^+-680``; log path otherwise (block tables of sums, one ``exp`` per octad). The linear
  path runs 4 components (jobs) side by side in explicit vector code (:mod:`.simd`), each lane
  bit for bit the scalar ``_shape_b``.
- C, Golay word ``c``: ``sum_i prod_{j != i} phi_j(c_j) psi_i(c_i)`` with ``phi_j = exp L[j, +-1]``,
  ``psi_i = exp L[i, -+3]``. Fast path: per 8-coordinate block, tables over the 256 patterns of
  ``Phi = prod phi`` and ``Psi = sum_i psi_i prod_{j != i} phi_j`` (``phi_j`` normalized by
  ``max phi_j``, every ``psi`` by one common factor so that all are <= 1), combined per word
  through Turyn's form (16 words at a time in vector code), taken when the total word weight
  is at least ``FAST_MIN_WEIGHT``: then every flushed term is below ``1e-35`` of the largest
  word. The weights are laid out with the Turyn ``x`` innermost (coder order, see
  :func:`lqz.entropy.structure.golay_coder_order`).
  Exact path otherwise: ``exp(c.delta + log S(c))`` with ``S(c) = sum_i exp(r_i(c_i))`` summed in
  tiers of 300 nats (a word is evaluated at the first tier where ``S >= e^-300``).

Below about ``1e-30`` of the largest weight of a shape, values may be flushed to 0 (never NaN);
the range coder's leaky quantization still gives every symbol a nonzero probability.

Kernels: :func:`encode_kernel` (the encoder's fused pass: shape pmfs, and only the support
and detail pmfs of each token's own shape); the decoder's passes :func:`shape_keep_kernel`
(shape pmfs of a few tokens, keeping every component's support weights),
:func:`kept_support_kernel` (the support pmfs of their decoded shapes, mixed from the kept
weights) and :func:`details_kernel` (also the analysis path's detail pmfs);
:func:`summary_kernel` (all three support pmfs of every token) for analysis and tests. Every
pmf row is bit-identical whichever kernel computes it and however tokens are grouped: the same
functions compute it, and vector lanes never interact. Lengths are passed as run-time values
(``x.shape[0]``), never as constants: numba would compile a separate copy of a function per
literal argument.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from ..jit import kernel
from ..leech.shell import NUM_GOLAY, NUM_OCTADS, NUM_PAIRS
from .detmath import dexp, dlog, vexp, vlog_normal
from .simd import JOB_LANES, golay_word_block, octad_table_step, octad_weights
from .structure import DETAIL_SIZES

DETAIL_MAX = max(DETAIL_SIZES)  # the largest detail pmf
DETAIL_ITEM_TOKENS = 64  # tokens per parallel work item of the detail kernels

FLUSH = 1e-150  # fast path: factors and partial products below this become 0 (products normal)
FAST_MIN_WEIGHT = 1e-110  # ... the total of its word weights must be >= this (else: exact)
B_LINEAR_SPREAD = 170.0  # B linear path: max lB - min lB (partial products within e^+-680)
B_LINEAR_MIN_WEIGHT = 1e-250  # ... and its largest octad weight must be >= this
TIER = 300.0
THETA = 5.148200222412013e-131  # e^-300: a word is resolved at a tier once S >= THETA
LAST_TIER = 3  # r spans at most 1024 nats on the grid: 4 tiers reach every word
KEY_FLUSH = -400.0  # exact path: exp(key - max key) below e^-400 is flushed (no subnormals)
ITEM_TOKENS = 8  # tokens per parallel work item

# Rows of the per-coordinate scratch ``coord`` (see _workspace).
_C_LA, _C_LB, _C_TS, _C_TA, _C_EP = 0, 1, 2, 3, 4
_C_EXP = 5  # rows 5-8: 96 contiguous values for one vexp call
_C_RP, _C_RM, _C_A, _C_B, _C_DELTA, _C_NU = 9, 10, 11, 12, 13, 14
_COORD_ROWS = 15


@kernel(inline="always")
def _flush(v: float) -> float:
    return v if v >= FLUSH else 0.0


@kernel()
def _sum(x, n: int) -> float:
    """Sum of x[:n] in a fixed order, 8 interleaved partial sums (no serial add chain)."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    m = n - n % 8
    for i in range(0, m, 8):
        a0 += x[i]
        a1 += x[i + 1]
        a2 += x[i + 2]
        a3 += x[i + 3]
        a4 += x[i + 4]
        a5 += x[i + 5]
        a6 += x[i + 6]
        a7 += x[i + 7]
    for i in range(m, n):
        a0 += x[i]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@kernel()
def _max(x, n: int) -> float:
    """Maximum of x[:n] (n >= 1, no NaN), 4 interleaved partial maxima."""
    a0 = a1 = a2 = a3 = x[0]
    m = n - n % 4
    for i in range(0, m, 4):
        v0 = x[i]
        v1 = x[i + 1]
        v2 = x[i + 2]
        v3 = x[i + 3]
        a0 = v0 if v0 > a0 else a0
        a1 = v1 if v1 > a1 else a1
        a2 = v2 if v2 > a2 else a2
        a3 = v3 if v3 > a3 else a3
    for i in range(m, n):
        a0 = x[i] if x[i] > a0 else a0
    a0 = a1 if a1 > a0 else a0
    a2 = a3 if a3 > a2 else a2
    return a2 if a2 > a0 else a0


@kernel()
def _logsumexp(x: np.ndarray, n: int) -> float:
    top = x[0]
    for i in range(1, n):
        top = max(top, x[i])
    if top == -np.inf:
        return -np.inf
    acc = 0.0
    for i in range(n):
        acc += dexp(x[i] - top)
    return top + dlog(acc)


@kernel()
def _shape_a(L, pairs, w, coord, out) -> None:
    la, ex = coord[_C_LA], coord[_C_EXP]
    base0 = 0.0
    for d in range(24):
        base0 += L[d, 4]
        ex[d] = -abs(L[d, 8] - L[d, 0])
    vexp(ex, ex.shape[0])
    for d in range(24):
        ex[d] = 1.0 + ex[d]
    vlog_normal(ex, ex.shape[0])  # dlog(1 + e^-|y|), bit for bit
    for d in range(24):
        la[d] = max(L[d, 8], L[d, 0]) - L[d, 4] + ex[d]
    i1 = 0
    for d in range(1, 24):
        if la[d] > la[i1]:
            i1 = d
    top2 = -np.inf
    for d in range(24):
        if d != i1:
            top2 = max(top2, la[d])
    top = la[i1] + top2
    half = 0.5 * top
    for d in range(24):
        ex[d] = la[d] - half  # in [-1025, 513]: e_i e_j <= 1, and e_i = 0 only for negligible pairs
    vexp(ex, ex.shape[0])
    for u in range(NUM_PAIRS):
        w[u] = ex[pairs[u, 0]] * ex[pairs[u, 1]]
    out[0] = base0 + top
    out[1] = _sum(w, w.shape[0])


@kernel()
def _subset_sums(values, base: int, table) -> None:
    """table[p] = sum of values[base + j] over the set bits j of the 8-bit pattern p."""
    table[0] = 0.0
    size = 1
    for j in range(8):
        v = values[base + j]
        for p in range(size):
            table[p + size] = table[p] + v
        size *= 2


@kernel(inline="always")
def _octad_weight(e0, e1, e2) -> float:
    """Octad weight from its three block entries ``[P, prod t, prod |t|, D]``: the product of
    the P, times f = (1 + prod t) / 2, or D / 2 where that would cancel (branch-free)."""
    p = (e0[1] * e1[1]) * e2[1]
    d = e0[3] + e0[2] * (e1[3] + e1[2] * e2[3])
    f = 0.5 * (1.0 + p) if p >= -0.5 else 0.5 * d
    return ((e0[0] * e1[0]) * e2[0]) * f


@kernel()
def _b_prep(L, coord):
    """Per coordinate: lB, t, |t|, eps (``coord`` rows) and ``exp(lB - c)`` (the ``_C_EXP``
    row), ``c = (max lB + min lB) / 2``; returns (base0, c, linear)."""
    lb, ts, ta, ep, ex = coord[_C_LB], coord[_C_TS], coord[_C_TA], coord[_C_EP], coord[_C_EXP]
    base0 = 0.0
    for d in range(24):
        base0 += L[d, 4]
        ex[d] = -abs(L[d, 6] - L[d, 2])
    vexp(ex, ex.shape[0])
    lo = np.inf
    hi = -np.inf
    for d in range(24):
        uu = ex[d]
        lb[d] = max(L[d, 6], L[d, 2]) - L[d, 4] + dlog(1.0 + uu)
        ta[d] = (1.0 - uu) / (1.0 + uu)
        ep[d] = 2.0 * uu / (1.0 + uu)
        ts[d] = ta[d] if L[d, 6] >= L[d, 2] else -ta[d]
        lo = min(lo, lb[d])
        hi = max(hi, lb[d])
    c = 0.5 * (hi + lo)
    for d in range(24):
        ex[d] = lb[d] - c  # |lB - c| <= 85: products of up to 8 lie within e^+-680
    vexp(ex, ex.shape[0])
    return base0, c, hi - lo <= B_LINEAR_SPREAD


@kernel()
def _shape_b(L, opat, w, coord, dp, grid, out) -> None:
    """Octad weights. ``dp`` as (block, pattern, 4): [P, prod t, prod |t|, D] with P the
    product of exp(lB - c) (linear path) or 1 (log path, where ``w`` first holds the sums)."""
    lb, ts, ta, ep, ex = coord[_C_LB], coord[_C_TS], coord[_C_TA], coord[_C_EP], coord[_C_EXP]
    tab = dp.reshape((3, 256, 4))
    base0, c, linear = _b_prep(L, coord)
    # Per 8-coordinate block, over all 256 patterns: products of exp(lB - c), t and |t|, and
    # D = 1 - prod |t| accumulated as D + prod|t| * eps (non-negative terms only).
    for k in range(3):
        tk = tab[k]
        tk[0, 0] = 1.0
        tk[0, 1] = 1.0
        tk[0, 2] = 1.0
        tk[0, 3] = 0.0
        size = 1
        for j in range(8):
            d = 8 * k + j
            e = ex[d] if linear else 1.0
            t = ts[d]
            a = ta[d]
            eps = ep[d]
            for p in range(size):
                q = p + size
                tk[q, 0] = tk[p, 0] * e
                tk[q, 1] = tk[p, 1] * t
                tk[q, 2] = tk[p, 2] * a
                tk[q, 3] = tk[p, 3] + tk[p, 2] * eps
            size *= 2
    if linear:
        for o in range(NUM_OCTADS):
            w[o] = _octad_weight(tab[0, opat[o, 0]], tab[1, opat[o, 1]], tab[2, opat[o, 2]])
        if _max(w, w.shape[0]) >= B_LINEAR_MIN_WEIGHT:
            out[2] = base0 + 8.0 * c
            out[3] = _sum(w, w.shape[0])
            return
        for k in range(3):
            for p in range(256):
                tab[k, p, 0] = 1.0
    # Log path: w = exp(sum lB - max) * f, with the block tables' P = 1 (f alone).
    sums = grid[3].reshape((3, 256))
    for k in range(3):
        _subset_sums(lb, 8 * k, sums[k])
    for o in range(NUM_OCTADS):
        w[o] = (sums[0, opat[o, 0]] + sums[1, opat[o, 1]]) + sums[2, opat[o, 2]]
    smax = _max(w, w.shape[0])
    for o in range(NUM_OCTADS):
        w[o] -= smax
    vexp(w, w.shape[0])
    for o in range(NUM_OCTADS):
        w[o] *= _octad_weight(tab[0, opat[o, 0]], tab[1, opat[o, 1]], tab[2, opat[o, 2]])
    out[2] = base0 + smax
    out[3] = _sum(w, w.shape[0])


@kernel()
def _b_prep_lanes(tables, job_t, job_m, n: int, lanes) -> None:
    """``_b_prep`` of 4 jobs at once (lanes past ``n`` repeat job 0), bit for bit: factors
    ``[exp(lB - c), t, |t|, eps]`` into ``fac[(q * 24 + d) * 4 + lane]``, and base0, c and the
    linear flag into ``info``."""
    fac, info = lanes.fac, lanes.info
    uu = info[3]  # 96 values, (d, lane)
    lb = info[4]
    for j in range(JOB_LANES):
        L = tables[job_t[j if j < n else 0], job_m[j if j < n else 0]]
        base0 = 0.0
        for d in range(24):
            base0 += L[d, 4]
            uu[d * 4 + j] = -abs(L[d, 6] - L[d, 2])
        info[0, j] = base0
    vexp(uu, uu.shape[0])
    for i in range(96):
        lb[i] = 1.0 + uu[i]
    vlog_normal(lb, lb.shape[0])
    for j in range(JOB_LANES):
        L = tables[job_t[j if j < n else 0], job_m[j if j < n else 0]]
        lo = np.inf
        hi = -np.inf
        for d in range(24):
            i = d * 4 + j
            u = uu[i]
            value = max(L[d, 6], L[d, 2]) - L[d, 4] + lb[i]
            lb[i] = value
            ta = (1.0 - u) / (1.0 + u)
            fac[(2 * 24 + d) * 4 + j] = ta
            fac[(3 * 24 + d) * 4 + j] = 2.0 * u / (1.0 + u)
            fac[(1 * 24 + d) * 4 + j] = ta if L[d, 6] >= L[d, 2] else -ta
            lo = min(lo, value)
            hi = max(hi, value)
        c = 0.5 * (hi + lo)
        info[1, j] = c
        info[2, j] = 1.0 if hi - lo <= B_LINEAR_SPREAD else 0.0
        for d in range(24):
            fac[d * 4 + j] = lb[d * 4 + j] - c
    vexp(fac, fac.shape[0] // 4)  # the e factors
    for j in range(JOB_LANES):
        if info[2, j] == 0.0:
            for d in range(24):
                fac[d * 4 + j] = 1.0  # the lane is redone by _shape_b: keep it finite


@kernel()
def _shape_b_lanes(tables, job_t, job_m, rows, n: int, opat, ws) -> None:
    """``_shape_b`` of up to 4 jobs (token ``job_t[j]``, component ``job_m[j]``) side by side:
    weights into ``ws.wb[rows[j]]``, shift and total into ``ws.comp[rows[j], 2:4]``.
    Bit-identical to ``_shape_b`` (the same operations per lane); lanes off the linear path run
    ``_shape_b``."""
    wb, comp, coord, dp, grid = ws.wb, ws.comp, ws.coord, ws.dp, ws.grid
    fac, tab, wl, info = ws.lanes
    _b_prep_lanes(tables, job_t, job_m, n, ws.lanes)
    base0, cs, linear = info[0], info[1], info[2]
    for k in range(3):
        first = k * 256 * 16
        for j in range(JOB_LANES):
            tab[first + j] = 1.0
            tab[first + 4 + j] = 1.0
            tab[first + 8 + j] = 1.0
            tab[first + 12 + j] = 0.0
        size = 1
        for i in range(8):
            d = 8 * k + i
            for p in range(size):
                octad_table_step(tab, fac, k * 256 + p, k * 256 + p + size, d)
            size *= 2
    for o in range(NUM_OCTADS):
        octad_weights(tab, wl, o, opat[o, 0], opat[o, 1], opat[o, 2])
    for j in range(n):
        w = wb[rows[j]]
        lane = wl[j * NUM_OCTADS : (j + 1) * NUM_OCTADS]
        if linear[j] > 0.0 and _max(lane, lane.shape[0]) >= B_LINEAR_MIN_WEIGHT:
            for o in range(NUM_OCTADS):
                w[o] = lane[o]
            comp[rows[j], 2] = base0[j] + 8.0 * cs[j]
            comp[rows[j], 3] = _sum(w, w.shape[0])
        else:
            _shape_b(tables[job_t[j], job_m[j]], opat, w, coord, dp, grid, comp[rows[j]])


@kernel()
def _c_fast(L, pat, w, coord, dp, grid, out) -> bool:
    """Product form through Turyn's blocks (weights in coder order, see :func:`_c_exact`);
    False when the largest weight is below ``FAST_MIN_WEIGHT``."""
    nu_row = coord[_C_NU]
    ex = coord[_C_EXP : _C_EXP + 4].reshape(96)
    nu_sum = 0.0
    gmax = -np.inf
    for d in range(24):
        nu = max(L[d, 5], L[d, 3])
        nu_row[d] = nu
        nu_sum += nu
        gmax = max(gmax, max(L[d, 1], L[d, 7]) - nu)
    gs = max(gmax, 0.0)  # every psi / max(phi) <= 1 after dividing by e^gs
    for d in range(24):
        nu = nu_row[d]
        ex[d] = L[d, 5] - nu
        ex[24 + d] = L[d, 3] - nu
        ex[48 + d] = (L[d, 1] - nu) - gs
        ex[72 + d] = (L[d, 7] - nu) - gs
    vexp(ex, ex.shape[0])
    for i in range(96):
        ex[i] = _flush(ex[i])
    phi, psi = dp[0], dp[1]
    for k in range(3):
        phi[0] = 1.0
        psi[0] = 0.0
        size = 1
        for j in range(8):
            d = 8 * k + j
            f0 = ex[d]
            f1 = ex[24 + d]
            g0 = ex[48 + d]
            g1 = ex[72 + d]
            for p in range(size):
                ph = phi[p]
                ps = psi[p]
                phi[p + size] = _flush(ph * f1)
                psi[p + size] = _flush(ps * f1 + ph * g1)
                phi[p] = _flush(ph * f0)
                psi[p] = _flush(ps * f0 + ph * g0)
            size *= 2
        for y in range(16):
            for x in range(16):
                grid[0, k, y, x] = phi[pat[x, y]]
                grid[1, k, y, x] = psi[pat[x, y]]
    acc = dp[2, :16]  # partial sums per x lane
    for x in range(16):
        acc[x] = 0.0
    flat = grid.reshape(3072)
    for a in range(16):
        for b in range(16):
            golay_word_block(flat, w, a, b, acc)
    total = _sum(acc, acc.shape[0])
    if total < FAST_MIN_WEIGHT:  # the largest word is >= total / 4096
        return False
    out[4] = nu_sum + gs
    out[5] = total
    return True


@kernel()
def _tier_tables(coord, shift: float, dp, pat, grid) -> None:
    """grid[2, k, y, x] = S over block k at this shift: sum of exp(r - shift), r clipped."""
    rp, rm, a, b = coord[_C_RP], coord[_C_RM], coord[_C_A], coord[_C_B]
    for d in range(24):
        a[d] = min(rp[d] - shift, 0.0)
        b[d] = min(rm[d] - shift, 0.0)
    vexp(a, a.shape[0])
    vexp(b, b.shape[0])
    for k in range(3):
        _subset_sums(a, 8 * k, dp[2])
        _subset_sums(b, 8 * k, dp[3])
        for y in range(16):
            for x in range(16):
                p = pat[x, y]
                grid[2, k, y, x] = dp[2][255 ^ p] + dp[3][p]


@kernel()
def _c_exact(L, pat, w, keys, pend, coord, dp, grid, out) -> None:
    """Golay word weights in coder order: word ``x * 256 + a * 16 + b`` (Turyn index) at
    ``a * 256 + b * 16 + x`` (see :func:`lqz.entropy.structure.golay_coder_order`)."""
    rp, rm, delta = coord[_C_RP], coord[_C_RM], coord[_C_DELTA]
    b1 = 0.0
    top_r = -np.inf
    for d in range(24):
        b1 += L[d, 5]
        rp[d] = L[d, 1] - L[d, 5]
        rm[d] = L[d, 7] - L[d, 3]
        delta[d] = L[d, 3] - L[d, 5]
        top_r = max(top_r, rp[d], rm[d])
    for k in range(3):
        _subset_sums(delta, 8 * k, dp[4])
        for y in range(16):
            for x in range(16):
                grid[3, k, y, x] = dp[4][pat[x, y]]
    shift = top_r
    _tier_tables(coord, shift, dp, pat, grid)
    n_pend = 0
    for a in range(16):
        for b in range(16):
            ab = a ^ b
            for x in range(16):
                t = a * 256 + b * 16 + x
                s = grid[2, 0, a, x] + grid[2, 1, b, x] + grid[2, 2, ab, x]
                if s >= THETA:
                    keys[t] = grid[3, 0, a, x] + grid[3, 1, b, x] + grid[3, 2, ab, x] + shift
                    w[t] = s
                else:
                    pend[n_pend] = t
                    n_pend += 1
    tier = 0
    while n_pend > 0:
        tier += 1
        shift -= TIER
        _tier_tables(coord, shift, dp, pat, grid)
        n_next = 0
        for q in range(n_pend):
            t = pend[q]
            a = t // 256
            b = (t // 16) % 16
            x = t % 16
            ab = a ^ b
            s = grid[2, 0, a, x] + grid[2, 1, b, x] + grid[2, 2, ab, x]
            if s >= THETA or tier >= LAST_TIER:
                keys[t] = grid[3, 0, a, x] + grid[3, 1, b, x] + grid[3, 2, ab, x] + shift
                w[t] = s
            else:
                pend[n_next] = t
                n_next += 1
        n_pend = n_next
    top = _max(keys, keys.shape[0])
    for t in range(NUM_GOLAY):
        e = keys[t] - top
        keys[t] = e if e >= KEY_FLUSH else -1000.0
    vexp(keys, keys.shape[0])
    for t in range(NUM_GOLAY):
        w[t] = keys[t] * w[t]
    out[4] = b1 + top
    out[5] = _sum(w, w.shape[0])


class LaneScratch(NamedTuple):
    """Scratch of :func:`_shape_b_lanes` (``JOB_LANES`` jobs side by side, lane innermost)."""

    fac: np.ndarray  # (4 * 24 * JOB_LANES,): factors [e, t, |t|, eps] per coordinate
    tab: np.ndarray  # (3 * 256 * 4 * JOB_LANES,): block tables [P, T, A, D] per pattern
    weights: np.ndarray  # (JOB_LANES * NUM_OCTADS,): octad weights, a row per lane
    info: np.ndarray  # (5, 24 * JOB_LANES): base0, c, linear flag; scratch for 96 values


class Workspace(NamedTuple):
    """Scratch arrays of one work item (up to ``ITEM_TOKENS`` tokens, ``M`` components). ``wb``
    and ``comp`` have a row per job (token ``i`` of the item, component ``m``: row
    ``i * M + m``); ``wa`` and ``wc`` a row per component of the current token."""

    wa: np.ndarray  # (M, NUM_PAIRS): A weights
    wb: np.ndarray  # (ITEM_TOKENS * M, NUM_OCTADS): B weights
    wc: np.ndarray  # (M, NUM_GOLAY): C weights
    comp: np.ndarray  # (ITEM_TOKENS * M, 6): log shift and total of each shape's weights
    keys: np.ndarray  # (NUM_GOLAY,): exact C path, log weights
    pend: np.ndarray  # (NUM_GOLAY,) int64: exact C path, words not yet resolved
    coord: np.ndarray  # (_COORD_ROWS, 24): per-coordinate rows (_C_LA ...)
    dp: np.ndarray  # (12, 256): per-block tables over 8-bit patterns
    grid: np.ndarray  # (4, 3, 16, 16): C tables by Turyn block, row, column
    tmp: np.ndarray  # (2 * M + 8,): small per-token values
    detail: np.ndarray  # (M, DETAIL_MAX): detail pmf scratch
    lanes: LaneScratch
    jobs: np.ndarray  # (3, JOB_LANES) int64: token, component and row of each lane's job


@kernel()
def _workspace(m_count: int) -> Workspace:
    """A :class:`Workspace` for tokens with ``m_count`` components."""
    return Workspace(
        np.empty((m_count, NUM_PAIRS)),
        np.empty((ITEM_TOKENS * m_count, NUM_OCTADS)),
        np.empty((m_count, NUM_GOLAY)),
        np.empty((ITEM_TOKENS * m_count, 6)),
        np.empty(NUM_GOLAY),
        np.empty(NUM_GOLAY, dtype=np.int64),
        np.empty((_COORD_ROWS, 24)),
        np.empty((12, 256)),
        np.empty((4, 3, 16, 16)),
        np.empty(2 * m_count + 8),
        np.empty((m_count, DETAIL_MAX)),
        LaneScratch(
            np.empty(4 * 24 * JOB_LANES),
            np.empty(3 * 256 * 4 * JOB_LANES),
            np.empty(JOB_LANES * NUM_OCTADS),
            np.empty((5, 24 * JOB_LANES)),
        ),
        np.empty((3, JOB_LANES), dtype=np.int64),
    )


@kernel()
def _log_weights(logits, log_pi) -> None:
    lse = _logsumexp(logits, logits.shape[0])
    for m in range(logits.shape[0]):
        log_pi[m] = logits[m] - lse


@kernel()
def _b_jobs(tables, t0: int, t1: int, shape, opat, ws) -> None:
    """Octad weights of every component of tokens ``t0:t1`` (only those with ``shape[t] == 1``
    when ``shape`` is not empty), 4 jobs at a time, into the job rows of ``ws``."""
    jobs = ws.jobs
    m_count = tables.shape[1]
    n = 0
    for t in range(t0, t1):
        if shape.shape[0] and shape[t] != 1:
            continue
        for m in range(m_count):
            jobs[0, n] = t
            jobs[1, n] = m
            jobs[2, n] = (t - t0) * m_count + m
            n += 1
            if n == JOB_LANES:
                _shape_b_lanes(tables, jobs[0], jobs[1], jobs[2], np.int64(n), opat, ws)
                n = 0
    if n:
        _shape_b_lanes(tables, jobs[0], jobs[1], jobs[2], np.int64(n), opat, ws)


@kernel()
def _shape_c(Lm, pat, m: int, comp_row, ws) -> None:
    """Golay word weights of component ``m`` into ``ws``; shift and total into
    ``comp_row[4:6]``. Deterministic, whatever ``ws`` held."""
    wc, keys, pend, coord, dp, grid = ws.wc, ws.keys, ws.pend, ws.coord, ws.dp, ws.grid
    if not _c_fast(Lm, pat, wc[m], coord, dp, grid, comp_row):
        _c_exact(Lm, pat, wc[m], keys, pend, coord, dp, grid, comp_row)


@kernel()
def _components(L, logits, i: int, pairs, pat, shape_p, log_z, log_pi, ws) -> None:
    """Token ``i`` of the work item (its B weights already in the job rows): A and C weights
    of every component (in ``ws``), log Z, log weights; the mixture's shape pmf."""
    wa, comp, coord, tmp = ws.wa, ws.comp, ws.coord, ws.tmp
    m_count = L.shape[0]
    _log_weights(logits, log_pi)
    for m in range(m_count):
        row = comp[i * m_count + m]
        _shape_a(L[m], pairs, wa[m], coord, row)
        _shape_c(L[m], pat, m, row, ws)
        # log Z: logsumexp of the three shapes' log totals, in a fixed order
        for s in range(3):
            tmp[s] = row[2 * s] + dlog(row[2 * s + 1])
        top = max(max(tmp[0], tmp[1]), tmp[2])
        if top == -np.inf:
            log_z[m] = -np.inf
        else:
            acc = 0.0
            for s in range(3):
                acc += dexp(tmp[s] - top)
            log_z[m] = top + dlog(acc)
    for s in range(3):
        acc = 0.0
        for m in range(m_count):
            row = comp[i * m_count + m]
            acc += dexp(log_pi[m] + row[2 * s] + dlog(row[2 * s + 1]) - log_z[m])
        shape_p[s] = acc
    total = shape_p[0] + shape_p[1] + shape_p[2]
    for s in range(3):
        shape_p[s] = shape_p[s] / total


@kernel()
def _mix_support(s: int, i: int, log_z, log_pi, ws, q) -> float:
    """q = the support weights of shape ``s`` of token ``i`` of the work item mixed over the
    components (unnormalized, the largest component scaled by 1); returns their total."""
    wa, wb, wc, comp, tmp = ws.wa, ws.wb, ws.wc, ws.comp, ws.tmp
    m_count = log_z.shape[0]
    coef = tmp[3 : 3 + m_count]
    top = -np.inf
    for m in range(m_count):
        coef[m] = log_pi[m] + comp[i * m_count + m, 2 * s] - log_z[m]
        top = max(top, coef[m])
    total = 0.0
    for m in range(m_count):
        coef[m] = dexp(coef[m] - top)
        total += coef[m] * comp[i * m_count + m, 2 * s + 1]
    w = wa if s == 0 else (wb[i * m_count : (i + 1) * m_count] if s == 1 else wc)
    size = w.shape[1]
    c = coef[0]
    w0 = w[0]
    for u in range(size):
        q[u] = c * w0[u]  # 0 + c w0 in the sum order below: the same bits
    for m in range(1, m_count):
        c = coef[m]
        if c > 0.0:
            wm = w[m]
            for u in range(size):
                q[u] += c * wm[u]
    return total


@kernel()
def _detail_a(L, i: int, j: int, x) -> None:
    base0 = 0.0
    for d in range(24):
        base0 += L[d, 4]
    base0 -= L[i, 4] + L[j, 4]
    for s in range(4):
        x[s] = base0 + L[i, 0 if s & 1 else 8] + L[j, 0 if s & 2 else 8]


@kernel()
def _detail_b(L, coords, x) -> None:
    """x[s] for the 128 sign patterns s (bit k: coordinate k negative; the 8th by parity).

    Every value is an exact sum of grid values (any order gives the same bits)."""
    base = 0.0
    for d in range(24):
        base += L[d, 4]
    for k in range(8):
        base += L[coords[k], 6] - L[coords[k], 4]
    c7 = coords[7]
    flip7 = L[c7, 2] - L[c7, 6]
    # x[s] with the 8th sign positive, by doubling; odd patterns then flip the 8th sign.
    x[0] = base
    size = 1
    for k in range(7):
        c = coords[k]
        step = L[c, 2] - L[c, 6]
        for p in range(size):
            x[p + size] = x[p] + step
        size *= 2
    for s in range(128):
        if (0x6996 >> ((s ^ (s >> 4)) & 15)) & 1:  # odd number of bits
            x[s] += flip7


@kernel()
def _detail_c(L, c, x) -> None:
    base = 0.0
    for d in range(24):
        base += L[d, 3] if c[d] else L[d, 5]
    for p in range(24):
        x[p] = base + ((L[p, 7] - L[p, 3]) if c[p] else (L[p, 1] - L[p, 5]))


@kernel()
def _detail(shape: int, L, log_pi, log_z, u: int, pairs, octads, golay, out, x) -> None:
    """Normalized detail pmf of a token of ``shape`` with support ``u`` (into ``out``;
    ``x``: (M, DETAIL_MAX) scratch)."""
    m_count = L.shape[0]
    size = out.shape[0]
    for m in range(m_count):
        if shape == 0:
            _detail_a(L[m], pairs[u, 0], pairs[u, 1], x[m])
        elif shape == 1:
            _detail_b(L[m], octads[u], x[m])
        else:
            _detail_c(L[m], golay[u], x[m])
    top = -np.inf
    for m in range(m_count):
        shift = log_pi[m] - log_z[m]
        xm = x[m]
        for d in range(size):
            xm[d] += shift
            top = xm[d] if xm[d] > top else top
    for m in range(m_count):
        xm = x[m]
        for d in range(size):
            xm[d] -= top
        vexp(xm, size)
    for d in range(size):
        out[d] = x[0, d]
    for m in range(1, m_count):
        xm = x[m]
        for d in range(size):
            out[d] += xm[d]
    total = _sum(out, size)
    for d in range(size):
        out[d] = out[d] / total


_ALL = np.empty(0, dtype=np.int64)  # "every token" for _b_jobs


@kernel(parallel=True)
def summary_kernel(tables, logits, pairs, opat, pat, shape_p, qa, qb, qc, q_total, log_z, log_pi):
    """Per token: shape pmf, the three unnormalized support pmfs and their totals, per-component
    log Z and log mixture weights."""
    n = tables.shape[0]
    m_count = tables.shape[1]
    for c in prange((n + ITEM_TOKENS - 1) // ITEM_TOKENS):
        ws = _workspace(m_count)
        t0 = c * ITEM_TOKENS
        t1 = min(n, t0 + ITEM_TOKENS)
        _b_jobs(tables, t0, t1, _ALL, opat, ws)
        for t in range(t0, t1):
            i = t - t0
            _components(tables[t], logits[t], i, pairs, pat, shape_p[t], log_z[t], log_pi[t], ws)
            for s in range(3):
                q = qa[t] if s == 0 else (qb[t] if s == 1 else qc[t])
                q_total[t, s] = _mix_support(s, i, log_z[t], log_pi[t], ws, q)


@kernel()
def _kept(ws, keep_a, keep_b, keep_c, keep_comp, c: int, t: int):
    """``ws`` with its weight arrays replaced by the kept ones of work item ``c``, token ``t``
    (the same types: the same compiled functions run on them)."""
    return Workspace(
        keep_a[t],
        keep_b[c],
        keep_c[t],
        keep_comp[c],
        ws.keys,
        ws.pend,
        ws.coord,
        ws.dp,
        ws.grid,
        ws.tmp,
        ws.detail,
        ws.lanes,
        ws.jobs,
    )


@kernel(parallel=True)
def shape_keep_kernel(
    tables, logits, pairs, opat, pat, shape_p, log_z, log_pi, keep_a, keep_b, keep_c, keep_comp
):  # fmt: skip
    """The decoder's first pass over up to ``keep_a.shape[0]`` tokens: shape pmfs, log Z and
    log weights, keeping every component's support weights (token ``t``'s A and C weights in
    ``keep_a[t]``, ``keep_c[t]``; B weights, shifts and totals in the rows of its work item
    ``keep_b[t // ITEM_TOKENS]``, ``keep_comp[t // ITEM_TOKENS]``) for
    :func:`kept_support_kernel`."""
    n = tables.shape[0]
    m_count = tables.shape[1]
    for c in prange((n + ITEM_TOKENS - 1) // ITEM_TOKENS):
        t0 = c * ITEM_TOKENS
        t1 = min(n, t0 + ITEM_TOKENS)
        ws = _kept(_workspace(m_count), keep_a, keep_b, keep_c, keep_comp, np.int64(c), t0)
        _b_jobs(tables, t0, t1, _ALL, opat, ws)
        for t in range(t0, t1):
            wt = _kept(ws, keep_a, keep_b, keep_c, keep_comp, np.int64(c), t)
            _components(
                tables[t], logits[t], t - t0, pairs, pat, shape_p[t], log_z[t], log_pi[t], wt
            )


@kernel(parallel=True)
def kept_support_kernel(
    log_z, log_pi, shape, counts, keep_a, keep_b, keep_c, keep_comp, qa, qb, qc, q_total
):  # fmt: skip
    """The support pmf of each token's decoded shape ``shape[t]`` from the weights kept by
    :func:`shape_keep_kernel`, into the next row of ``qa|qb|qc`` (``counts[s]``: rows of shape
    ``s`` used so far, updated); its total into ``q_total[t]``. Bit-identical to
    :func:`encode_kernel`'s and :func:`summary_kernel`'s rows."""
    n = shape.shape[0]
    m_count = log_z.shape[1]
    row = np.empty(n, dtype=np.int64)
    for t in range(n):
        s = shape[t]
        row[t] = counts[s]
        counts[s] += 1
    for c in prange((n + ITEM_TOKENS - 1) // ITEM_TOKENS):
        ws = _workspace(m_count)
        for t in range(c * ITEM_TOKENS, min(n, (c + 1) * ITEM_TOKENS)):
            wt = _kept(ws, keep_a, keep_b, keep_c, keep_comp, np.int64(c), t)
            s = shape[t]
            q = qa[row[t]] if s == 0 else (qb[row[t]] if s == 1 else qc[row[t]])
            q_total[t] = _mix_support(s, t - c * ITEM_TOKENS, log_z[t], log_pi[t], wt, q)


@kernel(parallel=True)
def details_kernel(tables, log_pi, log_z, pairs, octads, golay, shape, support, row, da, db, dc):
    """Detail pmf of every token given its shape and support, into row ``row[t]`` of
    ``da|db|dc``."""
    n = tables.shape[0]
    m_count = tables.shape[1]
    for c in prange((n + DETAIL_ITEM_TOKENS - 1) // DETAIL_ITEM_TOKENS):
        x = np.empty((m_count, DETAIL_MAX))
        for t in range(c * DETAIL_ITEM_TOKENS, min(n, (c + 1) * DETAIL_ITEM_TOKENS)):
            s = shape[t]
            out = da[row[t]] if s == 0 else (db[row[t]] if s == 1 else dc[row[t]])
            _detail(s, tables[t], log_pi[t], log_z[t], support[t], pairs, octads, golay, out, x)


@kernel(parallel=True)
def encode_kernel(
    tables, logits, pairs, opat, pat, octads, golay, shape, support, row,
    shape_p, qa, qb, qc, da, db, dc, q_total,
):  # fmt: skip
    """The encoder's pass: shape pmfs of all tokens; for token ``t`` of shape ``s = shape[t]``
    its support pmf (as :func:`summary_kernel`) and its detail pmf given ``support[t]`` (as
    :func:`details_kernel`), in row ``row[t]`` of ``qa|qb|qc`` and ``da|db|dc``; ``q_total[t]``:
    the total of its support pmf."""
    n = tables.shape[0]
    m_count = tables.shape[1]
    for c in prange((n + ITEM_TOKENS - 1) // ITEM_TOKENS):
        ws = _workspace(m_count)
        x = ws.detail
        log_z = np.empty(m_count)
        log_pi = np.empty(m_count)
        t0 = c * ITEM_TOKENS
        t1 = min(n, t0 + ITEM_TOKENS)
        _b_jobs(tables, t0, t1, _ALL, opat, ws)
        for t in range(t0, t1):
            L = tables[t]
            _components(L, logits[t], t - t0, pairs, pat, shape_p[t], log_z, log_pi, ws)
            s = shape[t]
            r = row[t]
            q = qa[r] if s == 0 else (qb[r] if s == 1 else qc[r])
            d = da[r] if s == 0 else (db[r] if s == 1 else dc[r])
            q_total[t] = _mix_support(s, t - t0, log_z, log_pi, ws, q)
            _detail(s, L, log_pi, log_z, support[t], pairs, octads, golay, d, x)
