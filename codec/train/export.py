"""Export a training run's latest state as shipped weights (safetensors, fp16 by default).

``python -m lqz.train.export --run main --out models/lqz-mse.safetensors``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import CheckpointError, OutputError, TrainSettingError
from ..nn.config import ModelConfig
from ..nn.model import LqzModel
from ..nn.weights import save_weights
from .entry import run_main
from .state import DEFAULT_ROOT, RunState


def export_config(config: ModelConfig, levels: str | None) -> ModelConfig:
    """``config`` with the groups-per-level table ``levels`` ("1,2,4") when given."""
    if levels is None:
        return config
    try:
        return config.with_levels(levels)
    except ValueError as exc:
        raise TrainSettingError(str(exc)) from None


def write_weights(
    config: ModelConfig, state: dict[str, torch.Tensor], out: Path, half: bool = True
) -> LqzModel:
    """Shipped weights of ``state`` (``LqzModel.state_dict()`` names) under ``config``, written
    atomically (a reader never sees a partial file); returns the model (on the CPU)."""
    model = LqzModel(config)
    model.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
    tmp = out.with_name(out.name + ".tmp")
    try:
        save_weights(model, tmp, half=half)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {exc.strerror}") from None
    return model


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
    average (EMA), else the last step's weights.
    """
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder {run_dir}")
    saved = RunState(run_dir, create=False).load()
    if saved is None:
        raise CheckpointError(f"no checkpoint in {run_dir}")
    config = export_config(ModelConfig.from_json(saved["config"]), levels)
    if average:
        state = saved["ema"]
    else:
        state = {f"tokenizer.{k}": v for k, v in saved["tokenizer"].items()}
        state |= {f"prior.{k}": v for k, v in saved["prior"].items()}
    model = write_weights(config, state, out, half)
    kind = "EMA" if average else "last-step"
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
    run_main(main, "lqz.train.export")
