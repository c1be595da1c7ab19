"""The prior's contract: what the tile coder, the trainer and the ladder tool rely on.

A prior turns decoded codewords into the pmf parameters of one coding step of
:mod:`lqz.nn.schedule` (a group and a pass): per token, mixture tables ``(M, 24, 9)`` and
mixture logits ``(M,)`` of :mod:`lqz.entropy.shell_pmf`. Its clients:

- the tile coder (:mod:`lqz.tiles`) calls :meth:`CodingPrior.pass_params` once per coding
  step, on row bands of the latent grid, one thread per band;
- the trainer (:mod:`lqz.train.loop`) and the ladder tool (:mod:`lqz.train.ladder`) call the
  prior (:meth:`CodingPrior.forward`) on batches with one (group, pass) per image and score the
  pass's tokens; the trainer optimizes its parameters and checkpoints its state dict.

What a prior must guarantee (``tests/test_coding_speedpath.py`` and
``tests/test_prior_passes.py`` check it for :class:`lqz.nn.prior.Prior`):

- ``pass_params(c, g, p)`` equals ``forward(c, g, p)`` at the positions of
  :func:`~lqz.nn.schedule.pass_mask` (row-major), up to float rounding;
- both read only groups before ``g`` and group ``g``'s tokens in
  :func:`~lqz.nn.schedule.context_mask`; with ``rows=(r0, r1)``, only rows within
  :attr:`CodingPrior.halo` of the band, so that bands stitch to the whole grid;
- on one thread, ``pass_params`` gives the same floats for the same inputs and band: the
  decoder reproduces the encoder's pmfs bit for bit.

A new prior architecture touches three files: a module of its own in ``codec/nn/`` with a class
that implements :class:`CodingPrior`, ``codec/nn/config.py`` (its hyperparameters, stored with
the weights) and ``codec/nn/model.py`` (:class:`~lqz.nn.model.LqzModel` builds it from the
config). A new coding order changes ``codec/nn/schedule.py`` as well. The tile coder, the
trainer and the ladder tool stay as they are (``lqz.train.migrate`` knows the layout of
:class:`~lqz.nn.prior.Prior`'s embedding and applies to it alone).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class CodingPrior(Protocol):
    """An ``nn.Module`` that gives the pmf parameters of every coding step."""

    #: Rows of context beyond a band that :meth:`pass_params` reads, on each side.
    halo: int

    def forward(
        self, codewords: torch.Tensor, group: torch.Tensor | int, pass_: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: parameters at every position of the grid for (group, pass).

        ``codewords``: (B, 24G, h, w), the decoded latent (entries not yet decoded are
        ignored); ``group``, ``pass_``: ints, or (B,) tensors with one per image. Returns
        tables (B, h, w, M, 24, 9) and mixture logits (B, h, w, M).
        """
        ...

    def __call__(
        self, codewords: torch.Tensor, group: torch.Tensor | int, pass_: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` (as ``nn.Module`` calls it)."""
        ...

    def pass_params(
        self,
        codewords: torch.Tensor,
        group: int,
        pass_: int,
        rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coding: parameters at only the positions of (group, pass) in rows ``[r0, r1)`` of
        ``rows`` (default: all), row-major. ``codewords``: (1, 24G, h, w). Returns tables
        (T, M, 24, 9) and mixture logits (T, M)."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any: ...
