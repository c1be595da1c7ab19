"""Throughput of the exact Leech quantizer against the best blocked brute-force GEMM.

Run: ``python benchmarks/bench_quantize.py [--vectors 100000] [--threads 2]``
Prints vectors/s for both and the ratio. Both searches run in the same process, on the
same unit vectors, with the same thread count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import lqz.leech as leech


def brute_force(x: np.ndarray, book_t: np.ndarray, block: int, use_torch: bool) -> np.ndarray:
    """Blocked float32 GEMM over all 196,560 codewords, then argmax."""
    out = np.empty(len(x), dtype=np.int64)
    xt, bt = torch.from_numpy(x), torch.from_numpy(book_t)
    for start in range(0, len(x), block):
        if use_torch:
            out[start : start + block] = torch.mm(xt[start : start + block], bt).argmax(1).numpy()
        else:
            out[start : start + block] = (x[start : start + block] @ book_t).argmax(axis=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--brute-vectors", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.vectors, 24, generator=gen)
    x = x / x.norm(dim=1, keepdim=True)
    book = leech.codebook()
    leech.quantize(x[:100])  # compile / load the kernel cache

    t0 = time.perf_counter()
    fast = leech.quantize(x)
    fast_rate = len(x) / (time.perf_counter() - t0)

    sample = x[: args.brute_vectors].numpy()
    book_t = book.numpy().T.copy()
    rates = {}
    for use_torch in (False, True):
        for block in (16, 32, 128, 512):
            t0 = time.perf_counter()
            ref = brute_force(sample, book_t, block, use_torch)
            rates[("torch" if use_torch else "numpy", block)] = len(sample) / (
                time.perf_counter() - t0
            )
    (lib, block), brute_rate = max(rates.items(), key=lambda kv: kv[1])
    sample_t = torch.from_numpy(sample)
    scores_fast = (sample_t * book[fast[: len(sample)]]).sum(1)
    scores_ref = (sample_t * book[torch.from_numpy(ref)]).sum(1)
    agree = torch.isclose(scores_fast, scores_ref, atol=1e-6).float().mean().item()

    print(f"threads            {args.threads}")
    print(f"lqz.leech.quantize {fast_rate:12,.0f} vectors/s  ({len(x):,} unit vectors)")
    for (name, b), r in rates.items():
        print(f"brute {name:5s} b={b:<4d} {r:12,.0f} vectors/s  ({len(sample):,} unit vectors)")
    print(f"speed-up vs best brute force ({lib}, block {block}): {fast_rate / brute_rate:.1f}x")
    print(f"same score as brute force on {100 * agree:.2f}% of the brute-force sample")


if __name__ == "__main__":
    main()
