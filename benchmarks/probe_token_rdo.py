"""Probe: choose each token among its K nearest codewords by latent error + λ · bits.

Entropy-constrained choice of codewords (ECVQ) at the encoder, with no change to the decoder:
for every token group in coding order and every pass, the prior's pmf (float prior, context
= the tokens chosen so far) prices the K codewords nearest to the token's unit latent; the one
minimizing squared distance + λ · bits is kept. Prints held-out bpp (ideal code length under
the prior) and PSNR per level and λ; λ = 0 is the plain encoder (nearest codeword). The K
nearest come from a brute-force search over all 196,560 codewords (slow: a probe, not a tool).

    python benchmarks/probe_token_rdo.py --weights models/lqz-mse.safetensors \
        --data ../shared/train_images --levels 2,3,6 --lambdas 0,0.0025,0.005,0.01
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from lqz.entropy.shell_pmf import log_prob
from lqz.leech.shell import integer_codebook
from lqz.nn.model import LqzModel
from lqz.nn.schedule import group_passes, pass_mask
from lqz.nn.weights import read_weights
from lqz.objectives import group_bits, psnr
from lqz.train.data import held_out_crops, list_images, load_rgb
from lqz.train.quantizer import decode, latent_of


@torch.no_grad()
def code(
    model: LqzModel, crops: torch.Tensor, level: int, lam: float, k: int
) -> tuple[float, float]:
    """(bpp, mean PSNR) of ``crops`` at ``level`` token groups, tokens chosen at ``lam``."""
    config, tokenizer = model.config, model.tokenizer
    book = torch.from_numpy(integer_codebook().astype("float32")) / math.sqrt(32)
    latent = tokenizer.analysis(crops)
    indices = tokenizer.encode(crops, level)
    codewords = latent_of(tokenizer, indices)
    b, _, h, w = codewords.shape
    if lam > 0:
        for g in range(level):
            y = latent[:, 24 * g : 24 * g + 24].flatten(2).movedim(1, -1)
            unit = y / y.norm(dim=-1, keepdim=True)
            top = (unit.reshape(-1, 24) @ book.T).topk(k, dim=1)
            candidates = top.indices.reshape(b, h * w, k)
            error = (2 - 2 * top.values).reshape(b, h * w, k)
            for p in group_passes(config, g):
                tables, logits = model.prior(codewords, g, p)
                mask = pass_mask(h, w, p).flatten()
                t, lg, c = (
                    tables.flatten(1, 2)[:, mask],
                    logits.flatten(1, 2)[:, mask],
                    candidates[:, mask],
                )
                bits = torch.stack(
                    [-log_prob(t, lg, c[..., j]) / math.log(2) for j in range(k)], -1
                )
                best = (error[:, mask] + lam * bits).argmin(-1)
                flat = indices[:, g].flatten(1).clone()
                flat[:, mask] = torch.gather(c, -1, best[..., None])[..., 0]
                indices[:, g] = flat.view(b, h, w)
                codewords = latent_of(tokenizer, indices)
    pixels = crops.shape[0] * crops.shape[-2] * crops.shape[-1]
    bits = group_bits(model.prior, codewords, indices, level).sum() / pixels
    return float(bits), float(psnr(decode(tokenizer, indices), crops).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--images", type=int, default=4, help="held-out crops (of the trainer's 8)")
    p.add_argument("--levels", default="3,6")
    p.add_argument("--lambdas", default="0,0.005,0.01")
    p.add_argument("-k", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(1)
    config, state = read_weights(args.weights)
    model = LqzModel(config)
    model.load_state_dict(state)
    model.eval()
    paths = list_images(args.data)
    crops = held_out_crops([load_rgb(q) for q in paths[-8:]])[: args.images]
    for level in (int(v) for v in args.levels.split(",")):
        groups = config.levels[level - 1]
        for lam in (float(v) for v in args.lambdas.split(",")):
            bpp, quality = code(model, crops, groups, lam, args.k)
            print(
                f"level {level} ({groups} groups) λ {lam}: {bpp:.4f} bpp {quality:.3f} dB",
                flush=True,
            )


if __name__ == "__main__":
    main()
