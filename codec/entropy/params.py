"""The coding API boundary: pmf parameters rounded onto a fixed-point grid.

Encoder and decoder must compute bit-identical probabilities. Both first map the parameters
they are given onto the same grid, deterministically (numpy elementwise ops, no threads):

- tables: per coordinate (row of 9 values) subtract the row maximum (the pmf does not change:
  every codeword takes exactly one value per coordinate), round to multiples of ``GRID``
  (2^-8), clip to ``[TABLE_FLOOR, 0]`` = [-512, 0];
- mixture logits: subtract the maximum, round to ``GRID``, clip to ``[LOGIT_FLOOR, 0]``.

Then every sum of up to 2^30 table entries is exact in float64, so its value does not depend on
summation order, and the coding kernels (:mod:`.kernels`) can rely on the bounded range. Entries
more than 512 nats below their row maximum are raised to -512: a change only in the far tail.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import torch

from ..jit import kernel
from ..leech.shell import DIM, VALUES

GRID = 2.0**-8
TABLE_FLOOR = -512.0
LOGIT_FLOOR = -512.0


class CodingParams(NamedTuple):
    """Grid-rounded parameters of ``T`` tokens with ``M`` mixture components."""

    tables: np.ndarray  # (T, M, 24, 9) float64, multiples of GRID in [TABLE_FLOOR, 0], row max 0
    logits: np.ndarray  # (T, M) float64, multiples of GRID in [LOGIT_FLOOR, 0], max 0

    def __len__(self) -> int:
        return self.tables.shape[0]

    def rows(self, start: int, stop: int) -> CodingParams:
        """The tokens ``start:stop`` (views)."""
        return CodingParams(self.tables[start:stop], self.logits[start:stop])


class RawParams(NamedTuple):
    """Validated, not yet rounded parameters (float32 or float64, C-contiguous)."""

    tables: np.ndarray  # (T, M, 24, 9)
    logits: np.ndarray  # (T, M)

    def __len__(self) -> int:
        return self.tables.shape[0]


def _as_array(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype not in (torch.float32, torch.float64):
            x = x.to(torch.float64)
        x = x.numpy()
    out = np.asarray(x)
    if out.dtype not in (np.float32, np.float64):
        out = out.astype(np.float64)
    return np.ascontiguousarray(out)


def validate_params(
    tables: np.ndarray | torch.Tensor, mix_logits: np.ndarray | torch.Tensor
) -> RawParams:
    """Check shapes (tables ``(T, M, 24, 9)``, logits ``(T, M)``) and finiteness."""
    t = _as_array(tables)
    logits = _as_array(mix_logits)
    if t.ndim != 4 or t.shape[2:] != (DIM, VALUES) or t.shape[1] < 1:
        raise ValueError(f"tables must have shape (T, M, {DIM}, {VALUES}), got {t.shape}")
    if logits.shape != t.shape[:2]:
        raise ValueError(f"mix_logits must have shape {t.shape[:2]}, got {logits.shape}")
    if not _all_finite(t.reshape(-1)):
        raise ValueError("tables must be finite")
    if not _all_finite(logits.reshape(-1)):
        raise ValueError("mix_logits must be finite")
    return RawParams(t, logits)


@kernel(parallel=True)
def _all_finite(x: np.ndarray) -> bool:
    bad = 0
    for i in numba.prange(x.shape[0]):
        if not np.isfinite(x[i]):
            bad += 1
    return bad == 0


@kernel(inline="always")
def _grid(x: float, floor: float) -> float:
    """``clip(rint(x / GRID), floor / GRID, 0) * GRID`` (``+ 0.0``: no negative zeros)."""
    v = np.rint(x * (1.0 / GRID))
    v = min(max(v, floor * (1.0 / GRID)), 0.0)
    return v * GRID + 0.0


@kernel(parallel=True)
def _grid_kernel(tables, logits, out_tables, out_logits) -> None:
    n, m = logits.shape
    for t in numba.prange(n):
        for j in range(m):
            for d in range(DIM):
                row = tables[t, j, d]
                top = -np.inf
                for a in range(VALUES):
                    top = max(top, np.float64(row[a]))
                for a in range(VALUES):
                    out_tables[t, j, d, a] = _grid(np.float64(row[a]) - top, TABLE_FLOOR)
        top = -np.inf
        for j in range(m):
            top = max(top, np.float64(logits[t, j]))
        for j in range(m):
            out_logits[t, j] = _grid(np.float64(logits[t, j]) - top, LOGIT_FLOOR)


def grid_rows(
    raw: RawParams, start: int, stop: int, out: CodingParams | None = None
) -> CodingParams:
    """Round the tokens ``start:stop`` of ``raw`` onto the coding grid (into ``out`` if given:
    arrays with at least ``stop - start`` rows; the result is a view of them)."""
    count = stop - start
    m = raw.tables.shape[1]
    if out is None or out.tables.shape[0] < count or out.tables.shape[1] != m:
        out = CodingParams(np.empty((count, m, DIM, VALUES)), np.empty((count, m)))
    result = out.rows(0, count)
    if count:
        _grid_kernel(raw.tables[start:stop], raw.logits[start:stop], *result)
    return result


def quantize_params(
    tables: np.ndarray | torch.Tensor, mix_logits: np.ndarray | torch.Tensor
) -> CodingParams:
    """Round tables ``(T, M, 24, 9)`` and mixture logits ``(T, M)`` onto the coding grid."""
    raw = validate_params(tables, mix_logits)
    return grid_rows(raw, 0, len(raw))
