"""The exact token pmf: torch log_prob / log_partition and the coder's sub-symbol chain, against
brute force over all 196,560 codewords."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from lqz.entropy import chain, kernels, shell_pmf
from lqz.entropy.params import GRID, TABLE_FLOOR, quantize_params
from lqz.entropy.shell_pmf import (
    DETAIL_SIZES,
    SUPPORT_SIZES,
    join_index,
    log_partition,
    log_prob,
    split_index,
)
from lqz.leech import integer_codebook
from lqz.leech.golay import golay_codewords
from lqz.leech.shell import tables as shell_tables

SIZE = 196_560
VALUES = np.arange(-4, 5)


def brute_force(tables: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log p over all codewords, log Z per component) by direct summation, float64."""
    columns = integer_codebook().astype(np.int64) + 4
    lw = tables[:, np.arange(24), columns].sum(axis=-1)  # (M, 196560)
    top = lw.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(lw - top).sum(axis=1))
    log_pi = logits - logits.max()
    log_pi = log_pi - np.log(np.exp(log_pi).sum())
    joint = log_pi[:, None] + lw - log_z[:, None]
    top = joint.max(axis=0)
    return top + np.log(np.exp(joint - top).sum(axis=0)), log_z


def vmf(rng: np.random.Generator, m: int, kappa: float) -> np.ndarray:
    """Tables of von Mises-Fisher components: L[d, a] = kappa * mu_d * a."""
    mu = rng.normal(size=(m, 24))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    return kappa * mu[:, :, None] * VALUES


def adversarial(rng: np.random.Generator) -> np.ndarray:
    """Wide tables where one coordinate strongly prefers -3/-1 over +1/+3: the words that
    dominate shape C have a tiny S(c) relative to the largest r (tests the tiers)."""
    t = rng.uniform(-1.0, 0.0, size=(1, 24, 9)) * 300.0
    t[0, 5] = -rng.uniform(0, 900, 9)
    t[0, 5, [1, 3, 5, 7]] = [0.0, -3.0, -900.0, -900.0]  # values -3, -1, +1, +3
    return t


def case(name: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name == "random":
        t = rng.normal(size=(1, 24, 9)) * 2.0
    elif name == "mixture":
        t = rng.normal(size=(3, 24, 9)) * np.array([0.5, 3.0, 8.0])[:, None, None]
    elif name == "vmf40":
        t = vmf(rng, 1, 40.0)
    elif name == "vmf400-mixture":
        t = np.concatenate([vmf(rng, 1, 400.0), vmf(rng, 1, 150.0)])
    elif name == "wide":
        t = rng.uniform(-900.0, 0.0, size=(1, 24, 9))
    elif name == "adversarial":
        t = adversarial(rng)
    else:
        raise KeyError(name)
    return t, rng.normal(size=t.shape[0])


CASES = ["random", "mixture", "vmf40", "vmf400-mixture", "wide", "adversarial"]


def test_split_join_is_the_canonical_layout() -> None:
    index = np.arange(SIZE)
    shape, support, detail = split_index(index)
    assert np.array_equal(join_index(shape, support, detail), index)
    assert np.array_equal(np.bincount(shape), [276 * 4, 759 * 128, 4096 * 24])
    for s in range(3):
        sel = shape == s
        assert support[sel].max() == SUPPORT_SIZES[s] - 1
        assert detail[sel].max() == DETAIL_SIZES[s] - 1
    book = integer_codebook().astype(np.int64)
    t = shell_tables()
    # A: the pair is the support, sign bits say which of the two is -4.
    a = shape == 0
    nonzero = np.nonzero(book[a])[1].reshape(-1, 2)
    assert np.array_equal(nonzero, t.pairs[support[a]])
    rows = np.arange(a.sum())
    assert np.array_equal(book[a][rows, nonzero[:, 0]] < 0, (detail[a] & 1) == 1)
    assert np.array_equal(book[a][rows, nonzero[:, 1]] < 0, (detail[a] & 2) == 2)
    # B: the octad is the support, bits 0-6 are the first seven signs, the 8th is parity.
    b = shape == 1
    nonzero = np.nonzero(book[b])[1].reshape(-1, 8)
    assert np.array_equal(nonzero, t.octads[support[b]])
    negative = np.take_along_axis(book[b], nonzero, axis=1) < 0
    bits = (detail[b][:, None] >> np.arange(7)) & 1
    assert np.array_equal(negative[:, :7], bits == 1)
    assert (negative.sum(axis=1) % 2 == 0).all()
    # C: the Golay word is the sign pattern with the -3 flipped back, detail its position.
    c = shape == 2
    vc = book[c]
    assert np.array_equal(np.abs(vc[np.arange(c.sum()), detail[c]]), np.full(c.sum(), 3))
    word = (vc < 0).astype(np.uint8)
    word[np.arange(c.sum()), detail[c]] ^= 1
    assert np.array_equal(word, golay_codewords()[support[c]])
    with pytest.raises(ValueError):
        split_index(np.array([SIZE]))


@pytest.mark.parametrize("name", CASES)
def test_log_prob_matches_brute_force(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tiered = []
    original = shell_pmf._log_z_c_tiered
    monkeypatch.setattr(
        shell_pmf, "_log_z_c_tiered", lambda x, st: tiered.append(1) or original(x, st)
    )
    tables, logits = case(name)
    ref, ref_log_z = brute_force(tables, logits)
    log_z = log_partition(torch.from_numpy(tables)).numpy()
    np.testing.assert_allclose(log_z, ref_log_z, rtol=1e-12, atol=1e-8)
    lp = log_prob(torch.from_numpy(tables), torch.from_numpy(logits), torch.arange(SIZE))
    np.testing.assert_allclose(lp.numpy(), ref, rtol=1e-11, atol=1e-8)
    assert abs(np.exp(lp.numpy()).sum() - 1.0) < 1e-10
    if name == "adversarial":
        assert tiered  # the underflow-safe fallback was exercised


def chain_probabilities(tables: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """p(index) for all indices as the product of the chain's conditionals (one token)."""
    params = quantize_params(tables[None], logits[None])
    summary = chain.summarize(params)
    assert abs(summary.shape.sum() - 1.0) < 1e-14
    shape, support, detail = split_index(np.arange(SIZE))
    p = summary.shape[0, shape]
    for s in range(3):
        row = summary.support[s][0] / summary.support_total[0, s]
        assert abs(row.sum() - 1.0) < 1e-12
        sel = shape == s
        every = np.arange(SUPPORT_SIZES[s])
        pmf = chain.detail_pmfs(params, summary, s, np.zeros_like(every), every)
        np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=1e-13)
        p[sel] *= row[chain.support_columns(s, support[sel])] * pmf[support[sel], detail[sel]]
    return p


@pytest.mark.parametrize("name", ["random", "mixture", "vmf400-mixture", "wide", "adversarial"])
def test_chain_matches_brute_force(name: str) -> None:
    tables, logits = case(name)
    params = quantize_params(tables[None], logits[None])
    ref = np.exp(brute_force(params.tables[0], params.logits[0])[0])  # on the coding grid
    p = chain_probabilities(tables, logits)
    assert abs(p.sum() - 1.0) < 1e-12
    assert np.abs(p - ref).max() < 1e-12
    relevant = ref > 1e-30 * ref.max()
    np.testing.assert_allclose(p[relevant], ref[relevant], rtol=1e-9)
    # The sub-symbol code lengths add up to the token's.
    bits = -np.log2(p[relevant])
    np.testing.assert_allclose(bits, -np.log2(ref[relevant]), rtol=1e-9, atol=1e-9)


def test_golay_fast_path_matches_exact_path() -> None:
    """The product-form evaluation of the 4,096 Golay weights against the tiered exps."""
    rng = np.random.default_rng(5)
    pat = chain._structure()[2]
    ws = kernels._workspace(1)
    keys, pend, coord, dp, grid = ws.keys, ws.pend, ws.coord, ws.dp, ws.grid
    fast_w, exact_w = np.empty(4096), np.empty(4096)
    out_fast, out_exact = np.empty(6), np.empty(6)

    def fast_agrees(tables: np.ndarray) -> bool:
        """False when the fast path declines; else checks it against the exact path."""
        L = quantize_params(tables.reshape(1, 1, 24, 9), np.zeros((1, 1))).tables[0, 0]
        kernels._c_exact(L, pat, exact_w, keys, pend, coord, dp, grid, out_exact)
        if not kernels._c_fast(L, pat, fast_w, coord, dp, grid, out_fast):
            return False
        keep = exact_w > np.exp(-40.0) * exact_w.max()
        a = out_fast[4] + np.log(fast_w[keep])
        b = out_exact[4] + np.log(exact_w[keep])
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11)
        # what the fast path flushed is negligible: the totals agree
        total_fast = out_fast[4] + np.log(out_fast[5])
        total_exact = out_exact[4] + np.log(out_exact[5])
        np.testing.assert_allclose(total_fast, total_exact, rtol=1e-14, atol=1e-11)
        assert (fast_w[exact_w < 1e-40 * exact_w.max()] <= 1e-30 * fast_w.max()).all()
        return True

    used_fast = 0
    for scale in (0.3, 3.0, 10.0, 30.0):
        for _ in range(5):
            used_fast += fast_agrees(rng.normal(size=(24, 9)) * scale)
    assert used_fast >= 15
    # Large concentrations (psi / phi up to e^1000) mostly stay on the fast path.
    used_fast = sum(fast_agrees(vmf(rng, 1, kappa)) for kappa in (100, 400, 2000) for _ in range(4))
    assert used_fast >= 8
    # Where the largest words stay far below the per-coordinate maxima, the exact path takes
    # over (these draws are known to need it).
    declined = [not fast_agrees(rng.uniform(-900.0, 0.0, size=(24, 9))) for _ in range(8)]
    assert any(declined)


def test_octad_lanes_match_the_scalar_kernel() -> None:
    """The 4-lane octad kernel gives the scalar kernel's bits, for any grouping of jobs, on
    its linear path and through the fallback (wide tables: log path)."""
    rng = np.random.default_rng(9)
    tables = rng.normal(size=(9, 2, 24, 9)) * rng.choice([0.1, 3.0, 40.0], size=(9, 2, 1, 1))
    tables[2, 1, 5] *= 100.0  # spread of lB beyond the linear path's range
    tables[7, 0] = adversarial(rng)[0]
    t = quantize_params(tables, np.zeros((9, 2))).tables
    opat = chain._structure()[4]
    ws = kernels._workspace(1)
    coord, dp, grid = ws.coord, ws.dp, ws.grid
    jobs = [(i, m) for i in range(9) for m in range(2)]
    expect_w, expect_c = np.empty((len(jobs), 759)), np.zeros((len(jobs), 6))
    for j, (i, m) in enumerate(jobs):
        kernels._shape_b(t[i, m], opat, expect_w[j], coord, dp, grid, expect_c[j])
    for order in (np.arange(len(jobs)), rng.permutation(len(jobs))):
        w, c = np.empty_like(expect_w), np.zeros_like(expect_c)
        for start in range(0, len(jobs), 3):  # groups of 3, 3, ..., lanes partly unused
            sel = order[start : start + 3]
            job_t = np.array([jobs[j][0] for j in sel] + [0], dtype=np.int64)
            job_m = np.array([jobs[j][1] for j in sel] + [0], dtype=np.int64)
            rows = np.array(list(sel) + [0], dtype=np.int64)
            into = ws._replace(wb=w, comp=c)  # the job rows: all of w and c
            kernels._shape_b_lanes(t, job_t, job_m, rows, len(sel), opat, into)
        assert np.array_equal(w.view(np.int64), expect_w.view(np.int64))
        assert np.array_equal(c[:, 2:4], expect_c[:, 2:4])


def test_chain_agrees_with_torch_log_prob_on_a_batch() -> None:
    rng = np.random.default_rng(7)
    n = 300
    tables = rng.normal(size=(n, 2, 24, 9)) * rng.choice([0.3, 3.0, 30.0], size=(n, 2, 1, 1))
    logits = rng.normal(size=(n, 2))
    params = quantize_params(tables, logits)
    indices = rng.integers(0, SIZE, size=n)
    indices[: n // 2] = chain.sample(params.rows(0, n // 2), rng)
    cond = chain.conditional_probabilities(params, indices)
    lp = log_prob(torch.from_numpy(params.tables), torch.from_numpy(params.logits), indices)
    ok = (cond > 1e-250).all(axis=1)
    assert ok[: n // 2].all()
    np.testing.assert_allclose(np.log(cond[ok]).sum(axis=1), lp.numpy()[ok], rtol=1e-10, atol=1e-8)


def test_gradients_match_brute_force_marginals() -> None:
    """d log p(v) / d L_m[d, a] = r_m (1{v_d = a} - P_m(v_d = a)), d / d logit_m = r_m - pi_m,
    with responsibilities r_m = pi_m p_m(v) / p(v), all by brute force."""
    tables, logits = case("mixture")
    t = torch.tensor(tables, requires_grad=True)
    m = torch.tensor(logits, requires_grad=True)
    index = 123_456
    log_prob(t, m, torch.tensor(index)).backward()
    columns = integer_codebook().astype(np.int64) + 4
    lw = tables[:, np.arange(24), columns].sum(axis=-1)
    p_m = np.exp(lw - lw.max(axis=1, keepdims=True))
    p_m /= p_m.sum(axis=1, keepdims=True)  # (M, 196560)
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    resp = pi * p_m[:, index]
    resp /= resp.sum()
    onehot = np.zeros((SIZE, 24, 9))
    onehot[np.arange(SIZE)[:, None], np.arange(24), columns] = 1.0
    marginals = np.einsum("mv,vda->mda", p_m, onehot)
    expected = resp[:, None, None] * (onehot[index][None] - marginals)
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.grad.numpy(), resp - pi, rtol=1e-9, atol=1e-12)


def _directional(base: torch.Tensor, seed: int, k: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    directions = torch.from_numpy(np.random.default_rng(seed).normal(size=(k, *base.shape)))
    return directions, torch.zeros(k, dtype=torch.float64, requires_grad=True)


def test_gradcheck() -> None:
    """torch.autograd.gradcheck along random directions (tables and logits; tiered case)."""
    rng = np.random.default_rng(11)
    tables = torch.tensor(rng.normal(size=(2, 2, 24, 9)) * 2.0)
    logits = torch.tensor(rng.normal(size=(2, 2)), requires_grad=True)
    index = torch.from_numpy(rng.integers(0, SIZE, size=2))
    directions, eps = _directional(tables, 1)

    def f(e: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return log_prob(tables + torch.einsum("k,k...->...", e, directions), m, index)

    assert torch.autograd.gradcheck(f, (eps, logits))
    wide = torch.tensor(adversarial(rng))  # needs the tiered Golay evaluation
    directions, eps = _directional(wide, 2)
    assert torch.autograd.gradcheck(
        lambda e: log_partition(wide + torch.einsum("k,k...->...", e, directions)), (eps,)
    )
    # Zero tables (an untrained prior head): finite gradients, uniform pmf.
    zeros = torch.zeros(3, 2, 24, 9, requires_grad=True)
    lp = log_prob(zeros, torch.zeros(3, 2), torch.tensor([0, 5000, SIZE - 1]))
    lp.sum().backward()
    assert torch.isfinite(zeros.grad).all()
    np.testing.assert_allclose(lp.detach().numpy(), -np.log(SIZE), rtol=1e-6)


def test_coding_grid() -> None:
    rng = np.random.default_rng(3)
    tables = rng.normal(size=(5, 2, 24, 9)) * 400.0
    params = quantize_params(tables, rng.normal(size=(5, 2)))
    t = params.tables
    assert (t <= 0).all() and (t >= TABLE_FLOOR).all()
    assert np.array_equal(t.max(axis=-1), np.zeros(t.shape[:-1]))
    assert np.array_equal(np.rint(t / GRID) * GRID, t)
    # A per-coordinate constant changes neither the pmf nor the grid values.
    shifted = tables + rng.normal(size=(5, 2, 24, 1)) * 100.0
    idx = torch.from_numpy(rng.integers(0, SIZE, size=5))
    lp = log_prob(torch.from_numpy(tables), torch.zeros(5, 2), idx)
    lp_shifted = log_prob(torch.from_numpy(shifted), torch.zeros(5, 2), idx)
    np.testing.assert_allclose(lp.numpy(), lp_shifted.numpy(), rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError):
        quantize_params(np.full((1, 1, 24, 9), np.nan), np.zeros((1, 1)))
    with pytest.raises(ValueError):
        quantize_params(np.zeros((1, 1, 24, 9)), np.full((1, 1), np.inf))
    with pytest.raises(ValueError):
        quantize_params(np.zeros((1, 1, 24, 8)), np.zeros((1, 1)))


def _numpy_grid(x: np.ndarray, floor: float) -> np.ndarray:
    """Reference rounding: subtract the maximum of the last axis, round to GRID, clip."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return np.clip(np.rint(x / GRID), floor / GRID, 0.0) * GRID


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_coding_grid_matches_numpy_rounding(dtype: type) -> None:
    """The compiled rounding onto the grid equals plain numpy (ties to even, the floor, float32
    inputs), chunk by chunk as the coder calls it, without negative zeros."""
    from lqz.entropy.params import LOGIT_FLOOR, grid_rows, validate_params

    rng = np.random.default_rng(11)
    tables = rng.normal(size=(40, 2, 24, 9)) * rng.choice([0.01, 1.0, 50.0, 900.0], (40, 2, 1, 1))
    tables[:5] = np.round(tables[:5] * 2 * 256) / (2 * 256)  # many exact ties k + 1/2
    tables[5, 0, 3, 2] = -1e6  # far below the floor
    logits = rng.normal(size=(40, 2)) * 300.0
    logits[6] = [0.0, -(3 + 0.5) * GRID]  # a tie
    tables, logits = tables.astype(dtype), logits.astype(dtype)
    expect_t = _numpy_grid(tables, TABLE_FLOOR)
    expect_l = _numpy_grid(logits, LOGIT_FLOOR)
    whole = quantize_params(torch.from_numpy(tables), torch.from_numpy(logits))
    assert np.array_equal(whole.tables, expect_t) and np.array_equal(whole.logits, expect_l)
    assert not np.signbit(whole.tables[whole.tables == 0]).any()
    raw = validate_params(tables, logits)
    for start in range(0, 40, 16):
        part = grid_rows(raw, start, min(start + 16, 40))
        assert np.array_equal(part.tables, expect_t[start : start + 16])
        assert np.array_equal(part.logits, expect_l[start : start + 16])
