"""Bjøntegaard-delta rate (BD-rate) between rate–distortion curves.

Method: the ``bjontegaard`` package (FAU Erlangen, BSD-3) with ``method="pchip"``, i.e. the
log10 rate is interpolated as a function of distortion by a piecewise cubic Hermite (PCHIP)
interpolant — as in the VCEG-AH11 / JVET CTC spreadsheets — for each codec, both are integrated
over the overlap of the two distortion ranges, and the mean log-rate difference d gives
BD-rate = (10^d − 1) · 100 %. Negative means the test codec needs fewer bits than the anchor
for the same quality. Distortion is PSNR in dB, or MS-SSIM in dB (−10·log10(1 − MS-SSIM)).

Before interpolation each curve is sorted by rate and points that do not improve on the
previous point's quality are dropped, since PCHIP needs a strictly increasing abscissa. Fewer
than two usable points, or no overlap, gives ``None``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

Curve = tuple[Sequence[float], Sequence[float]]  # (rates, distortions)


def monotone_curve(rates: Sequence[float], dists: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, keeping only those whose distortion strictly increases."""
    pairs = sorted(
        (float(r), float(d))
        for r, d in zip(rates, dists, strict=True)
        if r > 0 and math.isfinite(r) and math.isfinite(d)
    )
    kept: list[tuple[float, float]] = []
    for r, d in pairs:
        if not kept or d > kept[-1][1]:
            kept.append((r, d))
    return np.array([r for r, _ in kept]), np.array([d for _, d in kept])


def bd_rate(anchor: Curve, test: Curve) -> float | None:
    """BD-rate in percent of ``test`` relative to ``anchor``; ``None`` when undefined."""
    import bjontegaard

    rate_a, dist_a = monotone_curve(*anchor)
    rate_t, dist_t = monotone_curve(*test)
    if len(rate_a) < 2 or len(rate_t) < 2:
        return None
    if min(dist_a.max(), dist_t.max()) <= max(dist_a.min(), dist_t.min()):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(
            rate_a,
            dist_a,
            rate_t,
            dist_t,
            method="pchip",
            require_matching_points=False,
            min_overlap=0,
        )
    value = float(value)
    return value if math.isfinite(value) else None


def bd_matrix(
    tests: Mapping[str, Curve], anchors: Mapping[str, Curve]
) -> dict[str, dict[str, float | None]]:
    """``matrix[test][anchor]`` = BD-rate of every test curve against every anchor curve."""
    return {
        t_name: {a_name: bd_rate(a_curve, t_curve) for a_name, a_curve in anchors.items()}
        for t_name, t_curve in tests.items()
    }
