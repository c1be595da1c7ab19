"""The Golay code and the 196,560 minimal vectors of Λ24: structure, canonical order, indexing.

Every property is checked against an independent reference: the definitions in the design notes
and in the docstrings of ``lqz.leech.golay`` / ``lqz.leech.shell``, recomputed here from scratch,
and the known inner-product distribution of the Leech kissing configuration.
"""

from __future__ import annotations

import itertools
import time

import numba
import numpy as np
import pytest
import torch

import lqz.leech as leech
from lqz.leech.golay import golay_codewords, hamming_prime_words, hamming_words

SIZE = 196_560
OFFSET_B = 1_104
OFFSET_C = 1_104 + 97_152

#: Inner products <v, w> (integer vectors, squared norm 32) for one fixed v over all 196,560 w:
#: the distance distribution of the Leech kissing configuration (Conway & Sloane, SPLAG ch. 4).
KNOWN_DISTRIBUTION = {32: 1, 16: 4_600, 8: 47_104, 0: 93_150, -8: 47_104, -16: 4_600, -32: 1}


# ---------------------------------------------------------------------------------------------
# Golay code


def test_golay_is_a_24_12_8_code(to_masks) -> None:
    words = golay_codewords()
    assert words.shape == (4096, 24)
    assert set(np.unique(words).tolist()) <= {0, 1}
    masks = to_masks(words)
    assert len(np.unique(masks)) == 4096

    weights = words.astype(np.int64).sum(axis=1)
    values, counts = np.unique(weights, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {
        0: 1,
        8: 759,
        12: 2576,
        16: 759,
        24: 1,
    }

    # Linear: closed under XOR (all 4096^2 sums are codewords), hence a subgroup of size 2^12,
    # i.e. dimension 12.
    member = np.zeros(1 << 24, dtype=bool)
    member[masks] = True
    assert member[masks[:, None] ^ masks[None, :]].all()

    # Minimum distance 8 over all pairs: d(a, b) = |a| + |b| - 2 |a & b|.
    w = words.astype(np.int32)
    overlap = w @ w.T
    distance = weights[:, None] + weights[None, :] - 2 * overlap
    assert distance[~np.eye(4096, dtype=bool)].min() == 8

    # Self-dual: every two codewords overlap in an even number of positions.
    assert (overlap % 2 == 0).all()


def test_hamming_codes_of_turyn_construction() -> None:
    h = hamming_words().astype(np.int64)
    hp = hamming_prime_words().astype(np.int64)
    for code in (h, hp):
        assert len({tuple(r) for r in code}) == 16
        weights = sorted(code.sum(axis=1).tolist())
        assert weights == [0] + [4] * 14 + [8]  # extended Hamming [8, 4, 4]
        closure = {tuple(a ^ b) for a in code for b in code}
        assert closure == {tuple(r) for r in code}
    common = {tuple(r) for r in h} & {tuple(r) for r in hp}
    assert common == {(0,) * 8, (1,) * 8}


def test_golay_word_order_is_the_documented_turyn_order() -> None:
    """Word ``x_index * 256 + a_index * 16 + b_index`` is ``(a^x, b^x, a^b^x)``."""

    def h_word(index: int) -> np.ndarray:
        w, e = divmod(index, 2)
        return np.array([(bin(w & y).count("1") + e) & 1 for y in range(8)], dtype=np.uint8)

    perm = [0, 1, 2, 4, 3, 6, 7, 5]  # H' = H with coordinates permuted (documented constant)
    words = golay_codewords()
    for xi, ai, bi in itertools.product(range(16), repeat=3):
        x = h_word(xi)[perm]
        a, b = h_word(ai), h_word(bi)
        expected = np.concatenate([a ^ x, b ^ x, a ^ b ^ x])
        np.testing.assert_array_equal(words[xi * 256 + ai * 16 + bi], expected)


# ---------------------------------------------------------------------------------------------
# The codebook as a set


def test_codebook_size_range_norm(int_book) -> None:
    raw = leech.integer_codebook()
    assert raw.shape == (SIZE, 24) == (leech.SIZE, leech.DIM)
    assert np.issubdtype(raw.dtype, np.integer)
    assert int_book.min() == -4 and int_book.max() == 4
    assert ((int_book**2).sum(axis=1) == 32).all()
    assert leech.SQUARED_NORM == 32


def _as_keys(book: np.ndarray) -> np.ndarray:
    """One sortable opaque key per row (the 24 int8 bytes)."""
    b = np.ascontiguousarray(book.astype(np.int8))
    return b.view(np.dtype((np.void, 24))).ravel()


def test_codebook_rows_are_distinct(int_book) -> None:
    assert len(np.unique(_as_keys(int_book))) == SIZE


def test_codebook_closed_under_negation(int_book) -> None:
    keys = np.sort(_as_keys(int_book))
    negated = np.sort(_as_keys(-int_book))
    assert np.array_equal(keys, negated)


def _shapes(book: np.ndarray) -> np.ndarray:
    """0, 1, 2 for shapes A (±4², 0²²), B (±2⁸, 0¹⁶), C (∓3, ±1²³); -1 for anything else."""
    a = np.abs(book)
    count = {k: (a == k).sum(axis=1) for k in range(5)}
    shape = np.full(len(book), -1)
    shape[(count[4] == 2) & (count[0] == 22)] = 0
    shape[(count[2] == 8) & (count[0] == 16)] = 1
    shape[(count[3] == 1) & (count[1] == 23)] = 2
    return shape


def test_shape_counts_and_blocks(int_book) -> None:
    shape = _shapes(int_book)
    assert (shape >= 0).all()
    assert np.bincount(shape).tolist() == [1_104, 97_152, 98_304]
    # Shape-major canonical order: A at 0, B at 1104, C at 98256.
    assert (shape[:OFFSET_B] == 0).all()
    assert (shape[OFFSET_B:OFFSET_C] == 1).all()
    assert (shape[OFFSET_C:] == 2).all()


def test_codebook_equals_golay_construction(int_book, golay_masks, to_masks) -> None:
    """Each vector obeys the construction rule of its shape; with the counts and uniqueness this
    makes the codebook exactly the set built from the extended Golay code."""
    shape = _shapes(int_book)
    negative = int_book < 0
    octad_masks = {int(m) for m in golay_masks if bin(int(m)).count("1") == 8}
    assert len(octad_masks) == 759

    b = int_book[shape == 1]
    support = to_masks(b != 0)
    assert all(int(m) in octad_masks for m in support)
    assert (negative[shape == 1].sum(axis=1) % 2 == 0).all()

    c = int_book[shape == 2]
    position = np.argmax(np.abs(c) == 3, axis=1)
    # v = s * (1, .., -3 at i, .., 1) with s = 1 - 2 c: the minus signs of v are c XOR {i}.
    flips = to_masks(negative[shape == 2]) ^ (np.int64(1) << position)
    assert np.isin(flips, golay_masks).all()


def test_codebook_lies_in_the_leech_lattice(int_book, golay_masks) -> None:
    """Conway's definition (scaled by √8): all coordinates ≡ m (mod 2), Σ x ≡ 4m (mod 8), and
    for each residue mod 4 the positions with that residue form a Golay codeword."""
    m = int_book[:, 0] % 2
    assert (int_book % 2 == m[:, None]).all()
    assert (int_book.sum(axis=1) % 8 == 4 * m).all()
    member = np.zeros(1 << 24, dtype=bool)
    member[golay_masks] = True
    weights = np.int64(1) << np.arange(24, dtype=np.int64)
    for residue in range(4):
        masks = ((int_book % 4 == residue) * weights).sum(axis=1)
        assert member[masks].all(), residue


# ---------------------------------------------------------------------------------------------
# Inner products


@numba.njit(parallel=True, cache=False)
def _histogram(gram: np.ndarray, out: np.ndarray) -> None:
    """out[i, g + 32] += 1 for every entry g of row i; out[i, 65] counts non-integers/outliers."""
    for i in numba.prange(gram.shape[0]):
        for j in range(gram.shape[1]):
            g = gram[i, j]
            k = int(g)
            if k != g or k < -32 or k > 32:
                out[i, 65] += 1
            else:
                out[i, k + 32] += 1


def _inner_product_histograms(rows: np.ndarray, cols: np.ndarray, block: int = 128) -> np.ndarray:
    """(len(rows), 66) counts of each inner product -32..32 (column 65: anything else), by a
    blocked float32 GEMM (exact: integer entries, sums far below 2^24)."""
    r = torch.from_numpy(rows.astype(np.float32))
    ct = torch.from_numpy(np.ascontiguousarray(cols.astype(np.float32).T))
    out = np.zeros((len(rows), 66), dtype=np.int64)
    gram = torch.empty(min(block, len(rows)), ct.shape[1])
    for start in range(0, len(rows), block):
        stop = min(start + block, len(rows))
        g = gram[: stop - start]
        torch.mm(r[start:stop], ct, out=g)
        _histogram(g.numpy(), out[start:stop])
    return out


def _check_distribution(hist: np.ndarray) -> None:
    assert (hist[:, 65] == 0).all(), "inner products that are not integers in -32..32"
    expected = np.zeros(66, dtype=np.int64)
    for value, count in KNOWN_DISTRIBUTION.items():
        expected[value + 32] = count
    bad = np.nonzero((hist != expected).any(axis=1))[0]
    assert bad.size == 0, f"{bad.size} rows off; first {bad[0]}: {hist[bad[0]].nonzero()}"


def test_inner_products_sampled(int_book, rng) -> None:
    """Rows: the first and last codewords of every shape block and random ones; columns: all."""
    edges = [0, 1, 2, OFFSET_B - 1, OFFSET_B, OFFSET_B + 1, OFFSET_C - 1, OFFSET_C, SIZE - 1]
    rows = np.concatenate([edges, rng.choice(SIZE, 500, replace=False)])
    hist = _inner_product_histograms(int_book[rows], int_book)
    # Only 0, ±8, ±16, ±32; exactly 4,600 neighbours at 16 (60°); the full known distribution.
    allowed = {v + 32 for v in KNOWN_DISTRIBUTION}
    assert set(np.nonzero(hist.sum(axis=0))[0].tolist()) <= allowed
    assert (hist[:, 16 + 32] == 4_600).all()
    _check_distribution(hist)


@pytest.mark.slow
def test_inner_products_all_codewords(int_book) -> None:
    """The same distribution for every one of the 196,560 codewords.

    Uses negation closure (tested above): with H the codewords whose first nonzero coordinate is
    positive, the codebook is H ∪ -H (disjoint), so for v in H the count of w with <v, w> = k is
    #{u ∈ H: <v,u> = k} + #{u ∈ H: <v,u> = -k} (k ≠ 0; twice #{<v,u> = 0} for k = 0), and the
    distribution of -v is that of v mirrored (KNOWN_DISTRIBUTION is symmetric). That is a
    98,280² float32 GEMM instead of 196,560².
    """
    first = np.argmax(int_book != 0, axis=1)
    positive = int_book[np.arange(SIZE), first] > 0
    half = int_book[positive]
    assert len(half) == SIZE // 2
    assert np.array_equal(np.sort(_as_keys(-half)), np.sort(_as_keys(int_book[~positive])))

    start = time.perf_counter()
    h = _inner_product_histograms(half, half, block=256)
    merged = h.copy()
    merged[:, :65] += h[:, 64::-1]  # add the mirrored counts: value k gets the count of -k
    print(f"98,280 x 98,280 inner products in {time.perf_counter() - start:.1f} s")
    _check_distribution(merged)


# ---------------------------------------------------------------------------------------------
# Unit codebook


def test_unit_codebook(int_book) -> None:
    book = leech.codebook()
    assert book.dtype == torch.float32 and book.shape == (SIZE, 24)
    torch.testing.assert_close(book.double().norm(dim=1), torch.ones(SIZE, dtype=torch.float64))
    reference = torch.from_numpy(int_book / np.sqrt(32.0)).float()
    torch.testing.assert_close(book, reference, rtol=0, atol=1e-7)
    # A copy: changing it leaves the next call untouched.
    book[0] = 0
    assert leech.codebook()[0].norm() > 0.99


def test_decode_matches_codebook(rng) -> None:
    indices = torch.from_numpy(rng.integers(0, SIZE, (3, 5, 7)))
    out = leech.decode(indices)
    assert out.shape == (3, 5, 7, 24) and out.dtype == torch.float32
    assert torch.equal(out, leech.codebook()[indices])


# ---------------------------------------------------------------------------------------------
# Indexing


def test_index_round_trip_all(int_book) -> None:
    index = leech.codeword_to_index(leech.integer_codebook())
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, np.arange(SIZE))
    np.testing.assert_array_equal(leech.index_to_codeword(np.arange(SIZE)), int_book)
    # Any integer dtype of codewords, and the negated book maps to a permutation.
    neg = leech.codeword_to_index(-int_book)
    assert np.array_equal(np.sort(neg), np.arange(SIZE))
    np.testing.assert_array_equal(leech.index_to_codeword(neg), -int_book)


def test_index_batch_shapes(rng) -> None:
    idx = rng.integers(0, SIZE, (4, 3, 5))
    words = leech.index_to_codeword(idx)
    assert words.shape == (4, 3, 5, 24)
    np.testing.assert_array_equal(leech.codeword_to_index(words), idx)
    single = leech.index_to_codeword(np.int64(123_456))
    assert single.shape == (24,)
    assert leech.codeword_to_index(single) == 123_456
    assert np.asarray(leech.codeword_to_index(single)).shape == ()
    assert leech.codeword_to_index(np.zeros((0, 24), dtype=np.int8)).shape == (0,)


@pytest.mark.parametrize("bad", [-1, SIZE, SIZE + 10, -SIZE])
def test_index_out_of_range(bad) -> None:
    with pytest.raises(ValueError):
        leech.index_to_codeword(np.array([0, bad]))


def _invalid_vectors() -> dict[str, np.ndarray]:
    from lqz.leech.shell import tables

    t = tables()
    octad = t.octads[0]
    out: dict[str, np.ndarray] = {}
    v = np.zeros(24, dtype=np.int64)
    out["zero"] = v.copy()
    v[[0, 1, 2]] = 4
    out["three 4s (norm 48)"] = v.copy()
    v = np.zeros(24, dtype=np.int64)
    v[0], v[1:5] = 4, 2
    out["(4, 2^4) norm 32"] = v
    v = np.zeros(24, dtype=np.int64)
    v[0], v[1:8] = 5, 1
    out["(5, 1^7) norm 32"] = v
    v = np.zeros(24, dtype=np.int64)
    v[:7], v[7:11] = 2, 1
    out["(2^7, 1^4) norm 32"] = v
    v = np.zeros(24, dtype=np.int64)
    v[0] = 8
    out["(8) norm 64"] = v
    v = np.zeros(24, dtype=np.int64)
    v[octad] = 2
    v[octad[3]] = -2
    out["octad, odd minus signs"] = v
    support = sorted(set(octad[:7].tolist()) | {next(j for j in range(24) if j not in octad)})
    v = np.zeros(24, dtype=np.int64)
    v[support] = 2
    out["2^8 off an octad"] = v
    c = leech.index_to_codeword(np.array(OFFSET_C + 5 * 24 + 7)).astype(np.int64)
    w = c.copy()
    w[0] = -w[0]
    out["C with one ±1 flipped"] = w
    w = c.copy()
    w[7] = -w[7]
    out["C with the 3 flipped"] = w
    w = c.copy()
    w[7] = np.sign(w[7])
    w[3] = 3 * w[3]
    w[7] = -w[7]  # move the -3 to another position without re-signing
    out["C with the 3 moved"] = w
    a = leech.index_to_codeword(np.array(17)).astype(np.int64)
    out["2 x A"] = 2 * a
    return out


@pytest.mark.parametrize("name", list(_invalid_vectors()))
def test_invalid_vectors_rejected(name) -> None:
    vector = _invalid_vectors()[name]
    assert vector.shape == (24,)
    book = leech.integer_codebook().astype(np.int64)
    # Independent confirmation that it really is not a codeword.
    assert not (book == vector).all(axis=1).any()
    with pytest.raises(ValueError):
        leech.codeword_to_index(vector)
    # One bad row spoils a batch.
    batch = np.stack([book[0], vector, book[-1]])
    with pytest.raises(ValueError):
        leech.codeword_to_index(batch)


@pytest.mark.parametrize("shape", [(23,), (25,), (24, 1), (2, 12)])
def test_codeword_to_index_wrong_dimension(shape) -> None:
    with pytest.raises(ValueError):
        leech.codeword_to_index(np.zeros(shape, dtype=np.int64))


def test_codeword_to_index_accepts_integral_floats() -> None:
    """The round(√32 · v) workflow: float arrays with integer values index fine."""
    unit = leech.codebook()[[0, 5_000, 150_000]].double().numpy()
    assert leech.codeword_to_index(np.round(unit * np.sqrt(32))).tolist() == [0, 5_000, 150_000]


def test_codeword_to_index_rejects_non_integers() -> None:
    v = np.zeros(24)
    v[0], v[1] = 4.5, 4.0
    with pytest.raises(ValueError):
        leech.codeword_to_index(v)


# ---------------------------------------------------------------------------------------------
# Canonical order (shell.py docstring)


def test_canonical_order_shape_a(int_book) -> None:
    """``pair * 4 + signs``; pairs i < j lexicographic; bit 0: v_i = -4, bit 1: v_j = -4."""
    rank = {p: r for r, p in enumerate(itertools.combinations(range(24), 2))}
    for index in range(OFFSET_B):
        v = int_book[index]
        i, j = np.nonzero(v)[0]
        signs = int(v[i] == -4) | (int(v[j] == -4) << 1)
        assert abs(v[i]) == abs(v[j]) == 4
        assert index == rank[(i, j)] * 4 + signs, index


def test_canonical_order_shape_b(int_book, golay_masks, to_masks) -> None:
    """``octad * 128 + signs``; octads by ascending support mask; bit k: k-th support
    coordinate is -2 (k < 7); the 8th sign makes the number of minus signs even."""
    block = int_book[OFFSET_B:OFFSET_C].reshape(759, 128, 24)
    masks = to_masks(block != 0)
    assert (masks == masks[:, :1]).all()  # one support per run of 128
    octads = masks[:, 0]
    assert (np.diff(octads) > 0).all()
    weights = np.array([bin(int(m)).count("1") for m in golay_masks])
    assert np.array_equal(octads, np.sort(golay_masks[weights == 8]))
    for o in range(759):
        support = np.nonzero(block[o, 0])[0]
        signs = block[o][:, support]  # (128, 8) values ±2
        bits = ((signs[:, :7] == -2) << np.arange(7)).sum(axis=1)
        np.testing.assert_array_equal(bits, np.arange(128))
        assert ((signs == -2).sum(axis=1) % 2 == 0).all()


def test_canonical_order_shape_c(int_book) -> None:
    """``codeword * 24 + position``: v = 1 - 2c except v_p = -3 (1 - 2 c_p)."""
    golay = golay_codewords().astype(np.int64)
    s = 1 - 2 * golay  # (4096, 24)
    expected = np.repeat(s[:, None, :], 24, axis=1)  # (4096, 24 positions, 24)
    p = np.arange(24)
    expected[:, p, p] *= -3
    np.testing.assert_array_equal(int_book[OFFSET_C:], expected.reshape(-1, 24))
