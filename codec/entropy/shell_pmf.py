"""Exact probabilities of Λ24 shell tokens under the table family (torch, differentiable).

A token's pmf over the 196,560 codewords ``v`` (integer coordinates -4..4, see
:mod:`lqz.leech.shell`) is a mixture of ``M`` components, each a table ``L[d, a]`` (24 x 9,
value column ``a + 4``)::

    log p_m(v) = sum_d L[d, v_d] - log Z_m,      p(v) = sum_m softmax(mix_logits)_m p_m(v)

``log Z_m`` has closed forms per shape (A: ``(+-4)^2``, B: ``(+-2)^8`` on octads, C:
``(-+3, +-1^23)`` on Golay words), evaluated here in float64 log space with max shifts:

- A: log-sum-exp over the 276 pairs of ``lA_i + lA_j``.
- B: per octad, ``sum lB_i + log f`` with the even-parity factor ``f = (1 +- prod |t_i|) / 2``
  taken from ``u = sum log|t_i|`` as ``log1p(e^u)`` or ``log(-expm1(u))`` (no cancellation),
  then log-sum-exp over 759 octads.
- C: ``log Z_C = logsumexp_c (B1 + c.delta + log S(c))`` over the 4,096 Golay words, with
  ``S(c) = sum_i exp(r_i(c_i))`` as a 4096 x 48 product, summed in tiers of 300 nats so that no
  word underflows whatever the table range.

This module is the training path (any float tables, gradients w.r.t. tables and logits). The
coder computes the same pmf through :mod:`.chain` on grid-rounded parameters.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .structure import (
    CODEBOOK_SIZE,
    DETAIL_SIZES,
    OFFSETS,
    SHAPES,
    SUPPORT_SIZES,
    codebook_columns,
    golay_bits,
    octads,
    pairs,
)

__all__ = [
    "DETAIL_SIZES",
    "SHAPES",
    "SUPPORT_SIZES",
    "join_index",
    "log_partition",
    "log_prob",
    "split_index",
]

_TIER = 300.0
_THETA = math.exp(-300.0)
_TINY = 1e-300
_ROWS = 256  # components per block in the 4096-wide Golay stage (cache-sized)


def split_index(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical indices -> (shape, support, detail), int64 arrays of the same shape."""
    index = np.asarray(index, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= CODEBOOK_SIZE):
        raise ValueError(f"Leech shell indices must lie in 0..{CODEBOOK_SIZE - 1}")
    shape = (index >= OFFSETS[1]).astype(np.int64) + (index >= OFFSETS[2])
    rest = index - np.asarray(OFFSETS, dtype=np.int64)[shape]
    sizes = np.asarray(DETAIL_SIZES, dtype=np.int64)[shape]
    return shape, rest // sizes, rest % sizes


def join_index(shape: np.ndarray, support: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """(shape, support, detail) -> canonical indices (int64); inverse of :func:`split_index`."""
    shape = np.asarray(shape, dtype=np.int64)
    support = np.asarray(support, dtype=np.int64)
    detail = np.asarray(detail, dtype=np.int64)
    if shape.size and (shape.min() < 0 or shape.max() >= SHAPES):
        raise ValueError("shape must lie in 0..2")
    supports = np.asarray(SUPPORT_SIZES, dtype=np.int64)[shape]
    details = np.asarray(DETAIL_SIZES, dtype=np.int64)[shape]
    if ((support < 0) | (support >= supports) | (detail < 0) | (detail >= details)).any():
        raise ValueError("support or detail out of range for its shape")
    return np.asarray(OFFSETS, dtype=np.int64)[shape] + support * details + detail


@lru_cache(maxsize=1)
def _host_structure() -> dict[str, torch.Tensor]:
    golay = golay_bits().astype(np.float64)
    octad_matrix = np.zeros((24, octads().shape[0]))
    octad_matrix[octads().T, np.arange(octads().shape[0])] = 1.0
    host = {
        "pairs": pairs(),
        "octad_matrix": octad_matrix,
        "golay_t": golay.T,  # (24, 4096)
        # (48, 4096): rows 0-23 select r+ where c_i = 0, rows 24-47 r- where c_i = 1
        "golay_terms_t": np.concatenate([1.0 - golay, golay], axis=1).T,
        # (4096, 49): columns [1 - c_i], [c_i], 1
        "golay_terms_ones": np.concatenate([1.0 - golay, golay, np.ones_like(golay[:, :1])], 1),
        "columns": np.array(codebook_columns()),
    }
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in host.items()}


@lru_cache(maxsize=8)
def _structure(device: torch.device) -> dict[str, torch.Tensor]:
    """The structure tensors on ``device`` (float64 or int64), built once per device."""
    return {k: v.to(device) for k, v in _host_structure().items()}


def _log_z_a(x: torch.Tensor, base0: torch.Tensor, st: dict[str, torch.Tensor]) -> torch.Tensor:
    la = torch.logaddexp(x[..., 8], x[..., 0]) - x[..., 4]
    pair = la[..., st["pairs"][:, 0]] + la[..., st["pairs"][:, 1]]
    return base0 + torch.logsumexp(pair, dim=-1)


def _log_z_b(x: torch.Tensor, base0: torch.Tensor, st: dict[str, torch.Tensor]) -> torch.Tensor:
    # Per octad: sum lB_i + log f, f = (1 + sign * prod|t|) / 2 with prod|t| = exp(u),
    # u = sum log|t_i| = sum log1p(-eps_i), eps = 1 - |t| = 2 sigmoid(-|y|): no cancellation.
    lb = torch.logaddexp(x[..., 6], x[..., 2]) - x[..., 4]
    y = x[..., 6] - x[..., 2]
    eps = 2.0 * torch.sigmoid(-y.abs())
    near_one = eps < 0.5  # |t| > 1/2: log1p(-eps) keeps the digits that log(|t|) loses
    log_t = torch.where(
        near_one,
        torch.log1p(-torch.where(near_one, eps, torch.zeros_like(eps))),
        torch.log(
            torch.where(near_one, torch.ones_like(y), torch.tanh(0.5 * y.abs())).clamp_min(_TINY)
        ),
    )
    indicator = st["octad_matrix"]  # (24, 759)
    u = log_t @ indicator
    odd = torch.remainder((y < 0).to(x.dtype) @ indicator, 2.0) > 0.5
    log_f = torch.where(
        odd, torch.log((-torch.expm1(u)).clamp_min(_TINY)), torch.log1p(torch.exp(u))
    )
    return base0 + torch.logsumexp(lb @ indicator + log_f - math.log(2.0), dim=-1)


def _log_z_c(x: torch.Tensor, st: dict[str, torch.Tensor]) -> torch.Tensor:
    """log Z_C of (N, 24, 9) normalized tables.

    ``Z_C = F * sum_i [exp(r+_i) (1 - rho_i) + exp(r-_i) rho_i]`` with ``F = sum_c exp(c.delta)``
    and ``rho_i = P(c_i = 1)`` under ``exp(c.delta) / F``: one 4096-wide exp and two products.
    Rows where a needed ``rho`` underflows go through the tiered evaluation instead.
    """
    fast, rows = _log_z_c_fast(x, st)
    if bool(rows.any()):
        exact = _log_z_c_tiered(x[rows], st)
        fast = _replace(fast, rows, exact)
    return fast


def _log_z_c_fast(
    x: torch.Tensor, st: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fast log Z_C, rows whose fast value may have lost an underflowed rho)."""
    b1 = x[..., 5].sum(dim=-1)
    delta = x[..., 3] - x[..., 5]
    r = torch.cat([x[..., 1] - x[..., 5], x[..., 7] - x[..., 3]], dim=-1)  # (N, 48)
    cd = delta @ st["golay_t"]  # (N, 4096)
    top = cd.amax(dim=-1, keepdim=True).detach()
    sums = torch.exp(cd - top) @ st["golay_terms_ones"]  # (N, 49): [sum (1-c), sum c, sum 1]
    total = sums[..., 48:]
    rho = sums[..., :48] / total
    log_rho = torch.log(rho.clamp_min(_TINY))
    terms = r + log_rho
    fast = torch.logsumexp(terms, dim=-1) + torch.log(total[..., 0]) + top[..., 0] + b1
    # rho below ~1e-250 may have underflowed; it matters if its r could lift the term near the max
    suspect = (rho < 1e-250) & (r - 570.0 > terms.amax(dim=-1, keepdim=True) - 60.0)
    return fast, suspect.any(dim=-1)


def _replace(values: torch.Tensor, rows: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    index = torch.nonzero(rows)[:, 0]
    return values.index_put((index,), new)


def _log_z_c_tiered(x: torch.Tensor, st: dict[str, torch.Tensor]) -> torch.Tensor:
    """log Z_C as logsumexp_c (B1 + c.delta + log S(c)), S summed in tiers (any table range)."""
    b1 = x[..., 5].sum(dim=-1)
    delta = x[..., 3] - x[..., 5]
    r = torch.cat([x[..., 1] - x[..., 5], x[..., 7] - x[..., 3]], dim=-1)
    shift = r.amax(dim=-1, keepdim=True).detach()
    s = torch.exp(r - shift) @ st["golay_terms_t"]
    lw = delta @ st["golay_t"] + _tiered_log_s(r, shift, s, st)
    return b1 + shift[..., 0] + torch.logsumexp(lw, dim=-1)


def _tiered_log_s(
    r: torch.Tensor, shift: torch.Tensor, s: torch.Tensor, st: dict[str, torch.Tensor]
) -> torch.Tensor:
    """log S(c) - shift, each word evaluated at the first tier where S >= e^-300."""
    ok = s >= _THETA
    log_s = torch.where(ok, torch.log(s.clamp_min(_TINY)), torch.zeros_like(s))
    done = ok
    offset = 0.0
    while not bool(done.all()):
        offset -= _TIER
        s = torch.exp((r - shift - offset).clamp(max=0.0)) @ st["golay_terms_t"]
        ok = (s >= _THETA) & ~done
        log_s = torch.where(ok, offset + torch.log(s.clamp_min(_TINY)), log_s)
        done = done | ok
    return log_s


def _log_partition64(tables: torch.Tensor) -> torch.Tensor:
    if tables.shape[-2:] != (24, 9):
        raise ValueError(f"tables must have shape (..., M, 24, 9), got {tuple(tables.shape)}")
    x = tables.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("tables must be finite")
    row_max = x.amax(dim=-1, keepdim=True).detach()
    x = x - row_max  # p does not change; log Z shifts by the sum of the row maxima
    st = _structure(x.device)
    base0 = x[..., 4].sum(dim=-1)
    flat = x.reshape(-1, 24, 9)
    log_z_c = (
        torch.cat([_log_z_c(part, st) for part in flat.split(_ROWS)])
        if len(flat)
        else flat[:, 0, 0]
    )
    parts = [_log_z_a(x, base0, st), _log_z_b(x, base0, st), log_z_c.reshape(base0.shape)]
    return torch.logsumexp(torch.stack(parts, -1), dim=-1) + row_max[..., 0].sum(dim=-1)


def log_partition(tables: torch.Tensor) -> torch.Tensor:
    """log Z of each component: tables ``(..., M, 24, 9)`` -> ``(..., M)`` (computed in float64)."""
    return _log_partition64(tables).to(tables.dtype)


def log_prob(
    tables: torch.Tensor,
    mix_logits: torch.Tensor,
    index: torch.Tensor,
    coords: torch.Tensor | None = None,
) -> torch.Tensor:
    """Natural log-probability of canonical ``index`` under the mixture (float64 internally).

    ``tables``: ``(..., M, 24, 9)``, ``mix_logits``: ``(..., M)``, ``index``: integer tensor; the
    batch shapes broadcast. Returns ``index``'s broadcast shape in the dtype of ``tables``.
    Differentiable w.r.t. ``tables`` and ``mix_logits``.

    ``coords`` (``(*batch, 24)``, optional): a differentiable stand-in for the codeword's
    integer coordinates, equal to them in value (a straight-through latent). The value returned
    is unchanged; its gradient w.r.t. ``coords`` is that of each component's tables read as
    piecewise-linear functions of a coordinate (central differences between neighbouring
    values, one-sided at -4 and 4), weighted by the components' posteriors: the rate term of
    training (:func:`lqz.objectives.prior_bits`).
    """
    index = torch.as_tensor(index, device=tables.device).long()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= CODEBOOK_SIZE):
        raise ValueError(f"Leech shell indices must lie in 0..{CODEBOOK_SIZE - 1}")
    m = tables.shape[-3]
    if mix_logits.shape[-1:] != (m,):
        raise ValueError(f"mix_logits must end in M={m}, got {tuple(mix_logits.shape)}")
    log_z = _log_partition64(tables)
    batch = torch.broadcast_shapes(tables.shape[:-3], mix_logits.shape[:-1], index.shape)
    columns = _structure(tables.device)["columns"][index.expand(batch)]  # (*batch, 24)
    x = tables.to(torch.float64).expand(*batch, m, 24, 9)
    gather = columns[..., None, :, None].expand(*batch, m, 24, 1)
    numerator = torch.gather(x, -1, gather)[..., 0].sum(dim=-1)  # (*batch, M)
    if coords is not None:
        numerator = numerator + _slope_term(x, columns, coords)
    log_pi = torch.log_softmax(mix_logits.to(torch.float64), dim=-1)
    joint = log_pi.expand(*batch, m) + numerator - log_z.expand(*batch, m)
    return torch.logsumexp(joint, dim=-1).to(tables.dtype)


def _slope_term(x: torch.Tensor, columns: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Zero in value; gradient w.r.t. ``coords`` (*batch, 24): the slopes of tables ``x``
    (*batch, M, 24, 9) at value columns ``columns`` (*batch, 24), per component (*batch, M)."""
    x = x.detach()
    lo = (columns - 1).clamp_min(0)[..., None, :, None].expand(*x.shape[:-1], 1)
    hi = (columns + 1).clamp_max(8)[..., None, :, None].expand(*x.shape[:-1], 1)
    rise = torch.gather(x, -1, hi)[..., 0] - torch.gather(x, -1, lo)[..., 0]
    run = (hi - lo)[..., 0].to(x.dtype)
    offset = coords.to(x.dtype) - coords.detach().to(x.dtype)
    return (rise / run * offset[..., None, :]).sum(dim=-1)
