"""The prior in exact arithmetic: the same pmf parameters on every machine.

A float32 network gives slightly different numbers on different CPUs (oneDNN and MKL pick
kernels, and with them summation orders, by instruction set and library version). The coder
rounds the parameters onto a grid (:mod:`lqz.entropy.params`), but a parameter that lands near a
rounding boundary still rounds differently, and one such token makes the decoder's pmf differ
from the encoder's: the file does not decode. :class:`ExactPrior` computes the
:class:`~lqz.nn.prior.Prior`'s function in arithmetic whose result does not depend on how the
sums are ordered:

- every weight and bias is rounded to a multiple of a power of two (:data:`WEIGHT_BITS`
  significant bits per tensor), every activation to a multiple of 2^-:data:`ACTIVATION_BITS`,
  clamped to +-:data:`ACTIVATION_MAX`; the codewords enter as their integer Λ24 coordinates;
- so every product and every partial sum of a layer is an integer multiple of one power of two
  below 2^53 and float64 represents it exactly: any order of summation, with or without fused
  multiply-adds, gives the same bits;
- GELU is a table over the activation grid (:func:`gelu_table`), its entries rounded to the
  same grid.

Its outputs differ from the float prior's by the rounding of weights and activations (about
2^-12 relative): a negligible change of rate. The float prior stays the training and the legacy
decoding path (files of format versions before :data:`lqz.format.EXACT_PRIOR_VERSION`).
"""

from __future__ import annotations

import copy
import hashlib
import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..leech import DIM, SQUARED_NORM
from .prior import Prior

#: significant bits of each rounded weight tensor (its largest entry's magnitude < 2^WEIGHT_BITS)
WEIGHT_BITS = 18
#: activations are multiples of 2^-ACTIVATION_BITS
ACTIVATION_BITS = 12
#: activations are clamped to +-ACTIVATION_MAX (a power of two)
ACTIVATION_MAX = 256.0
#: GELU is tabulated on [-GELU_SPAN, GELU_SPAN]; beyond, it is 0 below and the identity above
GELU_SPAN = 8

_STEP = 2.0**-ACTIVATION_BITS
_INT_NORM = math.sqrt(SQUARED_NORM)  # |c| of every minimal vector in integer coordinates


def _exactness_bound() -> None:
    """The widest sum of the trunk (3x3 convolutions over 128 channels, headroom for 2^11
    terms): weight x activation numerators must stay below 2^53 with room for the sum."""
    terms_log2 = 11
    activation_log2 = int(math.log2(ACTIVATION_MAX)) + ACTIVATION_BITS
    assert WEIGHT_BITS + activation_log2 + terms_log2 < 53


_exactness_bound()


def weight_exponent(x: torch.Tensor, bits: int = WEIGHT_BITS) -> int:
    """e such that ``x``'s largest magnitude, in multiples of 2^-e, has ``bits`` bits."""
    largest = float(x.detach().abs().max()) if x.numel() else 0.0
    _, exponent = math.frexp(largest)  # largest < 2^exponent (frexp(0) gives 0)
    return bits - exponent


def to_multiples(x: torch.Tensor, exponent: int) -> torch.Tensor:
    """``x`` (float64) rounded to multiples of 2^-exponent: exact power-of-two scaling and a
    round (ties to even), the same on every machine."""
    scale = 2.0**exponent
    return torch.round(x.detach().to(torch.float64) * scale) / scale


def gelu_values(x: np.ndarray) -> np.ndarray:
    """GELU x * Phi(x) at float64 points with Python's ``math.erf``."""
    return np.array([v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.tolist()])


@lru_cache(maxsize=1)
def gelu_table() -> torch.Tensor:
    """GELU on the activation grid over [-GELU_SPAN, GELU_SPAN], rounded to the grid (float64).

    ``tests/test_exact_prior.py`` freezes its SHA-256: a platform whose ``erf`` rounds one
    entry differently is caught there, not in a file that fails to decode.
    """
    n = GELU_SPAN * 2**ACTIVATION_BITS
    points = np.arange(-n, n + 1, dtype=np.float64) * _STEP
    return torch.from_numpy(np.round(gelu_values(points) / _STEP) * _STEP)


def gelu_table_digest() -> str:
    return hashlib.sha256(gelu_table().numpy().tobytes()).hexdigest()


def to_grid(x: torch.Tensor) -> torch.Tensor:
    """Activations rounded to the grid (ties to even) and clamped to +-ACTIVATION_MAX."""
    return (torch.round(x * 2.0**ACTIVATION_BITS) * _STEP).clamp_(-ACTIVATION_MAX, ACTIVATION_MAX)


class GridGELU(nn.Module):
    """GELU of grid-rounded inputs, from :func:`gelu_table`: exact, the same everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .exact_kernels import grid_gelu_kernel

        x = x.detach().to(torch.float64).contiguous()
        out = torch.empty_like(x)
        grid_gelu_kernel(
            x.view(-1).numpy(),
            gelu_table().numpy(),
            out.view(-1).numpy(),
            2.0**ACTIVATION_BITS,
            ACTIVATION_MAX * 2.0**ACTIVATION_BITS,
            GELU_SPAN * 2**ACTIVATION_BITS,
        )
        return out


class ExactPrior(Prior):
    """:class:`Prior`'s coding path (:meth:`pass_params`) in exact float64 arithmetic.

    Built from a trained prior (:meth:`of`); not trained itself. ``forward`` computes the same
    exact function on whole grids (tests compare the two).
    """

    @classmethod
    def of(cls, prior: Prior) -> ExactPrior:
        exact = copy.deepcopy(prior).to(torch.float64)
        exact.__class__ = cls
        exact.requires_grad_(False)
        # The codewords come in as unit vectors c / |c|: their integer coordinates c (at most 4
        # in magnitude) enter instead, the scale moving into the first layer's weights. Each
        # layer's bias (and the embedding, added to the first layer's) lies on the grid of its
        # products, weight grid x input grid: every sum of the layer is on one grid.
        exact.context_in.weight.mul_(1.0 / _INT_NORM)
        layers = [
            (exact.context_in.weight, [exact.context_in.bias, exact.embed.weight], 0),
            (exact.trunk[1].weight, [exact.trunk[1].bias], ACTIVATION_BITS),
            (exact.trunk[3].weight, [exact.trunk[3].bias], ACTIVATION_BITS),
            (exact.head_weight, [exact.head_bias], ACTIVATION_BITS),
        ]
        for weight, biases, input_bits in layers:
            e = weight_exponent(weight)
            weight.copy_(to_multiples(weight, e))
            for bias in biases:
                bias.copy_(to_multiples(bias, e + input_bits))
                if float(bias.abs().max()) * 2.0 ** (e + input_bits) >= 2.0**51:
                    raise ValueError("a bias too large for its layer's exact grid")
        exact.trunk = nn.Sequential(
            GridGELU(), exact.trunk[1], GridGELU(), exact.trunk[3], GridGELU()
        )
        return exact

    @staticmethod
    def _integer_codewords(codewords: torch.Tensor) -> torch.Tensor:
        return torch.round(codewords.to(torch.float64) * _INT_NORM)

    def forward(self, codewords, group, pass_):
        with torch.no_grad():
            return super().forward(self._integer_codewords(codewords), group, pass_)

    def pass_params(self, codewords, group, pass_, rows=None):
        with torch.no_grad():  # the codewords are made integer in _context_features
            return super().pass_params(codewords, group, pass_, rows)

    def _first_conv(self, feat, s0, s1, a, b):
        # conv1 at rows [a, b) alone (the band's rows [s0, s1) reach one row beyond them, or
        # end at the grid's edge, where the zero padding goes), not at the band's outer rows
        gelu0, conv1, gelu1 = self.trunk[:3]
        x = F.pad(gelu0(feat), (1, 1, int(a == s0), int(b == s1)))
        return gelu1(self._valid_conv(conv1, x[None], 1))

    @staticmethod
    def _valid_conv(conv: nn.Conv2d, x: torch.Tensor, stride: int) -> torch.Tensor:
        # One matrix product per kernel tap over a strided view: exact sums in any order give
        # F.conv2d's bits, a little faster (benchmarks/bench_exact_conv.py).
        _, c, rows, cols = x.shape
        kh, kw = conv.kernel_size
        n_rows, n_cols = (rows - kh) // stride + 1, (cols - kw) // stride + 1
        out = conv.bias[:, None].expand(-1, n_rows * n_cols).clone()
        for i in range(kh):
            for j in range(kw):
                tap = x[0, :, i : i + stride * n_rows : stride, j : j + stride * n_cols : stride]
                out.addmm_(conv.weight[:, :, i, j], tap.reshape(c, -1))
        return out.view(1, -1, n_rows, n_cols)

    def _context_features(self, codewords, group, pass_, row0):
        # only the band's rows and the channels the step reads, not the whole grid
        used = self._integer_codewords(codewords[: (group + 1) * DIM])
        return super()._context_features(used, group, pass_, row0)
