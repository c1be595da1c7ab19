"""Command line of the trainer."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..nn.config import ModelConfig
from ..qualities import DEFAULT_WEIGHTS as SHIPPED
from .loop import TrainOptions, train
from .state import DEFAULT_ROOT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lqz.train",
        description="Train the lqz tokenizer. Resumes from the run's latest checkpoint.",
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of training images")
    parser.add_argument("--run", default="main", help="run name (state folder under --root)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state folders root")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--prior-lr", type=float, default=1e-3)
    parser.add_argument("--no-prior", action="store_true", help="train the tokenizer only")
    parser.add_argument("--channels", type=int, default=ModelConfig.channels)
    parser.add_argument("--kernel", type=int, default=ModelConfig.kernel)
    parser.add_argument("--stride-log2", type=int, default=ModelConfig.stride_log2)
    parser.add_argument("--groups", type=int, default=ModelConfig.groups)
    parser.add_argument(
        "--latent-kernel",
        type=int,
        default=ModelConfig.latent_kernel,
        help="0: strided last stage; k: stride-1 k x k latent convolution (see ModelConfig)",
    )
    parser.add_argument(
        "--levels",
        default=",".join(map(str, ModelConfig.levels)),
        help="groups coded at each quality level, ascending, comma-separated",
    )
    parser.add_argument(
        "--prior-tokens",
        type=int,
        default=32,
        help="positions per image scored by the prior's loss each step",
    )
    parser.add_argument(
        "--transfer",
        type=Path,
        default=None,
        help="weights (safetensors) whose tensors of matching name and shape start a new run "
        "of a different architecture",
    )
    parser.add_argument(
        "--ema-decay",
        type=float,
        default=TrainOptions.ema_decay,
        help="decay of the weight average that validation scores and export ships",
    )
    parser.add_argument(
        "--split-first-group",
        action="store_true",
        help="code group 0 in three passes (see lqz.nn.schedule); a run or weights without it "
        "are migrated (lqz.train.migrate)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--checkpoint-seconds", type=float, default=300.0)
    parser.add_argument("--validate-seconds", type=float, default=600.0)
    parser.add_argument(
        "--init-weights",
        type=Path,
        default=SHIPPED if SHIPPED.exists() else None,
        help="weights to start from when the run has no state (default: the shipped model; "
        "their config then overrides --channels/--kernel)",
    )
    parser.add_argument("--fresh", action="store_true", help="start from random weights")
    args = parser.parse_args(argv)
    config = ModelConfig(
        channels=args.channels,
        kernel=args.kernel,
        stride_log2=args.stride_log2,
        groups=args.groups,
        latent_kernel=args.latent_kernel,
        split_first_group=args.split_first_group,
    )
    try:
        config = config.with_levels(args.levels)
    except ValueError as exc:
        parser.error(str(exc))
    train(
        TrainOptions(
            data=args.data,
            run_dir=args.root / args.run,
            config=config,
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
            init_weights=None if args.fresh else args.init_weights,
            transfer=args.transfer,
            prior_tokens=args.prior_tokens,
            ema_decay=args.ema_decay,
            split_first_group=args.split_first_group,
        )
    )


if __name__ == "__main__":
    main()
