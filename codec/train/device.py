"""Training in a short GPU window: a wall-clock budget, artefacts that are always current.

``python -m lqz.train.device --data PACK --minutes M --out DIR [--device cpu|cuda] [--tiny]
[--init WEIGHTS]``

Trains the current architecture (the shipped model's, or ``--tiny``) on a training pack
(:mod:`lqz.train.pack`) until M minutes after the start, and every ``--save-minutes`` (and at
the end, on SIGTERM too) writes into DIR, each file atomically:

- ``lqz-mse.safetensors``: the weight average (EMA) as shipped weights, fp16, the config's
  quality levels (or ``--levels``): loadable by ``lqz.nn.weights.load_model``;
- ``log.jsonl``: one JSON record per log window (images/s, loss, PSNR, bits/token, share of the
  step in the search, the prior's pmf and the transforms) and per validation;
- ``summary.json``: step, training time, the latest validation figures (PSNR and bpp per level
  on the pack's held-out crops) and the timing shares.

A run stopped at any point leaves the figures and weights of its last save. Without ``--init``
a DIR that already holds weights is resumed (weights, step count and log; the optimizer's
moments start again); otherwise training starts from ``--init``, ``--tiny`` random weights or
the shipped model.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainSettingError
from .data import DeviceCrops, load_pack, to_float
from .distributed import Distributed
from .entry import run_main
from .export import export_config, write_weights
from .loop import (
    TINY,
    Session,
    Timers,
    TrainStep,
    WindowLog,
    resolve_device,
    stop_on_signals,
    validate_average,
)

WEIGHTS_NAME = "lqz-mse.safetensors"
LOG_NAME = "log.jsonl"
SUMMARY_NAME = "summary.json"
#: Batch and crop side by device type, when not given.
DEFAULT_BATCH = {"cuda": 32, "cpu": 8}
DEFAULT_CROP = {"cuda": 256, "cpu": 128}


@dataclass
class WindowOptions:
    data: Path
    minutes: float
    out: Path
    device: str = "auto"
    tiny: bool = False
    init: Path | None = None
    batch: int | None = None
    crop: int | None = None
    lr: float = 1e-4
    prior_lr: float = 1e-3
    prior_tokens: int = 32
    ema_decay: float = 0.998
    save_minutes: float = 2.0
    log_every: int = 20
    levels: str | None = None
    amp: bool | None = None
    seed: int = 0
    threads: int | None = None


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_previous(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary and log records of an earlier window in ``out`` (empty when none)."""
    summary = out / SUMMARY_NAME
    log = out / LOG_NAME
    try:
        previous = json.loads(summary.read_text()) if summary.exists() else {}
        records = (
            [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        )
    except (OSError, ValueError) as exc:
        raise TrainSettingError(f"{out} holds an unreadable earlier run: {exc}") from None
    return previous, records


def start_weights(opts: WindowOptions) -> Path | None:
    """The weights the window starts from: DIR's own (resume), ``--init``, or the shipped
    model; None: random ``--tiny`` weights."""
    own = opts.out / WEIGHTS_NAME
    if own.exists():
        if opts.init is not None:
            raise TrainSettingError(
                f"{opts.out} already holds a run: resume it without --init, or use a new --out"
            )
        return own
    if opts.init is not None:
        return opts.init
    if opts.tiny:
        return None
    from ..qualities import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS


def run_window(opts: WindowOptions) -> dict[str, Any]:
    """Train for ``opts.minutes`` of wall-clock time from now; returns the last summary."""
    from ..nn.weights import read_weights

    started = time.monotonic()
    deadline = started + opts.minutes * 60
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = resolve_device(opts.device)
    dist = Distributed.from_env(device)
    device = dist.device(device)
    opts.out.mkdir(parents=True, exist_ok=True)
    previous, records = read_previous(opts.out)
    source = start_weights(opts)
    config, state = (TINY, None) if source is None else read_weights(source)
    batch = opts.batch or DEFAULT_BATCH[device.type]
    crop = opts.crop or DEFAULT_CROP[device.type]
    crops, val = load_pack(opts.data)
    crop = min(crop, crops.shape[1], crops.shape[2]) // config.stride * config.stride
    if crop < config.stride:
        raise TrainSettingError(f"the pack's crops are smaller than the stride {config.stride}")
    export_config(config, opts.levels)  # bad --levels fail before training, not at the end
    session = Session.new(config, device, opts.lr, opts.prior_lr, opts.ema_decay, state)
    dist.broadcast(list(session.model.state_dict().values()))
    dist.broadcast(list(session.average.state_dict().values()))
    session.step = int(previous.get("step", 0)) if source == opts.out / WEIGHTS_NAME else 0
    session.elapsed = float(previous.get("elapsed_s", 0.0)) if session.step else 0.0
    if session.step == 0:
        records = []
    sampler = DeviceCrops(
        torch.from_numpy(crops).to(device), crop, [opts.seed, session.step, dist.rank]
    )
    val = to_float(val)
    amp = device.type == "cuda" if opts.amp is None else opts.amp
    timers = Timers(device)
    step = TrainStep(session, device, True, opts.prior_tokens, amp, dist, timers)
    print(
        f"{device} batch {batch} crop {crop} amp {amp}; from "
        f"{source or 'random --tiny weights'} at step {session.step}; "
        f"{len(crops)} crops, {len(val)} held out",
        flush=True,
    )
    summary: dict[str, Any] = {}
    shares: dict[str, float] = {}

    def save(final: bool) -> float:
        """Validate and write the artefacts; returns the seconds it took."""
        nonlocal summary
        t0 = time.monotonic()
        metrics = validate_average(session, val)
        records.append({"time": time.time(), "step": session.step, "validation": metrics})
        export = export_config(config, opts.levels)
        write_weights(export, session.average.state_dict(), opts.out / WEIGHTS_NAME)
        write_atomic(opts.out / LOG_NAME, "".join(json.dumps(r) + "\n" for r in records))
        summary = {
            "step": session.step,
            "elapsed_s": session.elapsed,
            "device": str(device),
            "batch": batch,
            "crop": crop,
            "amp": amp,
            "config": json.loads(export.to_json()),
            "validation": metrics,
            "timing": shares,
            "finished": final,
        }
        write_atomic(opts.out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
        print(
            f"saved step {session.step}: "
            + " ".join(f"{k}={v:.3f}" for k, v in metrics.items() if not k.startswith("raw")),
            flush=True,
        )
        return time.monotonic() - t0

    save_cost = save(False) if dist.is_main else 0.0
    window = WindowLog(timers)
    last_save = time.monotonic()
    step_cost, first_step = 0.0, session.step
    with stop_on_signals() as flag:
        while True:
            now = time.monotonic()
            # stop when the next step and the final save might not fit; every window takes at
            # least one step (a budget spent before the first is still spent on training)
            late = now + 1.25 * save_cost + 2 * step_cost + 1.0 >= deadline
            if dist.any(flag["stop"] or (late and session.step > first_step), device):
                break
            x = sampler.batch(batch)
            figures = step(x)
            window.add(figures, len(x))
            step_cost = time.monotonic() - now
            session.elapsed += step_cost
            if not dist.is_main:
                continue
            if session.step % opts.log_every == 0:
                record = window.record(session, dist.world)
                shares = {k: v for k, v in record.items() if k.startswith("share_")}
                shares["images_per_s"] = record["images_per_s"]
                records.append({"time": time.time(), **record})
                print(WindowLog.line(record), flush=True)
            if time.monotonic() - last_save >= opts.save_minutes * 60:
                save_cost = save(False)
                last_save = time.monotonic()
    if dist.is_main:
        save(True)
    dist.close()
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lqz.train.device",
        description=__doc__.split("\n\n")[0],
        epilog="See README.md (Training) for the GPU-window call.",
    )
    parser.add_argument("--data", type=Path, required=True, help="training pack (.npz)")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget")
    parser.add_argument("--out", type=Path, required=True, help="folder of the artefacts")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (dry runs, tests)")
    parser.add_argument("--init", type=Path, help="weights to start from (default: shipped)")
    parser.add_argument("--batch", type=int, help="default 32 on CUDA, 8 on the CPU")
    parser.add_argument("--crop", type=int, help="default 256 on CUDA, 128 on the CPU")
    parser.add_argument("--lr", type=float, default=WindowOptions.lr)
    parser.add_argument("--prior-lr", type=float, default=WindowOptions.prior_lr)
    parser.add_argument("--prior-tokens", type=int, default=WindowOptions.prior_tokens)
    parser.add_argument("--ema-decay", type=float, default=WindowOptions.ema_decay)
    parser.add_argument("--save-minutes", type=float, default=WindowOptions.save_minutes)
    parser.add_argument("--log-every", type=int, default=WindowOptions.log_every)
    parser.add_argument("--levels", help="exported groups per level (default: the config's)")
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.save_minutes <= 0 or args.log_every < 1:
        parser.error("--minutes and --save-minutes must be positive, --log-every at least 1")
    run_window(
        WindowOptions(
            data=args.data,
            minutes=args.minutes,
            out=args.out,
            device=args.device,
            tiny=args.tiny,
            init=args.init,
            batch=args.batch,
            crop=args.crop,
            lr=args.lr,
            prior_lr=args.prior_lr,
            prior_tokens=args.prior_tokens,
            ema_decay=args.ema_decay,
            save_minutes=args.save_minutes,
            log_every=args.log_every,
            levels=args.levels,
            amp=False if args.no_amp else None,
            seed=args.seed,
            threads=args.threads,
        )
    )


if __name__ == "__main__":
    run_main(main, "lqz.train.device")
