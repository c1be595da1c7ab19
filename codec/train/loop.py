"""The training loop: tokenizer (and prior, when enabled) on random crops, resumable."""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..leech import SIZE
from ..nn.config import ModelConfig
from ..nn.model import LqzModel
from ..nn.schedule import group_passes, pass_mask
from .data import CropSampler, held_out_crops, list_images, load_rgb
from .ema import WeightAverage
from .migrate import split_run_state, split_weights
from .state import RunState

BITS_PER_TOKEN = math.log2(SIZE)


@dataclass
class TrainOptions:
    data: Path
    run_dir: Path
    config: ModelConfig
    batch: int = 16
    crop: int = 128
    lr: float = 2e-4
    prior_lr: float = 1e-3
    prior: bool = True
    steps: int = 1_000_000
    checkpoint_seconds: float = 300.0
    validate_seconds: float = 600.0
    log_every: int = 20
    holdout: int = 8
    threads: int | None = None
    device: str = "auto"
    init_weights: Path | None = None
    transfer: Path | None = None
    prior_tokens: int = 32
    ema_decay: float = 0.998
    split_first_group: bool = False  # migrate a run or weights without it (lqz.train.migrate)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image RGB PSNR in dB of images in [0, 1]."""
    mse = ((a.clamp(0, 1) - b) ** 2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def prior_bits(
    model: LqzModel,
    codewords: torch.Tensor,
    indices: torch.Tensor,
    groups: torch.Tensor,
    pass_: torch.Tensor | int,
    sample: int | None = None,
) -> torch.Tensor:
    """-log2 p (B, n) of the n tokens of (groups[b], pass_[b]) of each image b.

    ``pass_``: one pass for all images, or a (B,) tensor of passes (training; then ``sample``
    is needed, as the passes differ in size). ``sample``: score only this many randomly chosen
    positions of each image's pass (at most as many as the smallest pass has); the exact pmf is
    the costly part of a training step, the context net is not.
    """
    from ..entropy.shell_pmf import log_prob

    b, _, h, w = codewords.shape
    tables, logits = model.prior(codewords, groups, pass_)
    passes = torch.as_tensor(pass_).expand(b).tolist()
    masks = torch.stack([pass_mask(h, w, p, codewords.device).flatten() for p in passes])
    if sample is None:
        if len(set(passes)) > 1:
            raise ValueError("scoring whole passes of different sizes needs one pass")
        where = masks[0].nonzero()[:, 0].expand(b, -1)
    else:
        n = min(sample, int(masks.sum(1).min()))
        noise = torch.rand(masks.shape, device=masks.device).masked_fill(~masks, -1.0)
        where = noise.topk(n, dim=1).indices.sort(dim=1).values  # row-major, as coded
    rows = torch.arange(b, device=where.device)[:, None]
    tables, logits = tables.flatten(1, 2)[rows, where], logits.flatten(1, 2)[rows, where]
    target = indices[torch.arange(b, device=indices.device), groups].flatten(1)[rows, where]
    return -log_prob(tables, logits, target) / math.log(2)


def random_passes(config: ModelConfig, groups: torch.Tensor) -> torch.Tensor:
    """One pass per image, uniformly among the passes of its group (the prior's training)."""
    options = [group_passes(config, g) for g in groups.tolist()]
    chosen = [int(o[int(torch.randint(len(o), ()))]) for o in options]
    return torch.tensor(chosen, device=groups.device)


@torch.no_grad()
def validate(
    model: LqzModel, crops: torch.Tensor, device: torch.device, with_prior: bool
) -> dict[str, float]:
    """PSNR and bpp on the fixed validation crops at every quality level.

    ``raw_bpp`` is the token rate without a prior (log2 196,560 bits per token); ``bpp`` the
    ideal code length under the prior (what the range coder achieves to within ~0.5%).
    """
    model.eval()
    config = model.config
    out: dict[str, float] = {}
    stride2 = config.stride**2
    group_bits = torch.zeros(config.groups)
    if with_prior:
        for start in range(0, len(crops), 4):
            x = crops[start : start + 4].to(device)
            _, codewords, indices = model.tokenizer(x, torch.full((len(x),), 1, device=device))
            for g in range(config.groups):
                for pass_ in group_passes(config, g):
                    groups = torch.full((len(x),), g, device=device)
                    bits = prior_bits(model, codewords, indices, groups, pass_)
                    group_bits[g] += bits.sum().item() / (len(crops) * x.shape[-1] * x.shape[-2])
    for level, groups in enumerate(config.levels, start=1):
        scores = []
        for start in range(0, len(crops), 4):
            x = crops[start : start + 4].to(device)
            used = torch.full((len(x),), groups, device=device)
            x_hat, _, _ = model.tokenizer(x, used, used)
            scores.append(psnr(x_hat, x))
        out[f"psnr_q{level}"] = torch.cat(scores).mean().item()
        out[f"raw_bpp_q{level}"] = groups * BITS_PER_TOKEN / stride2
        if with_prior:
            out[f"bpp_q{level}"] = group_bits[:groups].sum().item()
    model.train()
    return out


def transfer_weights(model: LqzModel, path: Path) -> int:
    """Warm start: copy every tensor of the weights at ``path`` whose name and shape match.

    Lets a model of a related architecture (e.g. another latent stride or group count) start
    from trained outer layers; returns the number of tensors copied.
    """
    from ..nn.weights import read_weights

    _, source = read_weights(path)
    target = model.state_dict()
    matching = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return len(matching)


def train(opts: TrainOptions) -> None:
    """Train until ``opts.steps`` or SIGTERM/SIGINT; checkpoints to ``opts.run_dir``."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if opts.device == "auto" else opts.device
    )
    run = RunState(opts.run_dir)
    paths = list_images(opts.data)
    if len(paths) <= opts.holdout:
        raise SystemExit(f"need more than {opts.holdout} images in {opts.data}")
    t0 = time.perf_counter()
    images = [load_rgb(p) for p in paths]
    print(f"loaded {len(images)} images in {time.perf_counter() - t0:.0f} s", flush=True)
    val = held_out_crops(images[-opts.holdout :])
    sampler = CropSampler(images[: -opts.holdout], opts.crop)

    saved = run.load()
    if saved and opts.split_first_group:
        saved = split_run_state(saved)
    config = ModelConfig.from_json(saved["config"]) if saved else opts.config
    init_state = None
    if not saved and opts.init_weights and not opts.transfer:
        from ..nn.weights import read_weights

        config, init_state = read_weights(opts.init_weights)  # the weights decide the config
        if opts.split_first_group:
            config, init_state = split_weights(config, init_state)
    model = LqzModel(config).to(device)
    optimizer = torch.optim.Adam(model.tokenizer.parameters(), lr=opts.lr)
    prior_optimizer = torch.optim.Adam(model.prior.parameters(), lr=opts.prior_lr)
    step, elapsed, prior_steps = 0, 0.0, 0
    if saved:
        model.tokenizer.load_state_dict(saved.get("tokenizer", saved.get("model")))
        optimizer.load_state_dict(saved["optimizer"])
        if "prior" in saved:
            model.prior.load_state_dict(saved["prior"])
            prior_optimizer.load_state_dict(saved["prior_optimizer"])
            prior_steps = saved.get("prior_steps", 0)
        for opt, lr in ((optimizer, opts.lr), (prior_optimizer, opts.prior_lr)):
            for group in opt.param_groups:
                group["lr"] = lr
        step, elapsed = saved["step"], saved["elapsed"]
        sampler.rng = np.random.default_rng(step)
        print(f"resumed {run.latest} at step {step} ({elapsed / 3600:.2f} h)", flush=True)
    elif init_state is not None:
        model.load_state_dict(init_state)
        print(f"initialised from {opts.init_weights} ({config})", flush=True)
    elif opts.transfer:
        copied = transfer_weights(model, opts.transfer)
        print(f"transferred {copied} tensors from {opts.transfer} ({config})", flush=True)
    average = WeightAverage(model, opts.ema_decay)
    if saved and "ema" in saved:
        average.load_state_dict(saved["ema"])

    stop = {"flag": False}

    def request_stop(signum: int, _frame: object) -> None:
        print(f"signal {signum}: stopping after this step", flush=True)
        stop["flag"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def checkpoint() -> None:
        run.save(
            {
                "config": config.to_json(),
                "tokenizer": model.tokenizer.state_dict(),
                "optimizer": optimizer.state_dict(),
                "prior": model.prior.state_dict(),
                "prior_optimizer": prior_optimizer.state_dict(),
                "prior_steps": prior_steps,
                "ema": average.state_dict(),
                "step": step,
                "elapsed": elapsed,
            }
        )
        print(f"checkpoint at step {step}", flush=True)

    levels = torch.tensor(config.levels)
    last_ckpt = last_val = last_log = time.perf_counter()
    window_steps, window_images, window_loss, window_psnr, window_bits = 0, 0, 0.0, 0.0, 0.0
    model.train()
    while step < opts.steps and not stop["flag"]:
        tick = time.perf_counter()
        x = sampler.batch(opts.batch).to(device)
        used = levels[torch.randint(len(levels), (len(x),))].to(device)
        groups = torch.randint(config.groups, (len(x),), device=device)  # the prior's groups
        # the prior reads groups <= its group: only those and the used ones are searched
        needed = torch.maximum(used, groups + 1) if opts.prior else used
        x_hat, codewords, indices = model.tokenizer(x, used, needed)
        loss = torch.mean((x_hat - x) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.tokenizer.parameters(), 1.0)
        optimizer.step()
        if opts.prior:
            passes = random_passes(config, groups)
            bits = prior_bits(
                model, codewords.detach(), indices, groups, passes, opts.prior_tokens
            ).mean()
            prior_optimizer.zero_grad(set_to_none=True)
            bits.backward()
            torch.nn.utils.clip_grad_norm_(model.prior.parameters(), 1.0)
            prior_optimizer.step()
            prior_steps += 1
            window_bits += bits.item()
        average.update(model)
        step += 1
        now = time.perf_counter()
        elapsed += now - tick
        window_steps += 1
        window_images += len(x)
        window_loss += loss.item()
        window_psnr += psnr(x_hat.detach(), x).mean().item()
        if step % opts.log_every == 0:
            n = window_steps
            rate = window_images / (now - last_log)
            record = {
                "step": step,
                "images_per_s": rate,
                "loss": window_loss / n,
                "train_psnr": window_psnr / n,
                "bits_per_token": window_bits / n,
                "elapsed_h": elapsed / 3600,
            }
            run.log(record)
            print(
                f"step {step} {rate:.1f} img/s loss {window_loss / n:.5f} "
                f"psnr {window_psnr / n:.2f} dB bits/token {window_bits / n:.3f}",
                flush=True,
            )
            window_steps, window_images, window_loss, window_psnr, window_bits = 0, 0, 0.0, 0.0, 0.0
            last_log = now
        if now - last_val > opts.validate_seconds:
            report_validation(model, average, val, device, opts.prior, run, step)
            last_val = time.perf_counter()
        if now - last_ckpt > opts.checkpoint_seconds:
            checkpoint()
            last_ckpt = time.perf_counter()
    checkpoint()
    report_validation(model, average, val, device, opts.prior, run, step)


def report_validation(
    model: LqzModel,
    average: WeightAverage,
    crops: torch.Tensor,
    device: torch.device,
    with_prior: bool,
    run: RunState,
    step: int,
) -> None:
    """Validate the averaged weights (what export ships) and log/print the figures."""
    with average.applied(model):
        metrics = validate(model, crops, device, with_prior)
    run.log({"step": step, "validation": metrics, "weights": "ema"})
    print("validation (EMA) " + " ".join(f"{k}={v:.3f}" for k, v in metrics.items()), flush=True)
