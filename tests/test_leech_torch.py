"""``lqz.leech.quantize_torch`` (batched torch search, the CUDA training path) against
``lqz.leech.quantize`` (numba) and float64 brute force over all 196,560 codewords.

quantize_torch computes every score with the numba kernel's float64 operations, so the indices
must be equal for every finite input, ties included; integer and dyadic inputs have exact scores,
so there the tie rule (smallest canonical index) is checked against brute force as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lqz.leech as leech
from lqz.leech import quantize_torch
from lqz.leech.search_torch import _device_tables, _nearest_rows
from lqz.leech.shell import tables

SIZE = 196_560


def qt(x, **kwargs) -> np.ndarray:
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    out = quantize_torch(t, **kwargs)
    assert out.dtype == torch.int64 and out.device == t.device and out.shape == t.shape[:-1]
    return out.numpy()


def q(x) -> np.ndarray:
    return leech.quantize(x).numpy()


def _near_codewords(rng: np.random.Generator, n: int, book: np.ndarray) -> np.ndarray:
    """Codewords plus noise from tiny to beyond the Voronoi cell (angles up to ~60 degrees)."""
    v = book[rng.integers(0, SIZE, n)] / np.sqrt(32.0)
    noise = rng.standard_normal(v.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return v + noise * 10.0 ** rng.uniform(-12, 0, (n, 1))


def _ties(rng: np.random.Generator, n: int) -> np.ndarray:
    """Few distinct dyadic magnitudes: exact scores, many exact ties between codewords."""
    parts = [
        rng.choice([-1.0, 1.0], (n, 24)),  # all equal magnitudes
        rng.integers(-1, 2, (n, 24)).astype(np.float64),
        rng.choice([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, 2.0, -2.0, 3.0, -3.0], (n, 24)),
        rng.integers(-4, 5, (n, 24)).astype(np.float64),
    ]
    pairs = np.zeros((n, 24))  # +-e_i +- e_j: the two largest tie with all others at 0
    cols = np.argsort(rng.random((n, 24)), axis=1)[:, :2]
    pairs[np.arange(n)[:, None], cols] = rng.choice([-1.0, 1.0], (n, 2))
    parts.append(pairs)
    octad = np.zeros((n, 24))  # an octad's support with unit magnitudes, either parity
    octad[np.arange(n)[:, None], tables().octads[rng.integers(0, 759, n)]] = rng.choice(
        [-1.0, 1.0], (n, 8)
    )
    parts.append(octad)
    three = rng.choice([-1.0, 1.0], (n, 24))  # (3, 1^23) with random signs
    three[np.arange(n), rng.integers(0, 24, n)] *= 3.0
    parts.append(three)
    parts.append(np.eye(24)[rng.integers(0, 24, n)] * rng.choice([-1.0, 1.0], (n, 1)))
    return np.concatenate(parts)


def _families(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    book = leech.integer_codebook().astype(np.float64)
    g = rng.standard_normal((n, 24))
    return {
        "gaussian": g,
        "unit": g / np.linalg.norm(g, axis=1, keepdims=True),
        "sparse": rng.standard_normal((n, 24)) * (rng.random((n, 24)) < 0.2),
        "cauchy": rng.standard_cauchy((n, 24)),
        "near codewords": _near_codewords(rng, n, book),
        "codeword sums": book[rng.integers(0, SIZE, n)] + book[rng.integers(0, SIZE, n)],
        "ties": _ties(rng, n // 8),
        "scaled and negated": -g * 2.0 ** rng.integers(-60, 60, (n, 1)) * rng.uniform(0.1, 10),
    }


FAMILIES = list(_families(np.random.default_rng(0), 8))


@pytest.mark.parametrize("family", FAMILIES)
def test_equals_quantize(family) -> None:
    """100,000 vectors over all families (12,500 each) give quantize's indices exactly."""
    x = _families(np.random.default_rng(FAMILIES.index(family)), 12_500)[family]
    np.testing.assert_array_equal(qt(x), q(x))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_equals_quantize_large(family) -> None:
    x = _families(np.random.default_rng(100 + FAMILIES.index(family)), 150_000)[family]
    np.testing.assert_array_equal(qt(x), q(x))


def test_brute_force_random(brute, rng) -> None:
    x = np.concatenate([rng.standard_normal((1500, 24)), rng.standard_cauchy((300, 24))])
    got = qt(x)
    brute.assert_nearest(x, got)
    np.testing.assert_array_equal(got, brute.best(x)[1])  # no near ties in random data


def test_brute_force_ties(brute, rng) -> None:
    """Exact scores: the maximum and the smallest index attaining it, exactly."""
    x = _ties(rng, 150)
    got = qt(x)
    brute.assert_nearest(x, got, rtol=0)
    np.testing.assert_array_equal(got, brute.best(x)[1])


def test_brute_force_near_codewords(brute, rng) -> None:
    x = _near_codewords(rng, 1000, leech.integer_codebook().astype(np.float64))
    brute.assert_nearest(x, qt(x))


@pytest.mark.slow
def test_brute_force_large(brute, rng) -> None:
    x = np.concatenate([rng.standard_normal((20_000, 24)), _ties(rng, 2000)])
    got = qt(x)
    brute.assert_nearest(x, got)
    ties = slice(20_000, None)
    np.testing.assert_array_equal(got[ties], brute.best(x[ties])[1])


def test_codewords_map_to_themselves(int_book) -> None:
    idx = np.arange(0, SIZE, 37)
    np.testing.assert_array_equal(qt(int_book[idx].astype(np.float64)), idx)
    np.testing.assert_array_equal(qt(leech.codebook()[idx]), idx)  # float32 unit rows


@pytest.mark.slow
def test_every_codeword_maps_to_itself(int_book) -> None:
    np.testing.assert_array_equal(qt(int_book.astype(np.float64)), np.arange(SIZE))


def test_zero_and_signed_zero() -> None:
    assert qt(np.zeros(24)).item() == 0
    np.testing.assert_array_equal(qt(-np.zeros((3, 24))), [0, 0, 0])
    mixed = np.zeros((50, 24))
    mixed[:, ::2] = -0.0
    mixed[np.arange(50), np.arange(50) % 24] = np.linspace(-1, 1, 50)
    np.testing.assert_array_equal(qt(mixed), q(mixed))


def test_extreme_scales(rng) -> None:
    """Row scaling matches quantize's (exact powers of two), down to subnormals, up to 2^1020."""
    x = rng.standard_normal((300, 24))
    wide = rng.choice([-1, 1], (300, 24)) * 10.0 ** rng.uniform(-300, 300, (300, 24))
    spike = rng.standard_normal((100, 24)) * 1e-200
    spike[np.arange(100), rng.integers(0, 24, 100)] = 1e200
    cases = [x * 1e300, x * 1e-300, np.ldexp(x, 1020), np.ldexp(x, -1060), wide, spike]
    cases.append(np.ldexp(np.ones((5, 24)), -1074) * rng.choice([-1, 1], (5, 24)))  # 2^-1074
    for case in cases:
        np.testing.assert_array_equal(qt(case), q(case))
    base = qt(x)
    for k in (-1000, -40, 7, 1000):
        np.testing.assert_array_equal(qt(x * 2.0**k), base)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_input_dtypes(dtype, rng) -> None:
    """Any float dtype: the same indices as for the same numbers in float64."""
    x = torch.from_numpy(rng.standard_normal((2000, 24))).to(dtype)
    np.testing.assert_array_equal(qt(x), q(x.double()))


def test_integer_and_array_inputs(rng) -> None:
    ints = rng.integers(-5, 6, (500, 24))
    np.testing.assert_array_equal(qt(torch.from_numpy(ints)), q(ints.astype(np.float64)))
    assert quantize_torch(ints).dtype == torch.int64  # numpy arrays are taken as CPU tensors
    np.testing.assert_array_equal(quantize_torch(ints[:3].tolist()).numpy(), q(ints[:3]))


def test_shapes_views_gradients_and_chunks(rng) -> None:
    x = torch.from_numpy(rng.standard_normal((3, 5, 7, 24)))
    flat = qt(x.reshape(-1, 24))
    np.testing.assert_array_equal(qt(x).reshape(-1), flat)
    assert quantize_torch(x[1, 2, 3]).shape == ()
    assert quantize_torch(x[1, 2, 3]).item() == flat[5 * 7 + 2 * 7 + 3]
    assert quantize_torch(torch.zeros(0, 24)).shape == (0,)
    assert quantize_torch(torch.zeros(2, 0, 24)).shape == (2, 0)
    view = torch.from_numpy(rng.standard_normal((24, 40))).T.requires_grad_(True)
    np.testing.assert_array_equal(qt(view), q(view.detach().numpy()))
    assert not quantize_torch(view).requires_grad
    for chunk in (1, 7, 64, 10_000):
        np.testing.assert_array_equal(qt(x, chunk_rows=chunk), qt(x))


def test_autocast_does_not_lower_precision(rng) -> None:
    x = torch.from_numpy(rng.standard_normal((2000, 24))).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = quantize_torch(x)
    np.testing.assert_array_equal(got.numpy(), q(x.double()))


def test_thread_count_does_not_matter(rng) -> None:
    x = np.concatenate([rng.standard_normal((1000, 24)), _ties(rng, 50)])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = qt(x)
        torch.set_num_threads(2)
        two = qt(x)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_all_work_stays_on_the_input_device() -> None:
    """On the 'meta' device (shapes only) a CPU tensor or numpy array in the per-row path
    would fail with a device mismatch; the tables are built per device."""
    meta = torch.device("meta")
    tab = _device_tables(meta)
    assert all(t.device == meta for t in tab.values())
    out = _nearest_rows(torch.empty(10, 24, dtype=torch.float64, device=meta), tab)
    assert out.device == meta and out.shape == (10,) and out.dtype == torch.int64


def test_walsh_transform_rounds_like_the_kernel(rng) -> None:
    from lqz.leech.search import _walsh8 as kernel_walsh8
    from lqz.leech.search_torch import _walsh8

    z = rng.standard_normal((200, 8)) * 10.0 ** rng.uniform(-8, 8, (200, 8))
    got = _walsh8(torch.from_numpy(z)).numpy()
    ref = np.empty(8)
    for row, out in zip(z, got, strict=True):
        kernel_walsh8(row, ref)
        np.testing.assert_array_equal(out, ref)  # bit for bit, not just close


@pytest.mark.parametrize("shape", [(23,), (25,), (4, 23), (24, 1), (0,)])
def test_wrong_last_dimension(shape) -> None:
    with pytest.raises(ValueError, match="trailing dimension of 24"):
        quantize_torch(torch.ones(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(bad) -> None:
    x = torch.ones(3, 24)
    x[1, 5] = bad
    with pytest.raises(ValueError, match="non-finite"):
        quantize_torch(x)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        quantize_torch(torch.ones(2, 24), chunk_rows=0)
    with pytest.raises(ValueError, match="complex"):
        quantize_torch(torch.ones(2, 24, dtype=torch.complex64))


# ---------------------------------------------------------------------------------------------
# The prior's exact pmf (training loss) on any device


def test_pmf_structure_is_built_per_device() -> None:
    """The pmf's structure tensors live on the tables' device; its partition pieces run there
    ('meta': shapes only, any CPU tensor or numpy array in the path would fail)."""
    from lqz.entropy import shell_pmf

    meta = torch.device("meta")
    st = shell_pmf._structure(meta)
    assert all(t.device == meta for t in st.values())
    assert {t.dtype for t in st.values()} <= {torch.float64, torch.int64}
    x = torch.empty(6, 24, 9, dtype=torch.float64, device=meta)
    base0 = x[..., 4].sum(dim=-1)
    for part in (shell_pmf._log_z_a(x, base0, st), shell_pmf._log_z_b(x, base0, st)):
        assert part.device == meta and part.shape == (6,) and part.dtype == torch.float64
    fast, rows = shell_pmf._log_z_c_fast(x, st)
    assert fast.device == meta and fast.shape == (6,) and rows.dtype == torch.bool
    columns = st["columns"][torch.zeros(4, dtype=torch.int64, device=meta)]
    assert columns.device == meta and columns.shape == (4, 24)


def test_pmf_float32_inputs_equal_float64_inputs() -> None:
    """log_prob and log_partition compute in float64: float32 inputs give the float64 results
    for the same numbers, rounded once."""
    from lqz.entropy.shell_pmf import log_partition, log_prob

    gen = torch.Generator().manual_seed(3)
    tables = (torch.randn(4, 3, 24, 9, generator=gen) * 3.0).float()
    logits = torch.randn(4, 3, generator=gen).float()
    index = torch.randint(0, SIZE, (5, 4), generator=gen)
    lp32 = log_prob(tables, logits, index)
    lp64 = log_prob(tables.double(), logits.double(), index)
    assert lp32.dtype == torch.float32 and lp64.dtype == torch.float64
    assert torch.equal(lp32, lp64.float())
    assert torch.equal(log_partition(tables), log_partition(tables.double()).float())
    # The float32 pmf still sums to one over all 196,560 codewords.
    every = log_prob(tables[0], logits[0], torch.arange(SIZE))
    assert abs(every.double().exp().sum().item() - 1.0) < 1e-5
