"""Time of one 3x3 convolution of the exact prior's coding path: torch's float64 ``F.conv2d``
against :meth:`lqz.nn.exact_prior.ExactPrior._valid_conv` (one GEMM per kernel tap).

    python benchmarks/bench_exact_conv.py [--rows 34] [--cols 96] [--channels 128] [--repeat 10]

Inputs lie on the exact grids (activations 2^-12, weights 18 bits), so both give the same bits
(checked). One thread, as each band thread of the decoder. Prints a table; not a test. Run it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from lqz.nn.exact_prior import (
    ACTIVATION_BITS,
    ExactPrior,
    to_grid,
    to_multiples,
    weight_exponent,
)


def best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=34)
    parser.add_argument("--cols", type=int, default=96)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    c = args.channels
    conv = nn.Conv2d(c, c, 3).to(torch.float64).requires_grad_(False)
    e = weight_exponent(conv.weight)
    conv.weight.copy_(to_multiples(conv.weight, e))
    conv.bias.copy_(to_multiples(conv.bias, e + ACTIVATION_BITS))
    x = to_grid(torch.randn(1, c, args.rows + 2, args.cols + 2, generator=gen, dtype=torch.float64))
    for stride in (1, 2):
        ref = F.conv2d(x, conv.weight, conv.bias, stride=stride)
        assert torch.equal(ExactPrior._valid_conv(conv, x, stride), ref)
        t_conv = best_ms(
            lambda s=stride: F.conv2d(x, conv.weight, conv.bias, stride=s), args.repeat
        )
        t_gemm = best_ms(lambda s=stride: ExactPrior._valid_conv(conv, x, s), args.repeat)
        print(
            f"stride {stride}, {c} ch, {args.rows}x{args.cols}: "
            f"F.conv2d {t_conv:.1f} ms, per-tap GEMM {t_gemm:.1f} ms (best of {args.repeat})"
        )


if __name__ == "__main__":
    main()
