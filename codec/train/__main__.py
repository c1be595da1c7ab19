"""Command line of the trainer (also under ``torchrun --nproc_per_node=N -m lqz.train``)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..errors import TrainSettingError
from ..nn.config import ModelConfig
from ..qualities import DEFAULT_WEIGHTS as SHIPPED
from .entry import run_main
from .loop import TINY, TrainOptions, train
from .state import DEFAULT_ROOT, RunState

#: The command's options in ``--help`` order: each flag with its ``add_argument`` keywords.
OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--data", {"type": Path, "required": True, "help": "folder of images or training pack"}),
    ("--run", {"default": "main", "help": "run name (state folder under --root)"}),
    ("--root", {"type": Path, "default": DEFAULT_ROOT, "help": "state folders root"}),
    ("--steps", {"type": int, "default": 1_000_000}),
    ("--batch", {"type": int, "default": 16}),
    ("--crop", {"type": int, "default": 128}),
    ("--lr", {"type": float, "default": 2e-4}),
    ("--prior-lr", {"type": float, "default": 1e-3}),
    ("--no-prior", {"action": "store_true", "help": "train the tokenizer only"}),
    ("--channels", {"type": int, "default": ModelConfig.channels}),
    ("--kernel", {"type": int, "default": ModelConfig.kernel}),
    ("--stride-log2", {"type": int, "default": ModelConfig.stride_log2}),
    ("--groups", {"type": int, "default": ModelConfig.groups}),
    (
        "--latent-kernel",
        {
            "type": int,
            "default": ModelConfig.latent_kernel,
            "help": "0: strided last stage; k: stride-1 k x k latent convolution (see ModelConfig)",
        },
    ),
    (
        "--levels",
        {
            "default": None,
            "help": "groups coded at each quality level, ascending, comma-separated",
        },
    ),
    (
        "--prior-tokens",
        {
            "type": int,
            "default": TrainOptions.prior_tokens,
            "help": "positions per image scored by the prior's loss each step",
        },
    ),
    (
        "--depth-maps",
        {
            "type": float,
            "default": TrainOptions.depth_maps,
            "help": "share of images reconstructed from a random per-position depth map "
            "(lqz.train.depth) instead of one level",
        },
    ),
    (
        "--rate-lambda",
        {
            "type": float,
            "default": TrainOptions.rate_lambda,
            "help": "train the tokenizer on MSE + λ·bpp under the prior (0: MSE alone)",
        },
    ),
    (
        "--transfer",
        {
            "type": Path,
            "default": None,
            "help": "weights (safetensors) whose tensors of matching name and shape start a new "
            "run of a different architecture",
        },
    ),
    (
        "--ema-decay",
        {
            "type": float,
            "default": TrainOptions.ema_decay,
            "help": "decay of the weight average that validation scores and export ships",
        },
    ),
    (
        "--split-first-group",
        {
            "action": "store_true",
            "help": "code group 0 in three passes (see lqz.nn.schedule); a run or start weights "
            "without it are migrated once first (python -m lqz.train.migrate)",
        },
    ),
    (
        "--stages",
        {
            "type": int,
            "default": 1,
            "help": "residual Λ24 stages per latent slice (lqz.leech.module); a new run grows "
            "its start weights' prior to them (lqz.train.migrate.stage_weights); default levels "
            "for 12 slices, 2 stages: 1,2,3,4,6,9,12,15,18,24",
        },
    ),
    (
        "--stage-input",
        {
            "choices": ("sum", "concat"),
            "default": "sum",
            "help": "with --stages: the synthesis reads each slice's residual sum, or every token "
            "group's codeword (concat: grown weights start as the one-stage model)",
        },
    ),
    ("--tiny", {"action": "store_true", "help": "a tiny model (dry runs and tests)"}),
    ("--threads", {"type": int, "default": None}),
    ("--device", {"default": "auto", "help": "auto, cpu or cuda"}),
    ("--no-amp", {"action": "store_true", "help": "no bf16 autocast on CUDA"}),
    ("--checkpoint-seconds", {"type": float, "default": 300.0}),
    ("--validate-seconds", {"type": float, "default": 600.0}),
    (
        "--init-weights",
        {
            "type": Path,
            "default": None,
            "help": "weights to start from when the run has no state (default: the shipped "
            "model, without --tiny; their config then overrides the architecture options)",
        },
    ),
    ("--fresh", {"action": "store_true", "help": "start from random weights"}),
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lqz.train",
        description="Train the lqz tokenizer. Resumes from the run's latest checkpoint.",
    )
    for flag, settings in OPTIONS:
        p.add_argument(flag, **settings)
    return p


def config_of(args: argparse.Namespace) -> ModelConfig:
    """The architecture the options describe (a fresh or transferred run's)."""
    from .migrate import default_levels

    if args.tiny:
        config = TINY
    else:
        config = ModelConfig(
            channels=args.channels,
            kernel=args.kernel,
            stride_log2=args.stride_log2,
            groups=args.groups,
            latent_kernel=args.latent_kernel,
            split_first_group=args.split_first_group,
        )
    if args.stages != 1:
        levels = default_levels(config, args.stages)
        config = dataclasses.replace(
            config, stages=args.stages, levels=levels, stage_input=args.stage_input
        )
    if args.levels is not None:
        try:
            config = config.with_levels(args.levels)
        except ValueError as exc:
            raise TrainSettingError(str(exc)) from None
    return config


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run_dir = args.root / args.run
    init = args.init_weights
    if init is None and not args.tiny and SHIPPED.exists():
        init = SHIPPED
    if args.fresh:
        init = None
    if args.split_first_group:
        init = split_first_group(run_dir, init)
    if args.stages != 1:
        init = with_stages(run_dir, init, args.stages, args.levels, args.stage_input)
    train(
        TrainOptions(
            data=args.data,
            run_dir=run_dir,
            config=config_of(args),
            batch=args.batch,
            crop=args.crop,
            lr=args.lr,
            prior_lr=args.prior_lr,
            prior=not args.no_prior,
            steps=args.steps,
            checkpoint_seconds=args.checkpoint_seconds,
            validate_seconds=args.validate_seconds,
            threads=args.threads,
            device=args.device,
            init_weights=init,
            transfer=args.transfer,
            prior_tokens=args.prior_tokens,
            depth_maps=args.depth_maps,
            rate_lambda=args.rate_lambda,
            ema_decay=args.ema_decay,
            amp=False if args.no_amp else None,
        )
    )


def split_first_group(run_dir: Path, init: Path | None) -> Path | None:
    """``--split-first-group``: migrate the run's checkpoint in place, or, for a new run, the
    weights it starts from (into the run folder); returns the weights to start from."""
    import os

    from .migrate import migrate_run, migrate_weights

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainSettingError("run --split-first-group once without torchrun first")
    run = RunState(run_dir)
    if run.latest.exists() or run.previous.exists():
        if migrate_run(run_dir):
            print(f"migrated {run_dir} to three passes for group 0", flush=True)
        return init
    if init is None:
        return None
    out = run_dir / "init-split.safetensors"
    if migrate_weights(init, out, force=True, half=False):
        print(f"migrated {init} to three passes for group 0 -> {out}", flush=True)
        return out
    return init


def with_stages(
    run_dir: Path,
    init: Path | None,
    stages: int,
    levels: str | None,
    stage_input: str = "sum",
) -> Path | None:
    """``--stages``: for a new run, the weights it starts from grown to ``stages`` residual
    stages (written into the run folder); returns the weights to start from. A run with state
    resumes with its own config."""
    from ..nn.weights import read_weights
    from .export import export_config, write_weights
    from .migrate import stage_weights

    run = RunState(run_dir)
    if init is None or run.latest.exists() or run.previous.exists():
        return init
    config, state = read_weights(init)
    if config.stages == stages:
        return init
    config, state = stage_weights(config, state, stages, stage_input=stage_input)
    config = export_config(config, levels)
    out = run_dir / f"init-stages{stages}-{stage_input}.safetensors"
    write_weights(config, state, out, half=False)
    print(f"grew {init} to {stages} residual stages -> {out} (levels {config.levels})", flush=True)
    return out


if __name__ == "__main__":
    run_main(main, "lqz.train")
