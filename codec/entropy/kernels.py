"""Numba kernels for the exact sub-symbol pmfs on the coding grid (see :mod:`.params`).

Tables are ``L[d, k]`` with value column ``k = a + 4``; rows are max-normalized and lie in
[-512, 0] (the kernels rely on that range). Every loop runs in a fixed order and uses only
:mod:`.detmath` for ``exp``/``log``, so results depend on the inputs alone, never on threads
(tokens are independent; ``prange`` only distributes whole tokens).

Per component, the weights of each shape's supports are kept as linear values ``w`` relative
to a log shift ``sh`` (``W = exp(sh) * w``). Below, ``L[d, a]`` is indexed by the value ``a`` and
``base0 = sum_d L[d, 0]``:

- A, pair ``(i, j)``: ``base0 + lA_i + lA_j`` with ``lA_i = logaddexp(L[i,4], L[i,-4]) - L[i,0]``.
- B, octad ``O``: ``base0 + sum_{i in O} lB_i + log f_O``, ``lB_i = logaddexp(L[i,2], L[i,-2]) -
  L[i,0]``; ``f_O = (1 + prod t_i) / 2`` (even parity, ``t_i = tanh((L[i,2] - L[i,-2]) / 2)``),
  or, where that cancels (``prod t_i < -1/2``), ``f_O = D / 2`` with ``D = 1 - prod |t_i|``
  built from non-negative terms only (``D' = D + prod|t| * eps`` per added coordinate,
  ``eps = 1 - |t| = 2 / (1 + e^|y|)``). Octad sums and products come from per-block tables over
  the 256 patterns of each 8-coordinate block.
- C, Golay word ``c``: ``sum_i prod_{j != i} phi_j(c_j) psi_i(c_i)`` with ``phi_j = exp L[j, +-1]``,
  ``psi_i = exp L[i, -+3]``. Fast path: per 8-coordinate block, tables over the 256 patterns of
  ``Phi = prod phi`` and ``Psi = sum_i psi_i prod_{j != i} phi_j`` (normalized per coordinate by
  ``max phi``), combined per word through Turyn's form; taken when its range checks pass.
  Exact path otherwise: ``exp(c.delta + log S(c))`` with ``S(c) = sum_i exp(r_i(c_i))`` summed in
  tiers of 300 nats (a word is evaluated at the first tier where ``S >= e^-300``).

Below about ``1e-30`` of the largest weight of a shape, values may be flushed to 0 (never NaN);
the range coder's leaky quantization still gives every symbol a nonzero probability.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .detmath import dexp, dlog, vexp

_JIT = dict(nogil=True, cache=True)
_PJIT = dict(parallel=True, cache=True)

NUM_PAIRS = 276
NUM_OCTADS = 759
NUM_GOLAY = 4096

FLUSH = 1e-100  # fast path: table entries below this become 0 (keeps products normal)
FAST_PSI_MAX = 100.0  # fast path needs every psi / max(phi) <= e^100
FAST_MIN_WEIGHT = 1e-20  # ... and the largest word weight >= this (else: exact path)
TIER = 300.0
THETA = 5.148200222412013e-131  # e^-300: a word is resolved at a tier once S >= THETA
LAST_TIER = 3  # r spans at most 1024 nats on the grid: 4 tiers reach every word
KEY_FLUSH = -400.0  # exact path: exp(key - max key) below e^-400 is flushed (no subnormals)
CHUNK = 8  # tokens per parallel work item


@numba.njit(**_JIT)
def _flush(v: float) -> float:
    return v if v >= FLUSH else 0.0


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
def _max(x, n: int) -> float:
    """Maximum of x[:n] (n >= 1), 4 interleaved partial maxima."""
    a0 = a1 = a2 = a3 = x[0]
    m = n - n % 4
    for i in range(0, m, 4):
        a0 = max(a0, x[i])
        a1 = max(a1, x[i + 1])
        a2 = max(a2, x[i + 2])
        a3 = max(a3, x[i + 3])
    for i in range(m, n):
        a0 = max(a0, x[i])
    return max(max(a0, a1), max(a2, a3))


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
def _shape_a(L, pairs, w, scr, coord, out) -> None:
    la = coord[0]
    base0 = 0.0
    for d in range(24):
        base0 += L[d, 4]
    for d in range(24):
        hi = max(L[d, 8], L[d, 0])
        lo = min(L[d, 8], L[d, 0])
        la[d] = hi - L[d, 4] + dlog(1.0 + dexp(lo - hi))
    i1 = 0
    for d in range(1, 24):
        if la[d] > la[i1]:
            i1 = d
    top2 = -np.inf
    for d in range(24):
        if d != i1:
            top2 = max(top2, la[d])
    top = la[i1] + top2
    for u in range(NUM_PAIRS):
        w[u] = la[pairs[u, 0]] + la[pairs[u, 1]] - top
    vexp(w, NUM_PAIRS, scr)
    out[0] = base0 + top
    out[1] = _sum(w, NUM_PAIRS)


@numba.njit(**_JIT)
def _shape_b(L, opat, w, f, scr, coord, dp, out) -> None:
    lb, ts, ta, ep = coord[1], coord[2], coord[3], coord[4]
    base0 = 0.0
    for d in range(24):
        base0 += L[d, 4]
    for d in range(24):
        y = L[d, 6] - L[d, 2]
        uu = dexp(-abs(y))
        lb[d] = max(L[d, 6], L[d, 2]) - L[d, 4] + dlog(1.0 + uu)
        ta[d] = (1.0 - uu) / (1.0 + uu)
        ep[d] = 2.0 * uu / (1.0 + uu)
        ts[d] = ta[d] if y >= 0.0 else -ta[d]
    # Per 8-coordinate block, over all 256 patterns: subset sums of lb, products of t and |t|,
    # and D = 1 - prod |t| accumulated as D + prod|t| * eps (non-negative terms only).
    for k in range(3):
        sums, prods, pabs, dd = dp[k], dp[k + 3], dp[k + 6], dp[k + 9]
        sums[0] = 0.0
        prods[0] = 1.0
        pabs[0] = 1.0
        dd[0] = 0.0
        size = 1
        for j in range(8):
            d = 8 * k + j
            for p in range(size):
                sums[p + size] = sums[p] + lb[d]
                prods[p + size] = prods[p] * ts[d]
                pabs[p + size] = pabs[p] * ta[d]
                dd[p + size] = dd[p] + pabs[p] * ep[d]
            size *= 2
    for o in range(NUM_OCTADS):
        p0 = opat[o, 0]
        p1 = opat[o, 1]
        p2 = opat[o, 2]
        w[o] = (dp[0, p0] + dp[1, p1]) + dp[2, p2]
        p = (dp[3, p0] * dp[4, p1]) * dp[5, p2]
        d = dp[9, p0] + dp[6, p0] * (dp[10, p1] + dp[7, p1] * dp[11, p2])
        f[o] = 0.5 * (1.0 + p) if p >= -0.5 else 0.5 * d
    smax = _max(w, NUM_OCTADS)
    for o in range(NUM_OCTADS):
        w[o] -= smax
    vexp(w, NUM_OCTADS, scr)
    for o in range(NUM_OCTADS):
        w[o] *= f[o]
    out[2] = base0 + smax
    out[3] = _sum(w, NUM_OCTADS)


@numba.njit(**_JIT)
def _c_fast(L, pat, w, coord, dp, grid, out) -> bool:
    """Product form through Turyn's blocks; False when its range checks fail."""
    f0, f1, g0, g1 = coord[5], coord[6], coord[7], coord[8]
    nu_sum = 0.0
    for d in range(24):
        nu = max(L[d, 5], L[d, 3])
        if max(L[d, 1], L[d, 7]) - nu > FAST_PSI_MAX:
            return False
        nu_sum += nu
        f0[d] = _flush(dexp(L[d, 5] - nu))
        f1[d] = _flush(dexp(L[d, 3] - nu))
        g0[d] = _flush(dexp(L[d, 1] - nu))
        g1[d] = _flush(dexp(L[d, 7] - nu))
    phi, psi = dp[0], dp[1]
    for k in range(3):
        phi[0] = 1.0
        psi[0] = 0.0
        size = 1
        for j in range(8):
            d = 8 * k + j
            for p in range(size):
                ph = phi[p]
                ps = psi[p]
                phi[p + size] = _flush(ph * f1[d])
                psi[p + size] = _flush(ps * f1[d] + ph * g1[d])
                phi[p] = _flush(ph * f0[d])
                psi[p] = _flush(ps * f0[d] + ph * g0[d])
            size *= 2
        for x in range(16):
            for y in range(16):
                grid[0, k, x, y] = phi[pat[x, y]]
                grid[1, k, x, y] = psi[pat[x, y]]
    for x in range(16):
        for a in range(16):
            fa = grid[0, 0, x, a]
            ga = grid[1, 0, x, a]
            for b in range(16):
                ab = a ^ b
                fb = grid[0, 1, x, b]
                gb = grid[1, 1, x, b]
                fc = grid[0, 2, x, ab]
                gc = grid[1, 2, x, ab]
                w[x * 256 + a * 16 + b] = ga * (fb * fc) + fa * (gb * fc + fb * gc)
    if _max(w, NUM_GOLAY) < FAST_MIN_WEIGHT:
        return False
    total = _sum(w, NUM_GOLAY)
    out[4] = nu_sum
    out[5] = total
    return True


@numba.njit(**_JIT)
def _subset_sums(values, base: int, table) -> None:
    """table[p] = sum of values[base + j] over the set bits j of the 8-bit pattern p."""
    table[0] = 0.0
    size = 1
    for j in range(8):
        v = values[base + j]
        for p in range(size):
            table[p + size] = table[p] + v
        size *= 2


@numba.njit(**_JIT)
def _tier_tables(coord, shift: float, dp, pat, grid) -> None:
    """grid[2, k] = S over block k at this shift: sum of exp(r - shift), r clipped at shift."""
    rp, rm, a, b = coord[9], coord[10], coord[11], coord[12]
    for d in range(24):
        a[d] = dexp(min(rp[d] - shift, 0.0))
        b[d] = dexp(min(rm[d] - shift, 0.0))
    for k in range(3):
        _subset_sums(a, 8 * k, dp[2])
        _subset_sums(b, 8 * k, dp[3])
        for x in range(16):
            for y in range(16):
                p = pat[x, y]
                grid[2, k, x, y] = dp[2][255 ^ p] + dp[3][p]


@numba.njit(**_JIT)
def _c_exact(L, pat, w, scr, keys, pend, coord, dp, grid, out) -> None:
    rp, rm, delta = coord[9], coord[10], coord[13]
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
        for x in range(16):
            for y in range(16):
                grid[3, k, x, y] = dp[4][pat[x, y]]
    shift = top_r
    _tier_tables(coord, shift, dp, pat, grid)
    n_pend = 0
    for x in range(16):
        for a in range(16):
            for b in range(16):
                ab = a ^ b
                t = x * 256 + a * 16 + b
                s = grid[2, 0, x, a] + grid[2, 1, x, b] + grid[2, 2, x, ab]
                if s >= THETA:
                    keys[t] = grid[3, 0, x, a] + grid[3, 1, x, b] + grid[3, 2, x, ab] + shift
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
            x = t // 256
            a = (t // 16) % 16
            b = t % 16
            ab = a ^ b
            s = grid[2, 0, x, a] + grid[2, 1, x, b] + grid[2, 2, x, ab]
            if s >= THETA or tier >= LAST_TIER:
                keys[t] = grid[3, 0, x, a] + grid[3, 1, x, b] + grid[3, 2, x, ab] + shift
                w[t] = s
            else:
                pend[n_next] = t
                n_next += 1
        n_pend = n_next
    top = _max(keys, NUM_GOLAY)
    for t in range(NUM_GOLAY):
        e = keys[t] - top
        keys[t] = e if e >= KEY_FLUSH else -1000.0
    vexp(keys, NUM_GOLAY, scr)
    for t in range(NUM_GOLAY):
        w[t] = keys[t] * w[t]
    out[4] = b1 + top
    out[5] = _sum(w, NUM_GOLAY)


@numba.njit(**_JIT)
def _mix_support(w, coef, m_count: int, size: int, q) -> None:
    """q[:size] = sum_m coef[m] * w[m, :size] (unnormalized)."""
    for u in range(size):
        q[u] = 0.0
    for m in range(m_count):
        c = coef[m]
        if c > 0.0:
            for u in range(size):
                q[u] += c * w[m, u]


@numba.njit(**_JIT)
def _log_weights(logits, log_pi) -> None:
    lse = _logsumexp(logits, logits.shape[0])
    for m in range(logits.shape[0]):
        log_pi[m] = logits[m] - lse


@numba.njit(**_JIT)
def _token(L, logits, pairs, opat, pat, shape_p, qa, qb, qc, q_total, log_z, log_pi, ws):
    wa, wb, wc, comp, scr, keys, pend, coord, dp, grid, fb, tmp = ws
    m_count = L.shape[0]
    single = m_count == 1  # one component: weights go straight into the outputs
    _log_weights(logits, log_pi)
    for m in range(m_count):
        Lm = L[m]
        _shape_a(Lm, pairs, qa if single else wa[m], scr, coord, comp[m])
        _shape_b(Lm, opat, qb if single else wb[m], fb, scr, coord, dp, comp[m])
        w = qc if single else wc[m]
        if not _c_fast(Lm, pat, w, coord, dp, grid, comp[m]):
            _c_exact(Lm, pat, w, scr, keys, pend, coord, dp, grid, comp[m])
        for s in range(3):
            tmp[s] = comp[m, 2 * s] + dlog(comp[m, 2 * s + 1])
        log_z[m] = _logsumexp(tmp, 3)
    for s in range(3):
        acc = 0.0
        for m in range(m_count):
            acc += dexp(log_pi[m] + comp[m, 2 * s] + dlog(comp[m, 2 * s + 1]) - log_z[m])
        shape_p[s] = acc
    total = shape_p[0] + shape_p[1] + shape_p[2]
    for s in range(3):
        shape_p[s] = shape_p[s] / total
    if single:
        for s in range(3):
            q_total[s] = comp[0, 2 * s + 1]
        return
    coef = tmp[3:]
    for s in range(3):
        top = -np.inf
        for m in range(m_count):
            coef[m] = log_pi[m] + comp[m, 2 * s] - log_z[m]
            top = max(top, coef[m])
        acc = 0.0
        for m in range(m_count):
            coef[m] = dexp(coef[m] - top)
            acc += coef[m] * comp[m, 2 * s + 1]
        q_total[s] = acc
        if s == 0:
            _mix_support(wa, coef, m_count, NUM_PAIRS, qa)
        elif s == 1:
            _mix_support(wb, coef, m_count, NUM_OCTADS, qb)
        else:
            _mix_support(wc, coef, m_count, NUM_GOLAY, qc)


@numba.njit(**_JIT)
def _workspace(m_count: int):
    return (
        np.empty((m_count, NUM_PAIRS)),
        np.empty((m_count, NUM_OCTADS)),
        np.empty((m_count, NUM_GOLAY)),
        np.empty((m_count, 6)),
        np.empty(NUM_GOLAY),
        np.empty(NUM_GOLAY),
        np.empty(NUM_GOLAY, dtype=np.int64),
        np.empty((14, 24)),
        np.empty((12, 256)),
        np.empty((4, 3, 16, 16)),
        np.empty(NUM_OCTADS),
        np.empty(3 + m_count),
    )


@numba.njit(**_PJIT)
def summary_kernel(tables, logits, pairs, opat, pat, shape_p, qa, qb, qc, q_total, log_z, log_pi):
    """Per token: shape pmf, the three unnormalized support pmfs and their totals, per-component
    log Z and log mixture weights."""
    n = tables.shape[0]
    m_count = tables.shape[1]
    for c in prange((n + CHUNK - 1) // CHUNK):
        ws = _workspace(m_count)
        for t in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            _token(
                tables[t],
                logits[t],
                pairs,
                opat,
                pat,
                shape_p[t],
                qa[t],
                qb[t],
                qc[t],
                q_total[t],
                log_z[t],
                log_pi[t],
                ws,
            )


@numba.njit(**_JIT)
def _finish_detail(x, log_pi, log_z, size: int, out, v, scr) -> None:
    """out[:size] = normalized sum_m pi_m exp(x[m, :size] - log Z_m) (x: log joint weights)."""
    m_count = x.shape[0]
    if m_count == 1:
        for d in range(size):
            v[d] = x[0, d]
    else:
        lj = scr[:m_count]
        for d in range(size):
            for m in range(m_count):
                lj[m] = log_pi[m] - log_z[m] + x[m, d]
            v[d] = _logsumexp(lj, m_count)
    top = _max(v, size)
    for d in range(size):
        v[d] -= top
    vexp(v, size, scr)
    total = _sum(v, size)
    for d in range(size):
        out[d] = v[d] / total


@numba.njit(**_JIT)
def _detail_a(L, i: int, j: int, x) -> None:
    base0 = 0.0
    for d in range(24):
        base0 += L[d, 4]
    base0 -= L[i, 4] + L[j, 4]
    for s in range(4):
        x[s] = base0 + L[i, 0 if s & 1 else 8] + L[j, 0 if s & 2 else 8]


@numba.njit(**_JIT)
def _detail_b(L, coords, x, pos, neg) -> None:
    base = 0.0
    for d in range(24):
        base += L[d, 4]
    for k in range(8):
        base -= L[coords[k], 4]
        pos[k] = L[coords[k], 6]
        neg[k] = L[coords[k], 2]
    for s in range(128):
        lw = base
        parity = 0
        for k in range(7):
            bit = (s >> k) & 1
            parity ^= bit
            lw += neg[k] if bit else pos[k]
        x[s] = lw + (neg[7] if parity else pos[7])


@numba.njit(**_JIT)
def _detail_c(L, c, x) -> None:
    base = 0.0
    for d in range(24):
        base += L[d, 3] if c[d] else L[d, 5]
    for p in range(24):
        x[p] = base + ((L[p, 7] - L[p, 3]) if c[p] else (L[p, 1] - L[p, 5]))


@numba.njit(**_PJIT)
def detail_kernel(shape: int, tables, log_pi, log_z, tokens, support, structure, out):
    """Detail pmfs (n, 4 | 128 | 24) of tokens of one shape given their supports.

    ``structure``: pairs (shape 0), octads (1) or Golay words (2).
    """
    n = tokens.shape[0]
    m_count = tables.shape[1]
    size = out.shape[1]
    for c in prange((n + 63) // 64):
        x = np.empty((m_count, size))
        v = np.empty(size)
        scr = np.empty(max(size, m_count))
        pos = np.empty(8)
        neg = np.empty(8)
        for r in range(c * 64, min(n, (c + 1) * 64)):
            t = tokens[r]
            u = support[r]
            for m in range(m_count):
                if shape == 0:
                    _detail_a(tables[t, m], structure[u, 0], structure[u, 1], x[m])
                elif shape == 1:
                    _detail_b(tables[t, m], structure[u], x[m], pos, neg)
                else:
                    _detail_c(tables[t, m], structure[u], x[m])
            _finish_detail(x, log_pi[t], log_z[t], size, out[r], v, scr)
