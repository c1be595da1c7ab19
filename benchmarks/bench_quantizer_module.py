"""LeechQuantizer forward+backward next to a Conv2d(96, 96, 5, padding=2) on the same latent.

Run: ``python benchmarks/bench_quantizer_module.py [--threads 2] [--repeats 5]``
For each latent shape prints the median milliseconds of forward+backward for the quantizer
(per-group normalization, exact Leech search, straight-through) and for the convolution, the
ratio quantizer / conv, the time of the exact search alone (``lqz.leech.quantize`` on the
same groups) and the quantizer's tokens (24-d groups) per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from lqz.leech import LeechQuantizer, quantize

SHAPES = ((16, 96, 16, 16), (8, 96, 32, 32))


def median_ms(step: Callable[[], None], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def forward_backward(module: nn.Module, latent: torch.Tensor, upstream: torch.Tensor) -> None:
    x = latent.detach().requires_grad_(True)
    out = module(x)
    if isinstance(out, tuple):
        out = out[0]
    out.backward(upstream)
    assert x.grad is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    quantizer = LeechQuantizer()
    print(f"threads {args.threads}, median of {args.repeats} runs (after 2 warm-up runs)")
    print(
        f"{'latent':>18s} {'tokens':>7s} {'quantizer ms':>13s} {'conv5x5 ms':>11s} "
        f"{'ratio':>6s} {'search ms':>10s} {'tokens/s':>10s}"
    )
    for shape in SHAPES:
        b, c, h, w = shape
        conv = nn.Conv2d(c, c, 5, padding=2)
        latent = torch.randn(shape)
        upstream = torch.randn(shape)
        q_ms = median_ms(partial(forward_backward, quantizer, latent, upstream), args.repeats)
        c_ms = median_ms(partial(forward_backward, conv, latent, upstream), args.repeats)
        groups = latent.reshape(b, c // 24, 24, h, w).movedim(2, -1).contiguous()
        s_ms = median_ms(partial(quantize, groups), args.repeats)
        tokens = b * (c // 24) * h * w
        print(
            f"{'x'.join(map(str, shape)):>18s} {tokens:7d} {q_ms:13.1f} {c_ms:11.1f} "
            f"{q_ms / c_ms:6.2f} {s_ms:10.1f} {tokens / (q_ms / 1000):10,.0f}"
        )


if __name__ == "__main__":
    main()
