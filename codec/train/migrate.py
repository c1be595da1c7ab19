"""Carry a trained model over to a changed coding order: group 0 in three passes, residual
stages (:func:`stage_weights`, a new run's start weights only), or wider transforms
(:func:`grow_channels`).

``split_first_group`` (:mod:`lqz.nn.schedule`) adds one prior embedding row, for group 0's ODD pass.
It starts as group 0's REST row (both passes read the group's tokens decoded before them); every
other weight, Adam moment and weight average carries over unchanged, so a trained run continues
instead of starting its prior again.

One shot, on a run's state folder (in place; the old checkpoint stays as ``state.prev.pt``) or
on a weights file: ``python -m lqz.train.migrate RUN_DIR`` or
``python -m lqz.train.migrate WEIGHTS --out NEW_WEIGHTS``; wider transforms:
``python -m lqz.train.migrate WEIGHTS --out WIDE --channels 128`` (then ``python -m lqz.train
--init-weights WIDE``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, OutputError
from ..leech import DIM
from ..nn.config import ModelConfig
from .entry import run_main
from .state import RunState

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
        raise CheckpointError("cannot find the embedding's Adam state in the checkpoint")
    for key in ("exp_avg", "exp_avg_sq"):
        moments[0][key] = torch.cat([moments[0][key], torch.zeros_like(embed[:1])])
    saved["config"] = dataclasses.replace(config, split_first_group=True).to_json()
    return saved


def default_levels(config: ModelConfig, stages: int) -> tuple[int, ...]:
    """Levels of a model with ``stages`` residual stages grown from ``config``'s: its levels
    and all slices' first stage, then per later stage a quarter, half and all of its slices
    (12 slices, 2 stages: 1, 2, 3, 4, 6, 9, 12, 15, 18, 24)."""
    g = config.groups
    levels = set(config.levels) | {g}
    for stage in range(1, stages):
        levels |= {stage * g + max(1, round(g * f)) for f in (0.25, 0.5, 1.0)}
    return tuple(sorted(levels))


def stage_weights(
    config: ModelConfig,
    state: dict[str, torch.Tensor],
    stages: int,
    levels: tuple[int, ...] | None = None,
    stage_input: str = "sum",
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """A one-stage model's config and state dict, grown to ``stages`` residual stages.

    The transforms are unchanged; with ``stage_input="concat"`` the synthesis's first layer
    gets zero weights for the later stages' channels (it starts as the one-stage model). The
    prior's token groups ``0..G-1`` (the slices' first stages) keep their weights; a later
    stage's token group starts with its slice's embedding rows and a zero head; the context columns
    of the new token groups start at zero, so the prior's outputs for the first stage are the
    old prior's. ``levels``: default :func:`default_levels`.
    """
    if config.stages != 1:
        raise CheckpointError(f"the weights already have {config.stages} stages")
    g, new = config.groups, dataclasses.replace(config, stages=stages, stage_input=stage_input)
    new = dataclasses.replace(new, levels=levels or default_levels(config, stages))
    state = dict(state)
    if stage_input == "concat":
        name = "tokenizer.synthesis.layers.0.weight"
        first = state[name]  # conv (out, in, k, k) or, without a latent conv, deconv (in, out, ..)
        axis = 1 if config.latent_kernel else 0
        shape = list(first.shape)
        shape[axis] = DIM * g * (stages - 1)
        state[name] = torch.cat([first, first.new_zeros(shape)], dim=axis)
    weight = state["prior.context_in.weight"]  # (c, 24G + 24, 1, 1)
    fresh = weight.new_zeros(weight.shape[0], DIM * g * (stages - 1), *weight.shape[2:])
    state["prior.context_in.weight"] = torch.cat(
        [weight[:, : DIM * g], fresh, weight[:, DIM * g :]], dim=1
    )
    embed = state[f"prior.{EMBED}"]  # (2G [+ 1 ODD row], c)
    pairs, odd = embed[: 2 * g], embed[2 * g :]
    state[f"prior.{EMBED}"] = torch.cat([pairs.repeat(stages, 1), odd])
    for name in ("prior.head_weight", "prior.head_bias"):
        # zero heads: a uniform pmf (17.6 bits/token); the slice's stage-1 head costs 25-37
        # bits on the shipped model's stage-2 tokens, their directions being unlike stage 1's
        head = state[name]
        fresh = head.new_zeros(head.shape[0] * (stages - 1), *head.shape[1:])
        state[name] = torch.cat([head, fresh])
    return new, state


def grow_channels(
    config: ModelConfig, state: dict[str, torch.Tensor], channels: int, seed: int = 0
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """A model's config and state dict with its transforms widened to ``channels``, computing
    the same function.

    Every tensor keeps its trained values in its leading block. The new channels get a fresh
    model's initialisation (seeded) for their incoming weights, biases and GDN parameters (GDN's
    off-diagonal terms start at zero), and zero weights from them into every convolution, so
    nothing reads them at first; training then grows those weights from zero. The prior and
    the latent are unchanged.
    """
    from torch import nn

    from ..nn.model import LqzModel

    if channels < config.channels:
        raise CheckpointError(f"cannot narrow {config.channels} channels to {channels}")
    wide = dataclasses.replace(config, channels=channels)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LqzModel(wide)
    grown = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, old in state.items():
        new = grown[name]
        if new.dim() != old.dim() or any(a > b for a, b in zip(old.shape, new.shape, strict=True)):
            raise CheckpointError(f"{name}: {tuple(old.shape)} does not fit {tuple(new.shape)}")
        new[tuple(slice(0, n) for n in old.shape)] = old
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            weight = grown[f"{name}.weight"]
            axis = 1 if isinstance(module, nn.Conv2d) else 0  # the input channels
            known = state[f"{name}.weight"].shape[axis]
            weight.narrow(axis, known, weight.shape[axis] - known).zero_()
    return wide, grown


def check_out(path: Path, out: Path, force: bool) -> None:
    """Refuse to overwrite ``out`` (or the input ``path`` itself) without ``force``."""
    if force:
        return
    if out.resolve() == path.resolve():
        raise OutputError(f"{out} is the input (use --force to overwrite it)")
    if out.exists():
        raise OutputError(f"{out} exists (use --force to overwrite)")


def grow_weights(
    path: Path, out: Path, channels: int, force: bool = False, half: bool = True
) -> None:
    """Write the weights at ``path`` widened to ``channels`` to ``out`` (``half``: float16)."""
    from ..nn.weights import read_weights
    from .export import write_weights

    check_out(path, out, force)
    write_weights(*grow_channels(*read_weights(path), channels), out, half=half)


def migrate_run(run_dir: Path) -> bool:
    """Migrate the run's latest checkpoint in place; False when it already has the split."""
    run = RunState(run_dir, create=False)
    saved = run.load()
    if saved is None:
        raise CheckpointError(f"no checkpoint in {run_dir}")
    if ModelConfig.from_json(saved["config"]).split_first_group:
        return False
    run.save(split_run_state(saved))
    return True


def migrate_weights(path: Path, out: Path, force: bool = False, half: bool = True) -> bool:
    """Write the weights at ``path``, migrated, to ``out``; False (nothing written) when they
    already have the split."""
    from ..nn.weights import read_weights
    from .export import write_weights

    config, state = read_weights(path)
    if config.split_first_group:
        return False
    check_out(path, out, force)
    write_weights(*split_weights(config, state), out, half=half)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lqz.train.migrate", description=__doc__)
    parser.add_argument("target", type=Path, help="a run's state folder or a weights file")
    parser.add_argument("--out", type=Path, help="where migrated weights go (weights only)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    parser.add_argument("--fp32", action="store_true", help="store weights in float32")
    parser.add_argument(
        "--channels", type=int, help="widen the transforms to this many channels (weights only)"
    )
    args = parser.parse_args(argv)
    if args.channels is not None:
        if not (args.target.is_file() and args.out):
            parser.error("--channels widens a weights file and needs --out")
        grow_weights(args.target, args.out, args.channels, args.force, half=not args.fp32)
        print(f"{args.target}: transforms widened to {args.channels} channels -> {args.out}")
        return
    if args.target.is_dir():
        if args.out:
            parser.error("--out is for weights files; a run is migrated in place")
        done = migrate_run(args.target)
    elif args.target.is_file():
        if not args.out:
            parser.error("migrating weights needs --out")
        done = migrate_weights(args.target, args.out, args.force, half=not args.fp32)
    else:
        raise CheckpointError(f"{args.target} is neither a run folder nor a weights file")
    print(f"{args.target}: " + ("migrated" if done else "already codes group 0 in three passes"))


if __name__ == "__main__":
    run_main(main, "lqz.train.migrate")
