"""Carry a trained model over to a changed coding order: group 0 in three passes.

``split_first_group`` (:mod:`lqz.nn.schedule`) adds one prior embedding row, for group 0's ODD pass.
It starts as group 0's REST row (both passes read the group's tokens decoded before them); every
other weight, Adam moment and weight average carries over unchanged, so a trained run continues
instead of starting its prior again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..nn.config import ModelConfig

EMBED = "embed.weight"  # the prior's (group, pass) embedding, as named in Prior.state_dict()


def _with_odd_row(embed: torch.Tensor) -> torch.Tensor:
    """``embed`` (2G, c) plus a last row: a copy of row 1, group 0's REST row."""
    return torch.cat([embed, embed[1:2]])


def split_weights(
    config: ModelConfig, state: dict[str, torch.Tensor]
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """A model's config and state dict (``LqzModel.state_dict()`` names), migrated."""
    if config.split_first_group:
        return config, state
    name = f"prior.{EMBED}"
    state = {**state, name: _with_odd_row(state[name])}
    return dataclasses.replace(config, split_first_group=True), state


def split_run_state(saved: dict[str, Any]) -> dict[str, Any]:
    """A trainer checkpoint (see :func:`lqz.train.loop.train`), migrated; Adam's moments of the
    new row start at zero."""
    config = ModelConfig.from_json(saved["config"])
    if config.split_first_group:
        return saved
    saved = dict(saved)
    embed = saved["prior"][EMBED]
    saved["prior"] = {**saved["prior"], EMBED: _with_odd_row(embed)}
    if "ema" in saved:
        _, saved["ema"] = split_weights(config, saved["ema"])
    moments = [
        s for s in saved["prior_optimizer"]["state"].values() if s["exp_avg"].shape == embed.shape
    ]
    if len(moments) != 1:
        raise ValueError("cannot find the embedding's Adam state in the checkpoint")
    for key in ("exp_avg", "exp_avg_sq"):
        moments[0][key] = torch.cat([moments[0][key], torch.zeros_like(embed[:1])])
    saved["config"] = dataclasses.replace(config, split_first_group=True).to_json()
    return saved
