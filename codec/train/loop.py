"""The training loop: tokenizer (and prior, when enabled) on random crops, resumable.

Three parts, shared with the GPU-window trainer (:mod:`lqz.train.device`): a :class:`Session`
(model, optimizers, weight average, counters; started fresh, from weights or from a
checkpoint), a :class:`TrainStep` (one optimizer step of both nets on one batch) and a
:class:`WindowLog` (the running figures logged every few steps).
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainingDataError, TrainSettingError
from ..nn.config import ModelConfig
from ..nn.model import LqzModel
from ..nn.schedule import group_passes
from ..nn.tokenizer import group_mask
from ..objectives import mse_loss, prior_bits, psnr, sampled_bpp
from .data import (
    CropSampler,
    DeviceCrops,
    held_out_crops,
    list_images,
    load_pack,
    load_rgb,
    to_float,
)
from .depth import random_depths
from .distributed import Distributed
from .ema import WeightAverage
from .heldout import validate
from .quantizer import use_device_quantizer
from .state import RunState


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
    #: share of images trained on a random depth map (:mod:`lqz.train.depth`), not one level
    depth_maps: float = 0.0
    ema_decay: float = 0.998
    #: bf16 autocast of the transforms; None: on CUDA only
    amp: bool | None = None
    #: weight of the rate (bpp under the prior) in the tokenizer's loss, MSE + λ·R
    rate_lambda: float = 0.0


#: ``--tiny``: the shipped architecture (stride 8, stride-1 latent convolution, group 0 in three
#: passes) small enough to train for seconds on a CPU (dry runs, tests).
TINY = ModelConfig(
    channels=16,
    groups=3,
    kernel=3,
    stride_log2=3,
    latent_kernel=3,
    prior_channels=16,
    split_first_group=True,
    levels=(1, 2, 3),
)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainSettingError(f"unknown device {name!r} (auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainSettingError("--device cuda, but torch sees no CUDA device")
    return device


class Timers:
    """Wall time per part of a step. On CUDA each interval is closed by a synchronize (kernels
    run asynchronously); on the CPU it is two clock reads."""

    def __init__(self, device: torch.device) -> None:
        self.sync = device.type == "cuda"
        self.totals: dict[str, float] = defaultdict(float)
        self.in_step = False

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time the block as part ``name``; parts count only within a ``"step"`` (the
        quantizer's search also runs in validation)."""
        if name != "step" and not self.in_step:
            yield
            return
        self.in_step = True
        if self.sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            self.totals[name] += time.perf_counter() - start
            if name == "step":
                self.in_step = False

    def shares(self) -> dict[str, float]:
        """Share of the step time in the search, the prior's pmf and the transforms; resets."""
        total = self.totals.get("step", 0.0)
        tokenizer, search = self.totals.get("tokenizer", 0.0), self.totals.get("search", 0.0)
        out = {
            "share_search": search / total if total else 0.0,
            "share_pmf": self.totals.get("prior", 0.0) / total if total else 0.0,
            "share_transforms": (tokenizer - search) / total if total else 0.0,
        }
        self.totals.clear()
        return out


@dataclass
class Session:
    """What a run trains and resumes: model, optimizers, weight average and counters."""

    config: ModelConfig
    model: LqzModel
    optimizer: torch.optim.Optimizer
    prior_optimizer: torch.optim.Optimizer
    average: WeightAverage
    step: int = 0
    elapsed: float = 0.0
    prior_steps: int = 0

    @classmethod
    def new(
        cls,
        config: ModelConfig,
        device: torch.device,
        lr: float,
        prior_lr: float,
        ema_decay: float,
        state: dict[str, torch.Tensor] | None = None,
    ) -> Session:
        """A session of a fresh model (random weights, or ``state``) on ``device``."""
        model = LqzModel(config)
        if state is not None:
            model.load_state_dict(state)
        model.to(device)
        return cls(
            config,
            model,
            torch.optim.Adam(model.tokenizer.parameters(), lr=lr),
            torch.optim.Adam(model.prior.parameters(), lr=prior_lr),
            WeightAverage(model, ema_decay),
        )

    def load_checkpoint(self, saved: dict[str, Any]) -> None:
        """Continue from a checkpoint (:meth:`checkpoint`) of a run of the same config."""
        self.model.tokenizer.load_state_dict(saved["tokenizer"])
        self.model.prior.load_state_dict(saved["prior"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.prior_optimizer.load_state_dict(saved["prior_optimizer"])
        self.average.load_state_dict(saved["ema"])
        self.step, self.elapsed = saved["step"], saved["elapsed"]
        self.prior_steps = saved["prior_steps"]

    def set_lr(self, lr: float, prior_lr: float) -> None:
        for opt, value in ((self.optimizer, lr), (self.prior_optimizer, prior_lr)):
            for group in opt.param_groups:
                group["lr"] = value

    def checkpoint(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "tokenizer": self.model.tokenizer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "prior": self.model.prior.state_dict(),
            "prior_optimizer": self.prior_optimizer.state_dict(),
            "prior_steps": self.prior_steps,
            "ema": self.average.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
        }


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


def start_session(
    opts: TrainOptions, saved: dict[str, Any] | None, device: torch.device
) -> Session:
    """Resume ``saved``, or start from ``opts.init_weights`` (their config), a ``--transfer``
    or random weights (``opts.config``)."""
    from ..nn.weights import read_weights

    config, state = opts.config, None
    if saved is not None:
        config = ModelConfig.from_json(saved["config"])
    elif opts.init_weights and not opts.transfer:
        config, state = read_weights(opts.init_weights)  # the weights decide the config
    session = Session.new(config, device, opts.lr, opts.prior_lr, opts.ema_decay, state)
    if saved is not None:
        session.load_checkpoint(saved)
        session.set_lr(opts.lr, opts.prior_lr)
        print(f"resumed at step {session.step} ({session.elapsed / 3600:.2f} h)", flush=True)
    elif state is not None:
        print(f"initialised from {opts.init_weights} ({config})", flush=True)
    elif opts.transfer:
        copied = transfer_weights(session.model, opts.transfer)
        session.average = WeightAverage(session.model, opts.ema_decay)
        print(f"transferred {copied} tensors from {opts.transfer} ({config})", flush=True)
    return session


def random_passes(config: ModelConfig, groups: torch.Tensor) -> torch.Tensor:
    """One pass per image, uniformly among the passes of its group (the prior's training)."""
    options = [group_passes(config, g) for g in groups.tolist()]
    chosen = [int(o[int(torch.randint(len(o), ()))]) for o in options]
    return torch.tensor(chosen, device=groups.device)


def check_rate_settings(prior: bool, depth_maps: float, rate_lambda: float) -> None:
    """A rate term needs the prior and a weight >= 0, and is not yet defined on depth maps."""
    if rate_lambda < 0 or (rate_lambda and not prior):
        raise TrainSettingError("--rate-lambda needs the prior and a weight >= 0")
    if rate_lambda and depth_maps:
        raise TrainSettingError("--rate-lambda and --depth-maps do not combine yet")


class TrainStep:
    """One optimizer step of the tokenizer (MSE at a random level per image) and of the prior
    (bits of a random (group, pass) per image), on the session's device.

    The search runs on the device (:class:`~lqz.train.quantizer.DeviceQuantizer`); ``amp``:
    the transforms under bf16 autocast (the quantizer and both losses stay float32).
    """

    def __init__(
        self,
        session: Session,
        device: torch.device,
        prior: bool = True,
        prior_tokens: int = 32,
        amp: bool = False,
        dist: Distributed | None = None,
        timers: Timers | None = None,
        depth_maps: float = 0.0,
        rate_lambda: float = 0.0,
    ) -> None:
        self.session, self.device, self.prior, self.prior_tokens = (
            session,
            device,
            prior,
            prior_tokens,
        )
        self.depth_maps = depth_maps
        check_rate_settings(prior, depth_maps, rate_lambda)
        self.rate_lambda = rate_lambda
        self.amp = amp
        self.timers = timers or Timers(device)
        use_device_quantizer(session.model.tokenizer, self.timers)
        dist = dist or Distributed()
        self.tokenizer = dist.wrap(session.model.tokenizer, device)
        self.prior_net = dist.wrap(session.model.prior, device)
        self.levels = torch.tensor(session.config.levels, device=device)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Train on the batch ``x`` (B, 3, H, W) on the device; the step's figures, as tensors
        (reading them would wait for the device)."""
        s, timers, b = self.session, self.timers, len(x)
        config = s.config
        with timers("step"):
            used = self.levels[torch.randint(len(self.levels), (b,), device=self.device)]
            # the prior's token groups
            groups = torch.randint(config.token_groups, (b,), device=self.device)
            depth, mapped = self.depth_map(used, x)
            if depth is not None:  # a mapped image's prior group lies below its deepest point
                deepest = depth.amax((1, 2))
                below = (torch.rand(b, device=self.device) * deepest).long()
                groups = torch.where(mapped, below, groups)
                used = deepest
            # the prior reads groups <= its group: only those and the used ones are searched
            needed = torch.maximum(used, groups + 1) if self.prior else used
            with timers("tokenizer"):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    x_hat, codewords, indices = self.tokenizer(
                        x, used if depth is None else depth, needed
                    )
                loss = mse_loss(x_hat.float(), x)
            if self.rate_lambda:
                figures = self.rate_distortion_step(
                    x_hat, x, loss, codewords, indices, used, groups
                )
            else:
                figures = self.distortion_step(x_hat, x, loss, codewords, indices, groups, depth)
            s.average.update(s.model)
            s.step += 1
        return figures

    def distortion_step(
        self,
        x_hat: torch.Tensor,
        x: torch.Tensor,
        mse: torch.Tensor,
        codewords: torch.Tensor,
        indices: torch.Tensor,
        groups: torch.Tensor,
        depth: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Both optimizer steps with the tokenizer on MSE alone (the prior, when trained, on
        detached codewords; with a depth map, only what its decoder has)."""
        s, config, timers = self.session, self.session.config, self.timers
        with timers("tokenizer"):
            s.optimizer.zero_grad(set_to_none=True)
            mse.backward()
            torch.nn.utils.clip_grad_norm_(s.model.tokenizer.parameters(), 1.0)
            s.optimizer.step()
        figures = {"loss": mse.detach(), "psnr": psnr(x_hat.detach().float(), x).mean()}
        if self.prior:
            with timers("prior"):
                passes = random_passes(config, groups)
                context, coded = codewords.detach(), None
                if depth is not None:  # what a decoder of the map has: the coded tokens
                    context = context * group_mask(depth, config.token_groups)
                    coded = depth > groups[:, None, None]
                bits = prior_bits(
                    self.prior_net, context, indices, groups, passes, self.prior_tokens, coded
                ).nanmean()
                s.prior_optimizer.zero_grad(set_to_none=True)
                bits.backward()
                torch.nn.utils.clip_grad_norm_(s.model.prior.parameters(), 1.0)
                s.prior_optimizer.step()
            s.prior_steps += 1
            figures["bits"] = bits.detach()
        return figures

    def rate_distortion_step(
        self,
        x_hat: torch.Tensor,
        x: torch.Tensor,
        mse: torch.Tensor,
        codewords: torch.Tensor,
        indices: torch.Tensor,
        used: torch.Tensor,
        groups: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Both optimizer steps with the tokenizer on MSE + λ·R (one level per image).

        R: :func:`~lqz.objectives.sampled_bpp` of the prior's sampled tokens, reaching the
        tokenizer through the context the coded tokens form and the scored tokens' own
        codewords (``rate_grad``); the prior still learns its bits alone.
        """
        s, config = self.session, self.session.config
        with self.timers("prior"):
            passes = random_passes(config, groups)
            bits = prior_bits(
                self.prior_net,
                codewords,
                indices,
                groups,
                passes,
                self.prior_tokens,
                rate_grad=True,
            )
            grid = codewords.shape[-2], codewords.shape[-1]
            rate = sampled_bpp(config, bits, groups, passes, used, grid).mean()
            prior_loss = bits.mean()
            prior_params = list(s.model.prior.parameters())
            s.prior_optimizer.zero_grad(set_to_none=True)
            prior_loss.backward(inputs=prior_params, retain_graph=True)
        with self.timers("tokenizer"):
            loss = mse + self.rate_lambda * rate
            s.optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=list(s.model.tokenizer.parameters()))
            torch.nn.utils.clip_grad_norm_(s.model.tokenizer.parameters(), 1.0)
            s.optimizer.step()
        torch.nn.utils.clip_grad_norm_(prior_params, 1.0)
        s.prior_optimizer.step()
        s.prior_steps += 1
        return {
            "loss": loss.detach(),
            "psnr": psnr(x_hat.detach().float(), x).mean(),
            "bits": prior_loss.detach(),
            "rate": rate.detach(),
        }

    def depth_map(
        self, used: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(depth map (B, h, w) or None, which images have a random one): a share
        :attr:`depth_maps` of the batch gets :func:`~lqz.train.depth.random_depths`, the rest
        their one level everywhere."""
        mapped = torch.rand(len(used), device=self.device) < self.depth_maps
        if not bool(mapped.any()):
            return None, mapped
        s = self.session.config.stride
        h, w = x.shape[-2] // s, x.shape[-1] // s
        depth = used[:, None, None].expand(-1, h, w).clone()
        depth[mapped] = random_depths(self.levels, int(mapped.sum()), h, w)
        return depth, mapped


class WindowLog:
    """Figures averaged over the steps since the last record."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self.start, self.steps, self.images = now, 0, 0
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, figures: dict[str, torch.Tensor], images: int) -> None:
        self.steps += 1
        self.images += images
        for k, v in figures.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()

    def record(self, session: Session, world: int = 1) -> dict[str, Any]:
        """The window's record (images/s across all ranks), and a new window."""
        now = time.perf_counter()
        n = max(self.steps, 1)
        mean = {k: v.item() / n for k, v in self.sums.items()}
        record = {
            "step": session.step,
            "images_per_s": self.images * world / (now - self.start),
            "loss": mean.get("loss", 0.0),
            "train_psnr": mean.get("psnr", 0.0),
            "bits_per_token": mean.get("bits", 0.0),
            "rate_bpp": mean.get("rate", 0.0),
            "elapsed_h": session.elapsed / 3600,
            **self.timers.shares(),
        }
        self._reset(now)
        return record

    @staticmethod
    def line(record: dict[str, Any]) -> str:
        return (
            f"step {record['step']} {record['images_per_s']:.1f} img/s loss {record['loss']:.5f} "
            f"psnr {record['train_psnr']:.2f} dB bits/token {record['bits_per_token']:.3f} "
            + (f"rate {record['rate_bpp']:.3f} bpp " if record.get("rate_bpp") else "")
            + f"(search {record['share_search']:.0%}, pmf {record['share_pmf']:.0%}, "
            f"transforms {record['share_transforms']:.0%})"
        )


def load_training_data(
    data: Path, crop: int, holdout: int, device: torch.device, seed: int = 0
) -> tuple[CropSampler | DeviceCrops, torch.Tensor]:
    """(crop sampler, validation crops) of a folder of images or a training pack (``.npz``);
    a pack's crops live on ``device``."""
    t0 = time.perf_counter()
    if data.is_file():
        crops, val = load_pack(data)
        sampler: CropSampler | DeviceCrops = DeviceCrops(
            torch.from_numpy(crops).to(device), crop, seed
        )
        print(f"loaded {len(crops)} crops in {time.perf_counter() - t0:.0f} s", flush=True)
        return sampler, to_float(val)
    paths = list_images(data)
    if len(paths) <= holdout:
        raise TrainingDataError(f"need more than {holdout} images in {data}")
    images = [load_rgb(p) for p in paths]
    print(f"loaded {len(images)} images in {time.perf_counter() - t0:.0f} s", flush=True)
    return CropSampler(images[:-holdout], crop, seed), held_out_crops(images[-holdout:])


def sampler_seed(step: int, dist: Distributed) -> int | list[int]:
    """The crop stream of a rank from ``step`` on (rank 0 alone: the step, as before)."""
    return step if dist.rank == 0 else [step, dist.rank]


@contextmanager
def stop_on_signals() -> Iterator[dict[str, bool]]:
    """A flag that SIGTERM/SIGINT set (stop after this step); the old handlers come back."""
    flag = {"stop": False}

    def request_stop(signum: int, _frame: object) -> None:
        print(f"signal {signum}: stopping after this step", flush=True)
        flag["stop"] = True

    old = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def train(opts: TrainOptions) -> Session:
    """Train until ``opts.steps`` or SIGTERM/SIGINT; checkpoints to ``opts.run_dir``.

    Under torchrun every rank trains and rank 0 alone writes (checkpoints, log, validation).
    """
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = resolve_device(opts.device)
    dist = Distributed.from_env(device)
    device = dist.device(device)
    try:
        return _train(opts, device, dist)
    finally:
        dist.close()


def _train(opts: TrainOptions, device: torch.device, dist: Distributed) -> Session:
    check_rate_settings(opts.prior, opts.depth_maps, opts.rate_lambda)
    run = RunState(opts.run_dir)
    saved = run.load()  # a bad checkpoint fails before the data load
    sampler, val = load_training_data(opts.data, opts.crop, opts.holdout, device)
    session = start_session(opts, saved, device)
    dist.broadcast(list(session.model.state_dict().values()))
    dist.broadcast(list(session.average.state_dict().values()))
    sampler.reseed(sampler_seed(session.step, dist))
    amp = device.type == "cuda" if opts.amp is None else opts.amp
    timers = Timers(device)
    step = TrainStep(
        session,
        device,
        opts.prior,
        opts.prior_tokens,
        amp,
        dist,
        timers,
        opts.depth_maps,
        opts.rate_lambda,
    )
    window = WindowLog(timers)
    last_ckpt = last_val = time.perf_counter()

    def report_validation() -> None:
        metrics = validate_average(session, val, opts.prior)
        run.log({"step": session.step, "validation": metrics, "weights": "ema"})
        print("validation (EMA) " + " ".join(f"{k}={v:.3f}" for k, v in metrics.items()))

    with stop_on_signals() as flag:
        while session.step < opts.steps and not dist.any(flag["stop"], device):
            tick = time.perf_counter()
            x = sampler.batch(opts.batch).to(device)
            window.add(step(x), len(x))
            now = time.perf_counter()
            session.elapsed += now - tick
            if not dist.is_main:
                continue
            if session.step % opts.log_every == 0:
                record = window.record(session, dist.world)
                run.log(record)
                print(WindowLog.line(record), flush=True)
            if now - last_val > opts.validate_seconds:
                report_validation()
                last_val = time.perf_counter()
            if now - last_ckpt > opts.checkpoint_seconds:
                run.save(session.checkpoint())
                print(f"checkpoint at step {session.step}", flush=True)
                last_ckpt = time.perf_counter()
    if dist.is_main:
        run.save(session.checkpoint())
        print(f"checkpoint at step {session.step}", flush=True)
        report_validation()
    return session


def validate_average(
    session: Session, crops: torch.Tensor, with_prior: bool = True
) -> dict[str, float]:
    """Validation figures of the averaged weights (what export ships)."""
    with session.average.applied(session.model):
        return validate(session.model, crops, with_prior)
