"""Generalized divisive normalization (GDN), parameterised exactly as CompressAI's.

``import compressai`` imports its datasets and through them torch_geometric, which costs 10 s
and more at start-up; the codec needs only this layer. :class:`GDN` has the same parameters,
buffers and state-dict keys as ``compressai.layers.GDN`` (``beta``, ``gamma``,
``beta_reparam.pedestal``, ``beta_reparam.lower_bound.bound``, and the same for ``gamma``), the
same initialisation and the same forward computation, operation by operation, so weights and
training checkpoints made with either load into the other and give bit-identical outputs
(``tests/test_gdn.py`` checks outputs and gradients against CompressAI).

    y[i] = x[i] / sqrt(beta[i] + sum_j gamma[i, j] * x[j]^2)     (inverse: times the sqrt)

Ballé, Laparra, Simoncelli, "Density Modeling of Images Using a Generalized Normalization
Transformation", arXiv 1511.06281.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GDN", "LowerBound", "NonNegativeParametrizer"]


class _LowerBoundFunction(torch.autograd.Function):
    """``max(x, bound)`` whose gradient passes where ``x`` is above the bound or where the
    gradient would push ``x`` up towards it (CompressAI's ``LowerBoundFunction``)."""

    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        x, bound = ctx.saved_tensors
        pass_through = (x >= bound) | (grad_output < 0)
        return pass_through * grad_output, None


class LowerBound(nn.Module):
    """``torch.max(x, bound)`` with the gradient of :class:`_LowerBoundFunction`; ``bound`` is a
    buffer of shape (1,)."""

    bound: Tensor

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.register_buffer("bound", torch.Tensor([float(bound)]))

    def forward(self, x: Tensor) -> Tensor:
        return _LowerBoundFunction.apply(x, self.bound)


class NonNegativeParametrizer(nn.Module):
    """Stores ``sqrt(v + pedestal)`` for a non-negative ``v`` (at least ``minimum``):
    ``init`` maps a value to its stored form, ``forward`` back (``pedestal`` a buffer)."""

    pedestal: Tensor

    def __init__(self, minimum: float = 0.0, reparam_offset: float = 2**-18) -> None:
        super().__init__()
        self.minimum = float(minimum)
        self.reparam_offset = float(reparam_offset)
        self.register_buffer("pedestal", torch.Tensor([self.reparam_offset**2]))
        self.lower_bound = LowerBound((self.minimum + self.reparam_offset**2) ** 0.5)

    def init(self, x: Tensor) -> Tensor:
        return torch.sqrt(torch.max(x + self.pedestal, self.pedestal))

    def forward(self, x: Tensor) -> Tensor:
        out = self.lower_bound(x)
        return out**2 - self.pedestal


class GDN(nn.Module):
    """GDN over the channels of (B, C, H, W); ``inverse=True`` is IGDN (multiplies)."""

    def __init__(
        self,
        in_channels: int,
        inverse: bool = False,
        beta_min: float = 1e-6,
        gamma_init: float = 0.1,
    ) -> None:
        super().__init__()
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=float(beta_min))
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(in_channels)))
        self.gamma_reparam = NonNegativeParametrizer()
        gamma = float(gamma_init) * torch.eye(in_channels)
        self.gamma = nn.Parameter(self.gamma_reparam.init(gamma))

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(channels, channels, 1, 1)
        norm = F.conv2d(x**2, gamma, beta)
        norm = torch.sqrt(norm) if self.inverse else torch.rsqrt(norm)
        return x * norm
