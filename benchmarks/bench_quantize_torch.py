"""Throughput of ``lqz.leech.quantize_torch`` against numba ``quantize`` and a brute-force GEMM.

Run: ``python benchmarks/bench_quantize_torch.py [--vectors 20000] [--threads 2]
[--device cpu|cuda] [--chunks 128,256,512]``

Prints vectors/s of quantize_torch per chunk size, of numba ``quantize`` (CPU) and of the best
blocked float32 brute-force GEMM over all 196,560 codewords on the same device, and the work
per vector of quantize_torch counted op by op (floating-point operations, elements and bytes
written: the memory traffic that bounds it on a GPU). On a CUDA device it also checks that
the indices equal ``quantize``'s on the CPU.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import lqz.leech as leech
from lqz.leech.search_torch import _device_tables, _nearest_rows

_PRODUCTS = {"mm", "bmm", "addmm", "baddbmm"}


class _WorkCounter(TorchDispatchMode):
    """Counts, per aten op: 2mnk for matrix products, else output (and reduced input) elements."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: Counter[str] = Counter()
        self.written: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        outs = out if isinstance(out, tuple | list) else (out,)
        tensors = [o for o in outs if isinstance(o, torch.Tensor)]
        if name in _PRODUCTS:
            a = args[-2]
            self.flops[name] += 2 * a.numel() * args[-1].shape[-1]
        elif name not in {"view", "expand", "select", "slice", "unsqueeze", "t", "alias"}:
            inputs = [a for a in args if isinstance(a, torch.Tensor)]
            self.flops[name] += max([t.numel() for t in tensors + inputs], default=0)
        if name not in {"view", "expand", "select", "slice", "unsqueeze", "t", "alias"}:
            self.written[name] += sum(t.numel() * t.element_size() for t in tensors)
        return out


def _rate(fn, x: torch.Tensor, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def _brute(book_t: torch.Tensor, block: int):
    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([(part @ book_t).argmax(1) for part in x.split(block)])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--brute-vectors", type=int, default=4_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunks", default="128,256,512,2048")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    gen = torch.Generator().manual_seed(0)
    x_cpu = torch.randn(args.vectors, 24, generator=gen)
    x_cpu = x_cpu / x_cpu.norm(dim=1, keepdim=True)
    x = x_cpu.to(device)
    leech.quantize(x_cpu[:100])  # compile / load numba's cache
    leech.quantize_torch(x[:100])  # warm up (tables, kernels)

    print(f"threads {args.threads}, device {device}, {args.vectors:,} unit float32 vectors")
    for chunk in (int(c) for c in args.chunks.split(",")):
        rate = _rate(lambda v, c=chunk: leech.quantize_torch(v, chunk_rows=c), x)
        print(f"quantize_torch  chunk {chunk:<6d} {rate:12,.0f} vectors/s")
    print(f"numba quantize  (cpu)        {_rate(leech.quantize, x_cpu):12,.0f} vectors/s")

    sample = x[: args.brute_vectors]
    book_t = leech.codebook().to(device).T.contiguous()
    brute = {b: _rate(_brute(book_t, b), sample, repeats=2) for b in (32, 128, 512)}
    block, rate = max(brute.items(), key=lambda kv: kv[1])
    print(f"brute-force float32 GEMM     {rate:12,.0f} vectors/s  (block {block})")

    rows = 512
    counter = _WorkCounter()
    flat = x[:rows].double()
    tab = _device_tables(flat.device)
    with counter:
        _nearest_rows(flat, tab)
    flops = sum(counter.flops.values()) / rows
    written = sum(counter.written.values()) / rows
    print(
        f"quantize_torch work per vector: {flops:,.0f} float ops, {written / 1e3:,.0f} kB written"
    )
    top = ", ".join(f"{k} {v / rows:,.0f}" for k, v in counter.flops.most_common(6))
    print(f"  largest: {top}")
    print(f"brute force per vector: {2 * 24 * 196_560:,} float ops, {4 * 196_560 / 1e3:,.0f} kB")

    if device.type != "cpu":
        same = torch.equal(leech.quantize_torch(x).cpu(), leech.quantize(x_cpu))
        print(f"indices equal to quantize on the CPU: {same}")


if __name__ == "__main__":
    main()
