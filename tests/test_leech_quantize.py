"""``lqz.leech.quantize`` against float64 brute force over all 196,560 codewords.

"Nearest" means: the returned codeword's inner product with ``x`` equals the brute-force maximum
(up to ties, with a tight tolerance). For integer-valued inputs every score is exact in float64,
so there the documented tie rule (smallest canonical index) is checked exactly as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import lqz.leech as leech

SIZE = 196_560
OFFSET_B = 1_104
OFFSET_C = 98_256

HYPOTHESIS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def q(x) -> np.ndarray:
    out = leech.quantize(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    return out.numpy()


# ---------------------------------------------------------------------------------------------
# Random inputs


def test_random_gaussian(brute, rng) -> None:
    x = rng.standard_normal((3000, 24))
    brute.assert_nearest(x, q(x))


def test_random_unit_float32_torch(brute) -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1000, 24, generator=gen)
    x = x / x.norm(dim=1, keepdim=True)
    got = q(x)
    brute.assert_nearest(x.double().numpy(), got)
    # float32 and float64 copies of the same numbers give the same answer.
    np.testing.assert_array_equal(got, q(x.double()))
    np.testing.assert_array_equal(got, q(x.numpy()))


def test_heavy_tailed_and_sparse(brute, rng) -> None:
    cauchy = rng.standard_cauchy((500, 24))
    sparse = rng.standard_normal((500, 24)) * (rng.random((500, 24)) < 0.15)
    one_hot_ish = np.eye(24)[rng.integers(0, 24, 200)] + 1e-3 * rng.standard_normal((200, 24))
    for x in (cauchy, sparse, one_hot_ish):
        brute.assert_nearest(x, q(x))


def vectors(elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    """1 to 6 float64 vectors of 24 ``elements``."""
    return arrays(np.float64, st.tuples(st.integers(1, 6), st.just(24)), elements=elements)


@HYPOTHESIS
@given(vectors(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)))
def test_hypothesis_floats(brute, x) -> None:
    brute.assert_nearest(x, q(x))


@HYPOTHESIS
@given(vectors(st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, 2.0, -2.0, 3.0, -3.0])))
def test_hypothesis_tie_prone(brute, x) -> None:
    """Few distinct magnitudes (exact dyadic values): many exact ties; scores must be exact."""
    brute.assert_nearest(x, q(x), rtol=0)


# ---------------------------------------------------------------------------------------------
# Codewords and their neighbourhoods


def test_every_codeword_maps_to_itself(int_book) -> None:
    everything = np.arange(SIZE)
    np.testing.assert_array_equal(q(int_book), everything)
    np.testing.assert_array_equal(q(leech.codebook()[::7]), everything[::7])  # float32 rows


def test_codeword_plus_tiny_noise(int_book, rng) -> None:
    unit = int_book / np.sqrt(32.0)
    noise = rng.standard_normal(unit.shape)
    noisy = unit + 1e-3 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    np.testing.assert_array_equal(q(noisy), np.arange(SIZE))


@pytest.mark.parametrize("block", ["A", "B", "C"])
def test_codeword_plus_noise_per_shape(int_book, rng, block) -> None:
    """Noise up to 0.2 (angle << 30°, half the 60° neighbour spacing) keeps the codeword."""
    lo, hi = {"A": (0, OFFSET_B), "B": (OFFSET_B, OFFSET_C), "C": (OFFSET_C, SIZE)}[block]
    idx = rng.integers(lo, hi, 2000)
    unit = int_book[idx] / np.sqrt(32.0)
    noise = rng.standard_normal(unit.shape)
    noise *= rng.uniform(0, 0.2, (len(idx), 1)) / np.linalg.norm(noise, axis=1, keepdims=True)
    np.testing.assert_array_equal(q(unit + noise), idx)


@pytest.mark.parametrize("inner", [16, 8, 0, -8])
def test_sums_of_two_codewords(int_book, brute, rng, inner) -> None:
    """x = v + w (the midpoint direction) for codeword pairs with a given inner product.

    At 16 (neighbours) v and w tie exactly (score 48) and beat everything else.
    """
    v_idx = rng.choice(SIZE, 150, replace=False)
    scores = int_book[v_idx] @ int_book.T
    w_idx = np.array([rng.choice(np.nonzero(row == inner)[0]) for row in scores])
    x = int_book[v_idx] + int_book[w_idx]
    got = q(x)
    brute.assert_nearest(x, got, rtol=0)
    if inner == 16:
        assert np.all((got == v_idx) | (got == w_idx))
        np.testing.assert_array_equal(got, np.minimum(v_idx, w_idx))  # the tie rule
    # Exact (power-of-two) scaling keeps even the exact ties; normalizing keeps the scores.
    np.testing.assert_array_equal(q(x * 2.0**-5), got)
    brute.assert_nearest(x, q(x / np.linalg.norm(x, axis=1, keepdims=True)))


# ---------------------------------------------------------------------------------------------
# Equal magnitudes and exact ties


def _tie_families(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from lqz.leech.shell import tables

    n = 300
    signs = rng.choice([-1, 1], (n, 24))
    fam: dict[str, np.ndarray] = {}
    fam["all +-1"] = signs.astype(np.float64)
    fam["{0, +-1}"] = rng.integers(-1, 2, (n, 24)).astype(np.float64)
    three = np.ones((n, 24))
    three[np.arange(n), rng.integers(0, 24, n)] = 3
    fam["(3, 1^23) signed"] = three * signs
    fam["(3, 1^23) unsigned"] = np.ones((24, 24)) + 2 * np.eye(24)
    twos = np.zeros((n, 24))
    for r in range(n):
        twos[r, rng.choice(24, 8, replace=False)] = 2
    fam["(2^8, 0^16) random support"] = twos * signs
    k_twos = np.zeros((n, 24))
    for r in range(n):
        k_twos[r, rng.choice(24, rng.integers(1, 25), replace=False)] = 2
    fam["(2^k, 0) any k"] = k_twos * signs
    pairs = np.zeros((n, 24))
    for r in range(n):
        pairs[r, rng.choice(24, 2, replace=False)] = 4
    fam["(4, 4, 0^22)"] = pairs * signs
    fam["(1, 1, 1, 0^21)"] = np.abs(pairs / 4) + np.eye(24)[rng.integers(0, 24, n)]
    fam["one nonzero"] = np.eye(24) * rng.choice([-1, 1], (24, 1))
    octads = tables().octads
    even = np.zeros((n, 24))
    support = octads[rng.integers(0, len(octads), n)]
    s = rng.choice([-1.0, 1.0], (n, 8))
    s[:, 0] *= np.where((s < 0).sum(axis=1) % 2 == 0, 1, -1)  # an even number of minus signs
    even[np.arange(n)[:, None], support] = s
    fam["octad, equal magnitudes, even signs"] = even
    odd = np.zeros((n, 24))
    for r in range(n):
        sign = np.ones(8)
        sign[rng.choice(8, rng.choice([1, 3, 5, 7]), replace=False)] = -1
        odd[r, octads[rng.integers(0, len(octads))]] = sign
    fam["octad, equal magnitudes, odd signs"] = odd
    return fam


FAMILIES = list(_tie_families(np.random.default_rng(0)))


def _family(name: str) -> np.ndarray:
    return _tie_families(np.random.default_rng(FAMILIES.index(name)))[name]


@pytest.mark.parametrize("family", FAMILIES)
def test_equal_magnitudes_scores(brute, family) -> None:
    x = _family(family)
    brute.assert_nearest(x, q(x), rtol=0)  # integer inputs: exact scores


@pytest.mark.parametrize("family", FAMILIES)
def test_equal_magnitudes_tie_rule(brute, family) -> None:
    """Ties go to the smallest canonical index (quantize's docstring)."""
    x = _family(family)
    _, smallest = brute.best(x)
    np.testing.assert_array_equal(q(x), smallest)


def test_parity_tie_minimal_example(brute) -> None:
    """Odd-parity octad ties on the smallest input: octad 0 of the canonical order, all |x| = 1, the
    only minus sign on the 8th support coordinate; 8 shape-B codewords tie at score 12 and the
    smallest is 1104 (all +2), which quantize must return."""
    from lqz.leech.shell import tables

    x = np.zeros(24)
    x[tables().octads[0]] = 1.0
    x[tables().octads[0][7]] = -1.0
    scores = brute.scores(x)[0]
    winners = np.nonzero(scores == scores.max())[0]
    assert scores.max() == 12 and len(winners) == 8 and (winners >= OFFSET_B).all()
    got = q(x).item()
    assert got in winners  # nearest: this part holds
    assert got == winners.min()


def test_zero_vector() -> None:
    assert q(np.zeros(24)).item() == 0  # every score is 0: the smallest index
    np.testing.assert_array_equal(q(np.zeros((3, 24))), [0, 0, 0])
    np.testing.assert_array_equal(q(-np.zeros((2, 24))), [0, 0])


# ---------------------------------------------------------------------------------------------
# Scale


def test_scale_invariance(brute, rng) -> None:
    x = rng.standard_normal((500, 24))
    base = q(x)
    for k in (-1000, -300, -40, -1, 1, 7, 300, 1000):
        np.testing.assert_array_equal(q(x * 2.0**k), base, err_msg=f"2^{k}")
    for scale in (1e-9, 0.3, 3.7, 1e9):
        np.testing.assert_array_equal(q(x * scale), base, err_msg=str(scale))
    # Exact ties survive exact (power-of-two) scaling.
    ties = _tie_families(rng)["all +-1"]
    for k in (-900, -3, 5, 900):
        np.testing.assert_array_equal(q(ties * 2.0**k), q(ties))


def test_huge_and_tiny_magnitudes(brute, rng) -> None:
    x = rng.standard_normal((300, 24))
    brute.assert_nearest(x, q(x * 1e300))
    brute.assert_nearest(x, q(x * 1e-300))
    # Entries spanning 600 orders of magnitude in one vector.
    wide = rng.choice([-1, 1], (300, 24)) * 10.0 ** rng.uniform(-300, 300, (300, 24))
    brute.assert_nearest(wide, q(wide))
    # Subnormal entries: brute force on the same numbers scaled up by an exact power of two.
    sub = np.ldexp(rng.standard_normal((300, 24)), -1060)
    assert (np.abs(sub) < np.finfo(np.float64).tiny).any()
    brute.assert_nearest(np.ldexp(sub, 1060), q(sub))
    # One huge coordinate among tiny ones.
    spike = rng.standard_normal((100, 24)) * 1e-200
    spike[np.arange(100), rng.integers(0, 24, 100)] = 1e200
    brute.assert_nearest(spike, q(spike))


def test_magnitudes_near_float_max(brute, rng) -> None:
    x = rng.standard_normal((200, 24))
    big = np.ldexp(x, 1020)
    assert np.isfinite(big).all()
    brute.assert_nearest(x, q(big))


# ---------------------------------------------------------------------------------------------
# Determinism, shapes, errors


def test_deterministic_and_thread_independent(rng) -> None:
    x = np.concatenate([rng.standard_normal((3000, 24)), _tie_families(rng)["{0, +-1}"]])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = q(x)
        torch.set_num_threads(2)
        two = q(x)
        again = q(x)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(two, again)


def test_batch_shapes(rng) -> None:
    x = rng.standard_normal((3, 4, 24))
    flat = q(x.reshape(-1, 24))
    out = leech.quantize(torch.from_numpy(x))
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out.numpy().ravel(), flat)
    single = leech.quantize(torch.from_numpy(x[1, 2]))
    assert single.shape == () and single.dtype == torch.int64
    assert single.item() == flat[6]
    assert leech.quantize(x[0]).shape == (4,)
    assert leech.quantize(np.zeros((0, 24))).shape == (0,)
    assert leech.quantize(np.zeros((2, 0, 24))).shape == (2, 0)
    # Non-contiguous views, gradients attached, integer arrays and lists.
    t = torch.from_numpy(rng.standard_normal((24, 10))).T.requires_grad_(True)
    np.testing.assert_array_equal(q(t), q(t.detach().contiguous().numpy()))
    ints = rng.integers(-5, 6, (7, 24))
    np.testing.assert_array_equal(q(ints), q(ints.astype(np.float64)))
    assert leech.quantize(ints[0].tolist()).item() == q(ints[:1])[0]


@pytest.mark.parametrize("shape", [(23,), (25,), (4, 23), (24, 1), (0,), (2, 12)])
def test_wrong_last_dimension(shape) -> None:
    with pytest.raises(ValueError):
        leech.quantize(np.ones(shape))
    with pytest.raises(ValueError):
        leech.quantize(torch.ones(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(bad) -> None:
    x = np.ones((3, 24))
    x[1, 5] = bad
    with pytest.raises(ValueError):
        leech.quantize(x)
    with pytest.raises(ValueError):
        leech.quantize(torch.from_numpy(x).float())
