"""Throughput and compression overhead of the exact Λ24 token pmf and its range coder.

Run: ``python benchmarks/bench_entropy.py [--tokens 100000] [--threads 2] [--image kodim23.png]``

Per distribution (peaked vMF, flat, random 2-component tables like the default model's,
3-component vMF mixture with concentrations up to 200; with ``--image``, the shipped model's
prior on that image), with indices drawn from the model (or the image's own tokens):

- pmf enc: tokens/s of the encoder's exact conditional pmfs (shape pmf, and the support and
  detail pmfs of each token's own shape: :func:`lqz.entropy.chain.encoder_pmfs`) alone;
- pmf dec: the same for the decoder's path (:func:`lqz.entropy.chain.decoder_pmfs`: shape
  pmfs and the support pmfs of the decoded shapes, given the shapes; then the detail pmfs);
- range coding: tokens/s of the constriction calls alone, given the encoder's pmfs;
- encode / decode: tokens/s of :class:`TokenEncoder` / :class:`TokenDecoder` end to end
  (including rounding the parameters onto the coding grid);
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
    if kind == "random":
        return rng.normal(size=(count, 2, 24, 9)) * 2.0, rng.normal(size=(count, 2))
    m = 3 if kind == "mixture" else 1
    mu = rng.normal(size=(count, m, 24))
    mu /= np.linalg.norm(mu, axis=-1, keepdims=True)
    kappa = rng.choice([5.0, 40.0, 200.0], size=(count, m, 1, 1)) if m > 1 else 40.0
    return kappa * mu[..., None] * VALUES, rng.normal(size=(count, m))


def image_case(path: str) -> tuple[np.ndarray, ...]:
    """Tables, logits and token indices of every step of the shipped model on an image."""
    from PIL import Image

    from lqz import tiles
    from lqz.leech import DIM
    from lqz.leech import decode as leech_decode
    from lqz.nn.schedule import coding_steps, pass_mask
    from lqz.nn.weights import load_model
    from lqz.qualities import DEFAULT_WEIGHTS

    model = load_model(DEFAULT_WEIGHTS)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    x = tiles.pad_to_stride(tiles._to_tensor(pixels), model.config.stride)
    tables, logits, indices = [], [], []
    with torch.no_grad():
        tokens = model.tokenizer.encode(x, model.config.groups)[0]
        k, h, w = tokens.shape
        latent = torch.zeros(1, model.config.latent_channels, h, w)
        latent[0, : k * DIM] = leech_decode(tokens).permute(0, 3, 1, 2).reshape(k * DIM, h, w)
        for group, pass_ in coding_steps(model.config, k):
            where = pass_mask(h, w, pass_)
            t, g = tiles._pass_prior(model.prior, latent, group, pass_)  # the coding path
            tables.append(t.numpy())
            logits.append(g.numpy())
            indices.append(tokens[group][where].numpy())
    return np.concatenate(tables), np.concatenate(logits), np.concatenate(indices)


def known_shapes(shape: np.ndarray):
    """A ``decode_shapes`` callback for :func:`lqz.entropy.chain.decoder_pmfs` that returns
    the known shapes of consecutive tokens."""
    position = 0

    def next_shapes(pmfs: np.ndarray) -> np.ndarray:
        nonlocal position
        position += len(pmfs)
        return shape[position - len(pmfs) : position]

    return next_shapes


def split_timing(tables: np.ndarray, logits: np.ndarray, indices: np.ndarray, threads: int):
    """Seconds spent in the encoder's pmfs, the decoder's pmfs and range coding (encoding)."""
    params = quantize_params(tables, logits)
    buffers = chain.SummaryBuffers()
    encoder = constriction.stream.queue.RangeEncoder()
    enc_s = dec_s = code_s = 0.0
    for start in range(0, len(params), chain.CHUNK):
        part = params.rows(start, min(start + chain.CHUNK, len(params)))
        shape, support, detail = split_index(indices[start : start + chain.CHUNK])
        t0 = time.perf_counter()
        pmfs = chain.encoder_pmfs(part, shape, support, threads, buffers)
        t1 = time.perf_counter()
        encoder.encode(shape.astype(np.int32), FAMILY, pmfs.shape)
        for s, sel in enumerate(pmfs.groups):
            if sel.size:
                column = chain.support_columns(s, support[sel]).astype(np.int32)
                encoder.encode(column, FAMILY, pmfs.support[s])
        for s, sel in enumerate(pmfs.groups):
            if sel.size:
                encoder.encode(detail[sel].astype(np.int32), FAMILY, pmfs.detail[s])
        t2 = time.perf_counter()
        decoded = chain.decoder_pmfs(part, known_shapes(shape), threads, buffers)
        chain.grouped_detail_pmfs(part, decoded.pmfs, shape, support, threads, buffers)
        t3 = time.perf_counter()
        enc_s += t1 - t0
        code_s += t2 - t1
        dec_s += t3 - t2
    return enc_s, dec_s, code_s


def bench_coder(
    kind: str, tables: np.ndarray, logits: np.ndarray, indices: np.ndarray, threads: int
) -> None:
    count = len(indices)
    enc_s, dec_s, code_s = split_timing(tables, logits, indices, threads)

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
        f"{kind:8s} M={tables.shape[1]}  pmf enc {count / enc_s:7.0f} tok/s  dec "
        f"{count / dec_s:7.0f} tok/s   range coding {count / code_s:7.0f} tok/s   "
        f"encode {count / (t1 - t0):7.0f} tok/s   decode {count / (t2 - t1):7.0f} tok/s"
    )
    print(
        f"{'':8s} ideal {ideal / count:7.4f} bits/token   real {real / count:7.4f}   "
        f"ratio {real / ideal:.5f}   excess {real - ideal:8.1f} bits   "
        f"bound ok: {real <= 1.005 * ideal + 64}"
    )


#: Tokens of one training step's prior loss: 16 crops of 128^2 at stride 16, one (group, pass)
#: per crop, half of its 8 x 8 positions (``lqz.objectives.prior_bits``).
STEP_TOKENS = 16 * 32


def bench_training(count: int, mixtures: int, rng: np.random.Generator) -> None:
    tables = torch.tensor(rng.normal(size=(count, mixtures, 24, 9)), dtype=torch.float32)
    logits = torch.zeros(count, mixtures, requires_grad=True)
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
    step = tables[:STEP_TOKENS].detach().requires_grad_(True)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        log_prob(step, logits[:STEP_TOKENS], index[:STEP_TOKENS]).sum().backward()
        best = min(best, time.perf_counter() - t0)
    print(
        f"torch log_prob (training path), M={mixtures}: forward {count / forward:.0f} tok/s, "
        f"forward + backward {count / both:.0f} tok/s; one training step's prior loss "
        f"({STEP_TOKENS} tokens) {1000 * best:.0f} ms forward + backward"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--training-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", default="peaked,flat,random,mixture")
    parser.add_argument("--image", help="also code the shipped model's tokens of this image")
    parser.add_argument("--no-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    warm = distribution("mixture", 64, rng)
    bench_coder_tables = (warm[0], warm[1], chain.sample(quantize_params(*warm), rng))
    ideal_bits(*bench_coder_tables)  # compile / load the numba kernels
    print(f"{args.tokens} tokens per distribution, {args.threads} threads")
    for kind in args.kinds.split(","):
        tables, logits = distribution(kind, args.tokens, rng)
        indices = chain.sample(quantize_params(tables, logits), rng, args.threads)
        bench_coder(kind, tables, logits, indices, args.threads)
    if args.image:
        tables, logits, indices = image_case(args.image)
        print(f"image {args.image}: {len(indices)} tokens")
        bench_coder("image", tables, logits, indices, args.threads)
    if args.no_training:
        return
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        print(f"torch threads: {threads}")
        for mixtures in (1, 2):
            bench_training(args.training_tokens, mixtures, rng)


if __name__ == "__main__":
    main()
