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

import numpy as np
import torch

from ..leech.shell import DIM

VALUES = 9
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


def _as_float64(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    out = np.asarray(x, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite")
    return out


def _to_grid(x: np.ndarray, floor: float) -> np.ndarray:
    return np.clip(np.rint(x * (1.0 / GRID)), floor / GRID, 0.0) * GRID


def quantize_params(
    tables: np.ndarray | torch.Tensor, mix_logits: np.ndarray | torch.Tensor
) -> CodingParams:
    """Round tables ``(T, M, 24, 9)`` and mixture logits ``(T, M)`` onto the coding grid."""
    t = _as_float64(tables, "tables")
    logits = _as_float64(mix_logits, "mix_logits")
    if t.ndim != 4 or t.shape[2:] != (DIM, VALUES) or t.shape[1] < 1:
        raise ValueError(f"tables must have shape (T, M, {DIM}, {VALUES}), got {t.shape}")
    if logits.shape != t.shape[:2]:
        raise ValueError(f"mix_logits must have shape {t.shape[:2]}, got {logits.shape}")
    t = _to_grid(t - t.max(axis=-1, keepdims=True), TABLE_FLOOR)
    logits = _to_grid(logits - logits.max(axis=-1, keepdims=True, initial=-np.inf), LOGIT_FLOOR)
    return CodingParams(np.ascontiguousarray(t), np.ascontiguousarray(logits))
