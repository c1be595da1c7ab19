"""Export a training run's latest state as shipped weights (safetensors, fp16 by default).

``python -m lqz.train.export --run main --out models/lqz-mse.safetensors``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..nn.config import ModelConfig
from ..nn.model import LqzModel
from ..nn.weights import save_weights
from .state import DEFAULT_ROOT, RunState


def export(
    run_dir: Path,
    out: Path,
    half: bool = True,
    levels: str | None = None,
    average: bool = True,
) -> LqzModel:
    """Write the run's latest tokenizer and prior to ``out``; returns the model.

    ``levels`` ("1,2,4") replaces the trained groups-per-level table (e.g. to drop a level that
    validation shows is not better than the one below it). ``average``: ship the run's weight
    average (EMA) when it has one, else the last step's weights.
    """
    saved = RunState(run_dir).load()
    if saved is None:
        raise SystemExit(f"no checkpoint in {run_dir}")
    config = ModelConfig.from_json(saved["config"])
    if levels is not None:
        try:
            config = config.with_levels(levels)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    model = LqzModel(config)
    model.tokenizer.load_state_dict(saved.get("tokenizer", saved.get("model")))
    if "prior" in saved:
        model.prior.load_state_dict(saved["prior"])
    if average and "ema" in saved:
        model.load_state_dict(saved["ema"])
    tmp = out.with_suffix(".tmp")
    save_weights(model, tmp, half=half)
    tmp.replace(out)
    kind = "EMA" if average and "ema" in saved else "last-step"
    print(f"step {saved['step']}, {saved['elapsed'] / 3600:.2f} h, {kind} weights -> {out}")
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
    parser.add_argument(
        "--last-step", action="store_true", help="the last step's weights instead of the EMA"
    )
    args = parser.parse_args(argv)
    export(
        args.root / args.run,
        args.out,
        half=not args.fp32,
        levels=args.levels,
        average=not args.last_step,
    )


if __name__ == "__main__":
    main()
