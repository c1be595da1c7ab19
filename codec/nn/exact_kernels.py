"""numba kernels of the exact prior (:mod:`lqz.nn.exact_prior`): one pass over the data where
the torch expression of the same function takes a dozen."""

from __future__ import annotations

import numpy as np

from ..jit import kernel


@kernel()
def grid_gelu_kernel(
    x: np.ndarray, table: np.ndarray, out: np.ndarray, scale: float, limit: float, span: int
) -> None:
    """``out[i]``: GELU of ``x[i]`` rounded to the grid of 1/``scale`` (ties to even) and
    clamped to +-``limit`` grid steps: ``table[k + span]`` for grid index ``k`` in
    [-span, span], the identity above, 0 below (flat float64 arrays)."""
    step = 1.0 / scale
    for i in range(x.size):
        k = np.rint(x[i] * scale)
        if k > limit:
            k = limit
        elif k < -limit:
            k = -limit
        if k > span:
            out[i] = k * step
        elif k < -span:
            out[i] = 0.0
        else:
            out[i] = table[int(k) + span]
