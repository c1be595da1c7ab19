"""Exact nearest-codeword search as batched torch ops on any device (the CUDA training path).

The same search as the numba kernel in :mod:`.search`, without its pruning, and with every
score computed by the same float64 operations in the same order: per-block 8-point Walsh
spectra in Turyn's form for shape C, the sequential octad sums for shape B, the two largest
magnitudes for shape A. Equal scores therefore fall the same way and the indices equal
:func:`lqz.leech.quantize`'s for every finite input (ties go to the smallest canonical index).

Shape C costs no 4096 x 24 product per vector: with Turyn words ``(a ^ x, b ^ x, a ^ b ^ x)``
both the correlation ``t`` and the -3's gain ``max_j(-s_j x_j)`` split into three 8-coordinate
blocks, each a 16 x 16 table over ``(x, a)``, ``(x, b)`` or ``(x, a ^ b)``; a word's score is
``t_0 + t_1 + t_2 + 4 max(g_0, g_1, g_2)``, a few elementwise passes over 4,096 values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import lru_cache

import numpy as np
import torch

from .golay import golay_codewords, hamming_prime_words, hamming_words
from .shell import DIM, NUM_GOLAY, NUM_OCTADS, OFFSET_B, OFFSET_C, tables

#: Rows per chunk on the CPU (cache-sized) and on accelerators; a row needs about 130 kB.
CPU_CHUNK_ROWS = 256
DEVICE_CHUNK_ROWS = 8192

_MAX_NORMAL_EXPONENT = 1023
_MIN_NORMAL_EXPONENT = -1022


@lru_cache(maxsize=1)
def _host_tables() -> dict[str, torch.Tensor]:
    t = tables()
    h = hamming_words().astype(np.int64)  # (16, 8): index 2w + e
    h_signs = 1.0 - 2.0 * h
    x_signs = 1.0 - 2.0 * hamming_prime_words().astype(np.float64)  # (16, 8)
    # The XOR of two H words is an H word; its index, looked up rather than assumed.
    lookup = {tuple(row): i for i, row in enumerate(h.tolist())}
    xor = np.array([[lookup[tuple((h[a] ^ h[b]).tolist())] for b in range(16)] for a in range(16)])
    # -s_j for the word block (a ^ x) at coordinate j, as a column of [v, -v]: (16 x, 16 a, 8)
    gain_signs = -(h_signs[None, :, :] * x_signs[:, None, :])
    gain_columns = np.arange(8) + 8 * (gain_signs < 0)
    membership = np.zeros((DIM, NUM_OCTADS))
    membership[t.octads.T, np.arange(NUM_OCTADS)] = 1.0
    host = {
        "x_signs": x_signs,
        "gain_columns": gain_columns.reshape(-1),
        "xor": xor.reshape(-1),  # column a * 16 + b picks a ^ b
        "octad_columns": t.octads.T.reshape(-1),  # column k * 759 + o: coordinate k of octad o
        "membership": membership,
        "golay_signs": 1.0 - 2.0 * golay_codewords().astype(np.float64),  # (4096, 24)
        "octads": t.octads,
        "pair_index": t.pair_index.reshape(-1),
        "powers": 2 ** np.arange(7),
    }
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in host.items()}


@lru_cache(maxsize=8)
def _device_tables(device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in _host_tables().items()}


def _walsh8(z: torch.Tensor) -> torch.Tensor:
    """Sylvester-ordered Walsh-Hadamard transform of the last dimension (8), butterfly by
    butterfly in the numba kernel's order (so the roundings agree)."""
    for half in (1, 2, 4):
        v = z.unflatten(-1, (8 // (2 * half), 2, half))
        lo, hi = v[..., 0, :], v[..., 1, :]
        z = torch.stack([lo + hi, lo - hi], dim=-2).flatten(-3)
    return z


def _power_of_two(exponent: torch.Tensor) -> torch.Tensor:
    """Exact float64 ``2**exponent`` for integer exponents in -1074..1023, built from its bits."""
    normal = exponent >= _MIN_NORMAL_EXPONENT
    biased = (exponent + _MAX_NORMAL_EXPONENT).clamp(min=0) << 52
    subnormal = torch.ones_like(exponent) << (exponent + 1074).clamp(0, 51)
    return torch.where(normal, biased, subnormal).view(torch.float64)


def _normalize_scale(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled by a power of two so the largest magnitude lies in [0.5, 1), as numpy's
    ``ldexp(x, -frexp(max |x|)[1])`` does (one correctly rounded product)."""
    _, exponent = torch.frexp(x.abs().amax(dim=1))
    shift = -exponent.to(torch.int64)[:, None]
    first = shift.clamp(max=_MAX_NORMAL_EXPONENT)
    # Beyond 2^1023 only rows of tiny values remain: scaling up in two steps is exact.
    return x * _power_of_two(first) * _power_of_two(shift - first)


def _nearest_rows(x: torch.Tensor, tab: dict[str, torch.Tensor]) -> torch.Tensor:
    """Canonical indices of finite float64 rows ``x`` (n, 24), all work on ``x.device``."""
    n = x.shape[0]
    rows = torch.arange(n, device=x.device)
    x = _normalize_scale(x)
    u = x.abs()
    negative = x < 0

    # Shape A: the two largest magnitudes, first occurrences.
    i1 = u.argmax(dim=1)
    i2 = u.scatter(1, i1[:, None], -torch.inf).argmax(dim=1)
    score_a = 4.0 * (u[rows, i1] + u[rows, i2])
    lo, hi = torch.minimum(i1, i2), torch.maximum(i1, i2)
    bits = negative[rows, lo].long() | (negative[rows, hi].long() << 1)
    index_a = tab["pair_index"][lo * DIM + hi] * 4 + bits

    # Shape B: per octad the sequential sum (the kernel's rounding), parity correction.
    uo = torch.gather(u, 1, tab["octad_columns"].expand(n, -1)).view(n, 8, NUM_OCTADS)
    total = uo[:, 0]
    for k in range(1, 8):
        total = total + uo[:, k]
    smallest = uo.amin(dim=1)
    odd = torch.remainder(negative.to(torch.float64) @ tab["membership"], 2.0) == 1.0
    score_b_all = 2.0 * total
    score_b_all = torch.where(odd, score_b_all - 4.0 * smallest, score_b_all)
    octad = score_b_all.argmax(dim=1)
    score_b = score_b_all[rows, octad]
    support = tab["octads"][octad]
    index_b = OFFSET_B + octad * 128 + _octad_sign_bits(uo[rows, :, octad], x, support, tab)

    # Shape C: block spectra and block gains over Turyn's (x, a), then 4,096 words.
    blocks = x.view(n, 3, 8)
    spectra = _walsh8(tab["x_signs"][None, :, None, :] * blocks[:, None])  # (n, 16 x, 3, 8)
    # H word h = 2w + e correlates as (1 - 2e) times Walsh coefficient w: (n, 16 x, 3, 16 h)
    corr = torch.stack([spectra, -spectra], dim=-1).flatten(-2)
    signed = torch.cat([blocks, -blocks], dim=-1)  # (n, 3, 16)
    gains = torch.gather(signed, 2, tab["gain_columns"].expand(n, 3, -1))
    gains = gains.view(n, 3, 16, 16, 8).amax(dim=-1)  # (n, 3, 16 x, 16 h)
    # Block 2 holds a ^ b: correlation and gain of each word's third block, (n, 16 x, 2, 256).
    third = torch.stack([corr[:, :, 2], gains[:, 2]], dim=2)
    third = torch.gather(third, 3, tab["xor"].expand(n, 16, 2, -1))
    t = corr[:, :, 0, :, None] + corr[:, :, 1, None, :]  # (n, 16 x, 16 a, 16 b)
    t.add_(third[:, :, 0].view(n, 16, 16, 16))
    gain = torch.maximum(gains[:, 0, :, :, None], gains[:, 1, :, None, :])
    torch.maximum(gain, third[:, :, 1].view(n, 16, 16, 16), out=gain)
    score = t.add_(gain, alpha=4.0).view(n, NUM_GOLAY)  # t + 4 * gain, 4 * gain exact
    del gain
    word = score.argmax(dim=1)  # Turyn index = canonical word order
    score_c = score[rows, word]
    position = (-tab["golay_signs"][word] * x).argmax(dim=1)
    index_c = OFFSET_C + word * DIM + position

    # Across shapes: the larger score, the earlier shape on ties (smaller indices).
    take_a = (score_a >= score_b) & (score_a >= score_c)
    take_b = score_b >= score_c
    return torch.where(take_a, index_a, torch.where(take_b, index_b, index_c))


def _octad_sign_bits(
    uw: torch.Tensor, x: torch.Tensor, support: torch.Tensor, tab: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Sign bits of the best codeword on each row's octad (``uw``: its 8 magnitudes).

    With odd parity one smallest entry takes the wrong sign; among tied ones the flip that
    gives the smallest index: the highest negative among the 7 sign-bit coordinates, else the
    8th coordinate, else the lowest of the 7.
    """
    negative = torch.gather(x, 1, support) < 0
    odd = (negative.sum(dim=1) & 1).bool()
    smallest = uw.amin(dim=1, keepdim=True)
    tied = uw[:, :7] == smallest
    tied_negative = tied & negative[:, :7]
    highest_negative = 6 - tied_negative.flip(1).to(torch.int8).argmax(dim=1)
    lowest = tied.to(torch.int8).argmax(dim=1)
    flip_at = torch.where(
        tied_negative.any(dim=1),
        highest_negative,
        torch.where(uw[:, 7] == smallest[:, 0], 7, lowest),
    )
    flip = odd[:, None] & (torch.arange(7, device=x.device) == flip_at[:, None])
    return ((negative[:, :7] ^ flip).long() * tab["powers"]).sum(dim=1)


def quantize_torch(x: torch.Tensor | np.ndarray, chunk_rows: int | None = None) -> torch.Tensor:
    """Indices (int64, shape ``x.shape[:-1]``, on ``x.device``) of the nearest codewords.

    The same indices as :func:`lqz.leech.quantize` (exact, ties to the smallest index) from
    batched torch ops on ``x``'s device, in float64 whatever ``x``'s dtype (autocast is
    switched off inside). No gradient. ``chunk_rows`` bounds the working memory (about
    150 kB per row): default 256 rows on the CPU, 8192 elsewhere. Raises ValueError for a
    trailing dimension other than 24 or non-finite values (that check synchronizes with the
    device once per call).
    """
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.asarray(x, dtype=np.float64))
    if x.shape[-1:] != (DIM,):
        raise ValueError(f"expected a trailing dimension of {DIM}, got shape {tuple(x.shape)}")
    if x.is_complex():
        raise ValueError("cannot quantize complex values")
    if chunk_rows is None:
        chunk_rows = CPU_CHUNK_ROWS if x.device.type == "cpu" else DEVICE_CHUNK_ROWS
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    flat = x.detach().reshape(-1, DIM).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError("cannot quantize non-finite values")
    out = torch.empty(len(flat), dtype=torch.int64, device=flat.device)
    with _exact_mode(flat.device):
        tab = _device_tables(flat.device)
        for start in range(0, len(flat), chunk_rows):
            out[start : start + chunk_rows] = _nearest_rows(flat[start : start + chunk_rows], tab)
    return out.reshape(x.shape[:-1])


@contextmanager
def _exact_mode(device: torch.device) -> Iterator[None]:
    """No autograd and no autocast: an autocast region would run the products in low precision."""
    with ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        if torch.amp.is_autocast_available(device.type):
            stack.enter_context(torch.autocast(device.type, enabled=False))
        yield
