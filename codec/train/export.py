"""Export a training run's latest state as shipped weights (safetensors, fp16 by default).

``python -m lqz.train.export --run main --out models/lqz-mse.safetensors``
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..nn.config import ModelConfig
from ..nn.model import LqzModel
from ..nn.weights import save_weights
from .state import DEFAULT_ROOT, RunState


def export(
    run_dir: Path, out: Path, half: bool = True, levels: tuple[int, ...] | None = None
) -> LqzModel:
    """Write the run's latest tokenizer and prior to ``out``; returns the model.

    ``levels`` replaces the trained groups-per-level table (e.g. to drop a level that
    validation shows is not better than the one below it).
    """
    saved = RunState(run_dir).load()
    if saved is None:
        raise SystemExit(f"no checkpoint in {run_dir}")
    config = ModelConfig.from_json(saved["config"])
    if levels is not None:
        if list(levels) != sorted(set(levels)) or levels[0] < 1 or levels[-1] > config.groups:
            raise SystemExit(f"levels must ascend within 1..{config.groups}, got {levels}")
        config = dataclasses.replace(config, levels=levels)
    model = LqzModel(config)
    model.tokenizer.load_state_dict(saved.get("tokenizer", saved.get("model")))
    if "prior" in saved:
        model.prior.load_state_dict(saved["prior"])
    tmp = out.with_suffix(".tmp")
    save_weights(model, tmp, half=half)
    tmp.replace(out)
    print(f"step {saved['step']}, {saved['elapsed'] / 3600:.2f} h -> {out}")
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lqz.train.export", description=__doc__)
    parser.add_argument("--run", default="main")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fp32", action="store_true", help="store float32 instead of fp16")
    parser.add_argument(
        "--levels", help="groups per quality level, comma-separated (default: trained)"
    )
    args = parser.parse_args(argv)
    levels = None
    if args.levels:
        try:
            levels = tuple(int(v) for v in args.levels.split(","))
        except ValueError:
            parser.error(f"--levels must be comma-separated integers, got {args.levels!r}")
    export(args.root / args.run, args.out, half=not args.fp32, levels=levels)


if __name__ == "__main__":
    main()
