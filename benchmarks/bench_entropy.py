"""Throughput and compression overhead of the exact Λ24 token pmf and its range coder.

Run: ``python benchmarks/bench_entropy.py [--tokens 100000] [--threads 2]``

Per distribution (peaked vMF, flat, 3-component mixture), with indices drawn from the model:

- pmf: tokens/s of the coder's exact conditional pmfs (shape, supports, details) alone;
- range coding: tokens/s of the constriction calls alone, given those pmfs;
- encode / decode: tokens/s of :class:`TokenEncoder` / :class:`TokenDecoder` end to end;
- overhead: real bits against the ideal ``-log2 p`` (bound: ideal * 1.005 + 64 bits).

Then tokens/s of the torch training path (``log_prob`` forward, and forward + backward).
"""

from __future__ import annotations

import argparse
import time

import constriction
import numpy as np
import torch

from lqz.entropy import TokenDecoder, TokenEncoder, chain, ideal_bits, log_prob, split_index
from lqz.entropy.params import quantize_params

VALUES = np.arange(-4, 5)
FAMILY = constriction.stream.model.Categorical(perfect=False)


def distribution(kind: str, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Tables and logits of ``count`` tokens of a kind."""
    if kind == "flat":
        return rng.normal(size=(count, 1, 24, 9)) * 0.05, np.zeros((count, 1))
    m = 3 if kind == "mixture" else 1
    mu = rng.normal(size=(count, m, 24))
    mu /= np.linalg.norm(mu, axis=-1, keepdims=True)
    kappa = rng.choice([5.0, 40.0, 200.0], size=(count, m, 1, 1)) if m > 1 else 40.0
    return kappa * mu[..., None] * VALUES, rng.normal(size=(count, m))


def split_timing(tables: np.ndarray, logits: np.ndarray, indices: np.ndarray, threads: int):
    """Seconds spent in pmf evaluation and in range coding, encoding all tokens."""
    params = quantize_params(tables, logits)
    buffers = chain.SummaryBuffers()
    encoder = constriction.stream.queue.RangeEncoder()
    pmf_s = code_s = 0.0
    for start in range(0, len(params), chain.CHUNK):
        part = params.rows(start, min(start + chain.CHUNK, len(params)))
        shape, support, detail = split_index(indices[start : start + chain.CHUNK])
        t0 = time.perf_counter()
        summary = chain.summarize(part, threads, buffers)
        groups = [np.flatnonzero(shape == s) for s in range(3)]
        supports = [summary.support[s][sel] for s, sel in enumerate(groups)]
        details = [
            chain.detail_pmfs(part, summary, s, sel, support[sel], threads)
            for s, sel in enumerate(groups)
        ]
        t1 = time.perf_counter()
        encoder.encode(shape.astype(np.int32), FAMILY, summary.shape)
        for probs, sel in zip(supports + details, groups + groups, strict=True):
            if sel.size:
                symbols = (support if probs.shape[1] in (276, 759, 4096) else detail)[sel]
                encoder.encode(symbols.astype(np.int32), FAMILY, probs)
        t2 = time.perf_counter()
        pmf_s += t1 - t0
        code_s += t2 - t1
    return pmf_s, code_s


def bench_coder(kind: str, count: int, threads: int, rng: np.random.Generator) -> None:
    tables, logits = distribution(kind, count, rng)
    indices = chain.sample(quantize_params(tables, logits), rng, threads)
    pmf_s, code_s = split_timing(tables, logits, indices, threads)

    t0 = time.perf_counter()
    encoder = TokenEncoder(threads=threads)
    encoder.encode(tables, logits, indices)
    data = encoder.finish()
    t1 = time.perf_counter()
    decoder = TokenDecoder(data, threads=threads)
    decoded = decoder.decode(tables, logits)
    decoder.finish()
    t2 = time.perf_counter()
    assert np.array_equal(decoded, indices), "round trip failed"

    ideal = ideal_bits(tables, logits, indices, threads)
    real = 8 * len(data)
    print(
        f"{kind:8s} M={tables.shape[1]}  pmf {count / pmf_s:9.0f} tok/s   "
        f"range coding {count / code_s:9.0f} tok/s   encode {count / (t1 - t0):8.0f} tok/s   "
        f"decode {count / (t2 - t1):8.0f} tok/s"
    )
    print(
        f"{'':8s} ideal {ideal / count:7.4f} bits/token   real {real / count:7.4f}   "
        f"ratio {real / ideal:.5f}   excess {real - ideal:8.1f} bits   "
        f"bound ok: {real <= 1.005 * ideal + 64}"
    )


def bench_training(count: int, mixtures: int, rng: np.random.Generator) -> None:
    tables = torch.tensor(rng.normal(size=(count, mixtures, 24, 9)), dtype=torch.float32)
    logits = torch.zeros(count, mixtures)
    index = torch.from_numpy(rng.integers(0, 196_560, size=count))
    with torch.no_grad():
        log_prob(tables[:64], logits[:64], index[:64])
        t0 = time.perf_counter()
        log_prob(tables, logits, index)
        forward = time.perf_counter() - t0
    tables.requires_grad_(True)
    t0 = time.perf_counter()
    log_prob(tables, logits, index).sum().backward()
    both = time.perf_counter() - t0
    print(
        f"torch log_prob (training path), M={mixtures}: forward {count / forward:.0f} tok/s, "
        f"forward + backward {count / both:.0f} tok/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--training-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    warm = distribution("mixture", 64, rng)
    bench_coder_tables = (warm[0], warm[1], chain.sample(quantize_params(*warm), rng))
    ideal_bits(*bench_coder_tables)  # compile / load the numba kernels
    print(f"{args.tokens} tokens per distribution, {args.threads} threads")
    for kind in ("peaked", "flat", "mixture"):
        bench_coder(kind, args.tokens, args.threads, rng)
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        print(f"torch threads: {threads}")
        bench_training(args.training_tokens, 1, rng)


if __name__ == "__main__":
    main()
