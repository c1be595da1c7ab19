"""The tile coder: pixels <-> token indices <-> entropy-coded bytes of one tile.

Tokens are coded in the steps of :mod:`lqz.nn.schedule`, each with the pmf parameters of the
model's prior (:class:`lqz.nn.contract.CodingPrior`) and the range coder of
:mod:`lqz.entropy.coder`. :mod:`lqz.api` cuts images into tiles; :mod:`lqz.format` packs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from .entropy.coder import TokenDecoder, TokenEncoder
from .leech import DIM
from .leech import decode as leech_decode
from .nn.model import LqzModel
from .nn.refine import refine_indices
from .nn.schedule import coding_steps, pass_mask


@contextmanager
def _deterministic_threads() -> Iterator[None]:
    """Run the prior on one thread: oneDNN's results change with the thread count, and the
    decoder must reproduce the encoder's pmfs bit for bit whatever threads either side uses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: the prior splits the grid into two row bands (the second on a worker thread) from
#: 2 * BAND_MIN_ROWS rows up; smaller grids are one band (the halo would cost more than it saves)
BAND_MIN_ROWS = 8
_band_pool: tuple[int, ThreadPoolExecutor] | None = None


def _worker() -> ThreadPoolExecutor:
    """The thread that runs the second band (a new one in a forked child: the parent's is not
    there)."""
    global _band_pool
    if _band_pool is None or _band_pool[0] != os.getpid():
        _band_pool = os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="lqz-prior")
    return _band_pool[1]


def _bands(height: int) -> list[tuple[int, int]]:
    """Row bands of the prior evaluation: a function of the grid alone, so the encoder and the
    decoder compute the same floats whatever threads either has."""
    if height < 2 * BAND_MIN_ROWS:
        return [(0, height)]
    return [(0, height // 2), (height // 2, height)]


def _band_params(
    model: LqzModel, latent: torch.Tensor, group: int, pass_: int, rows: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    if torch.get_num_threads() != 1:  # a worker thread keeps its own OpenMP setting
        torch.set_num_threads(1)
    with torch.no_grad():  # grad mode is per thread: the worker's is on
        return model.prior.pass_params(latent, group, pass_, rows)


def _pass_prior(
    model: LqzModel, latent: torch.Tensor, group: int, pass_: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables (T, M, 24, 9) and logits (T, M) of the step's positions, in row-major order.

    Each band runs single-threaded (oneDNN's results change with the thread count); when the
    caller allows torch more than one thread, the second band runs concurrently on a worker
    thread (torch releases the GIL). Either way the floats are the same."""
    first, *rest = _bands(latent.shape[2])
    parallel = bool(rest) and torch.get_num_threads() > 1
    with _deterministic_threads():
        if parallel:
            pending = [_worker().submit(_band_params, model, latent, group, pass_, r) for r in rest]
            results = [_band_params(model, latent, group, pass_, first)]
            results += [f.result() for f in pending]
        else:
            results = [_band_params(model, latent, group, pass_, r) for r in (first, *rest)]
    if not rest:
        return results[0]
    return torch.cat([t for t, _ in results]), torch.cat([g for _, g in results])


def pad_to_stride(image: torch.Tensor, stride: int) -> torch.Tensor:
    """Replicate-pad (B,3,H,W) on the bottom/right to multiples of ``stride``."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        image = torch.nn.functional.pad(image, (0, pw, 0, ph), mode="replicate")
    return image


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 255.0


@torch.no_grad()
def encode_tile(model: LqzModel, pixels: np.ndarray, groups: int, effort: int = 0) -> bytes:
    """Code a uint8 (H, W, 3) tile with the first ``groups`` token groups, after ``effort``
    steps of latent refinement (:mod:`lqz.nn.refine`; 0: the analysis transform's tokens)."""
    x = pad_to_stride(_to_tensor(pixels), model.config.stride)
    if effort:
        valid = pixels.shape[:2]
        indices = refine_indices(model.tokenizer, x, groups, effort, valid)[0]
    else:
        indices = model.tokenizer.encode(x, groups)[0]  # (k, h, w)
    return encode_indices(model, indices)


@torch.no_grad()
def encode_indices(model: LqzModel, indices: torch.Tensor) -> bytes:
    """Entropy-code token indices (k, h, w) with the prior."""
    k, h, w = indices.shape
    latent = model.tokenizer.latent_of(indices[None])
    encoder = TokenEncoder()
    for group, pass_ in coding_steps(model.config, k):
        where = pass_mask(h, w, pass_)
        tables, logits = _pass_prior(model, latent, group, pass_)
        encoder.encode(tables, logits, indices[group][where])
    return encoder.finish()


@torch.no_grad()
def decode_indices(
    model: LqzModel, data: bytes, groups: int, height: int, width: int
) -> torch.Tensor:
    """Decode token indices (k, h, w) of a latent grid from entropy-coded bytes."""
    latent = torch.zeros(1, model.config.latent_channels, height, width)
    indices = torch.zeros(groups, height, width, dtype=torch.int64)
    decoder = TokenDecoder(data)
    for group, pass_ in coding_steps(model.config, groups):
        where = pass_mask(height, width, pass_)
        tables, logits = _pass_prior(model, latent, group, pass_)
        found = torch.from_numpy(np.asarray(decoder.decode(tables, logits)))
        indices[group][where] = found
        latent[0, group * DIM : (group + 1) * DIM, where] = leech_decode(found).T
    decoder.finish()
    return indices


@torch.no_grad()
def decode_tile(model: LqzModel, data: bytes, groups: int, height: int, width: int) -> np.ndarray:
    """Decode a tile of ``height`` x ``width`` pixels to uint8 (H, W, 3)."""
    s = model.config.stride
    indices = decode_indices(model, data, groups, -(-height // s), -(-width // s))
    image = model.tokenizer.decode(indices[None])[0, :, :height, :width]
    return (image * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
