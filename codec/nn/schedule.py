"""The coding schedule: which tokens each coding step codes, in which order, reading which.

Decoding order: group 0's passes, then group 1's, ... A group is coded in two checkerboard
passes -- :data:`Pass.ANCHORS` (``(row + col)`` even), then :data:`Pass.REST` -- or, for group 0
of a model with ``split_first_group``, in three: :data:`Pass.EVEN` (row and column even),
:data:`Pass.ODD` (both odd; reads the EVEN tokens), then REST. Group 0's first pass has no
context at all, so halving it saves bits. A step may read all groups before its own and its
group's tokens of earlier passes (:func:`context_mask`); the tokens of one step are independent
given that context, so a step is one batched prior evaluation and one batched entropy-coding
call. The encoder and the decoder follow this schedule, and the trainer scores its passes.
"""

from __future__ import annotations

from enum import IntEnum

import torch

from .config import ModelConfig


class Pass(IntEnum):
    """Which tokens of a group one coding step codes (positions of the latent grid)."""

    ANCHORS = 0  # (row + col) even
    REST = 1  # (row + col) odd; reads the group's anchors
    EVEN = 2  # row and col even
    ODD = 3  # row and col odd; reads the group's EVEN tokens (EVEN + ODD = ANCHORS)


def group_passes(config: ModelConfig, group: int) -> tuple[Pass, ...]:
    """The passes of ``group``, in coding order."""
    if group == 0 and config.split_first_group:
        return (Pass.EVEN, Pass.ODD, Pass.REST)
    return (Pass.ANCHORS, Pass.REST)


def coding_steps(config: ModelConfig, groups: int) -> list[tuple[int, Pass]]:
    """(group, pass) of every coding step for the first ``groups`` groups, in order."""
    return [(g, p) for g in range(groups) for p in group_passes(config, g)]


def _parities(height: int, width: int, device: torch.device | None):
    rows = torch.arange(height, device=device)[:, None] % 2
    cols = torch.arange(width, device=device)[None, :] % 2
    return rows, cols


def pass_mask(
    height: int, width: int, pass_: int, device: torch.device | None = None
) -> torch.Tensor:
    """Boolean (h, w) mask of the positions that ``pass_`` codes."""
    rows, cols = _parities(height, width, device)
    if pass_ == Pass.ANCHORS:
        return rows == cols
    if pass_ == Pass.REST:
        return rows != cols
    parity = 0 if pass_ == Pass.EVEN else 1
    return (rows == parity) & (cols == parity)


def context_mask(
    height: int, width: int, pass_: int, device: torch.device | None = None
) -> torch.Tensor:
    """Boolean (h, w) mask of the current group's tokens that ``pass_`` may read."""
    if pass_ == Pass.REST:
        return pass_mask(height, width, Pass.ANCHORS, device)
    if pass_ == Pass.ODD:
        return pass_mask(height, width, Pass.EVEN, device)
    return torch.zeros(height, width, dtype=torch.bool, device=device)
