"""The tile coder: pixels <-> token indices <-> entropy-coded bytes of one tile.

Tokens are coded in the steps of :mod:`lqz.nn.schedule`, each with the pmf parameters of the
model's prior (:class:`lqz.nn.contract.CodingPrior`) and the range coder of
:mod:`lqz.entropy.coder`. :mod:`lqz.api` cuts images into tiles; :mod:`lqz.format` packs them.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from .entropy.coder import TokenDecoder, TokenEncoder
from .leech import DIM
from .leech import decode as leech_decode
from .nn.contract import CodingPrior
from .nn.model import LqzModel
from .nn.refine import refine_indices
from .nn.schedule import coding_steps, pass_mask
from .threads import single_threaded

#: the prior and the encoder's tokenizer split the grid into two row bands (the second on a
#: worker thread) from 2 * BAND_MIN_ROWS rows up; smaller grids are one band (the halo would cost
#: more than it saves)
BAND_MIN_ROWS = 8
#: latent rows each encoder band sees beyond its own on either side: more than the analysis and
#: synthesis transforms' reach, so a band's tokens are those of the whole grid but for rounding
ENCODER_HALO = 4


def _bands(height: int) -> list[tuple[int, int]]:
    """Row bands of the prior evaluation: a function of the grid alone, so the encoder and the
    decoder compute the same floats whatever threads either has."""
    if height < 2 * BAND_MIN_ROWS:
        return [(0, height)]
    return [(0, height // 2), (height // 2, height)]


def _band_params(
    prior: CodingPrior, latent: torch.Tensor, group: int, pass_: int, rows: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():  # grad mode is per thread: the worker's is on
        return prior.pass_params(latent, group, pass_, rows)


def _pass_prior(
    prior: CodingPrior, latent: torch.Tensor, group: int, pass_: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables (T, M, 24, 9) and logits (T, M) of the step's positions, in row-major order.

    Bands by the grid's size, each on one thread (:func:`lqz.threads.single_threaded`): the
    encoder and the decoder compute the same floats whatever threads either has."""
    bands = _bands(latent.shape[2])
    results = single_threaded(
        [partial(_band_params, prior, latent, group, pass_, rows) for rows in bands]
    )
    if len(results) == 1:
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


def _band_indices(
    model: LqzModel,
    x: torch.Tensor,
    valid: tuple[int, int],
    groups: int,
    effort: int,
    rows: tuple[int, int],
) -> torch.Tensor:
    """Indices (k, r1 - r0, w) of latent rows ``rows``, from the pixels of those rows and
    :data:`ENCODER_HALO` more on either side."""
    s = model.config.stride
    r0, r1 = rows
    a, b = max(0, r0 - ENCODER_HALO), min(x.shape[2] // s, r1 + ENCODER_HALO)
    window = x[:, :, a * s : b * s]
    if effort:
        seen = (min(valid[0], b * s) - a * s, valid[1])
        indices = refine_indices(model.tokenizer, window, groups, effort, seen)[0]
    else:
        with torch.inference_mode():  # mode is per thread: the worker's is off
            indices = model.tokenizer.encode(window, groups)[0]
    return indices[:, r0 - a : r1 - a]


def tile_indices(model: LqzModel, pixels: np.ndarray, groups: int, effort: int = 0) -> torch.Tensor:
    """Token indices (k, h, w) of a uint8 (H, W, 3) tile: the first ``groups`` groups, after
    ``effort`` steps of latent refinement (:mod:`lqz.nn.refine`; 0: the analysis transform's).

    Computed in row bands by the grid's size, each on one thread: the same tokens whatever
    threads the caller allows (oneDNN's floats change with the thread count)."""
    x = pad_to_stride(_to_tensor(pixels), model.config.stride)
    bands = _bands(x.shape[2] // model.config.stride)
    valid = pixels.shape[:2]
    parts = single_threaded(
        [partial(_band_indices, model, x, valid, groups, effort, rows) for rows in bands]
    )
    return torch.cat(parts, dim=1)


def encode_tile(model: LqzModel, pixels: np.ndarray, groups: int, effort: int = 0) -> bytes:
    """Code a uint8 (H, W, 3) tile with the first ``groups`` token groups, after ``effort``
    steps of latent refinement (:func:`tile_indices`), with the exact prior."""
    return encode_indices(model, tile_indices(model, pixels, groups, effort))


@torch.no_grad()
def encode_indices(model: LqzModel, indices: torch.Tensor, exact: bool = True) -> bytes:
    """Entropy-code token indices (k, h, w) with the prior (``exact``: the exact one, as
    files from format version 3 on; else the float prior of earlier versions)."""
    prior = model.coding_prior(exact)
    k, h, w = indices.shape
    latent = model.tokenizer.latent_of(indices[None])
    encoder = TokenEncoder()
    for group, pass_ in coding_steps(model.config, k):
        where = pass_mask(h, w, pass_)
        tables, logits = _pass_prior(prior, latent, group, pass_)
        encoder.encode(tables, logits, indices[group][where])
    return encoder.finish()


@torch.no_grad()
def decode_indices(
    model: LqzModel, data: bytes, groups: int, height: int, width: int, exact: bool = True
) -> torch.Tensor:
    """Decode token indices (k, h, w) of a latent grid from entropy-coded bytes (``exact``: as
    :func:`encode_indices`)."""
    prior = model.coding_prior(exact)
    latent = torch.zeros(1, model.config.token_channels, height, width)
    indices = torch.zeros(groups, height, width, dtype=torch.int64)
    decoder = TokenDecoder(data)
    for group, pass_ in coding_steps(model.config, groups):
        where = pass_mask(height, width, pass_)
        tables, logits = _pass_prior(prior, latent, group, pass_)
        found = torch.from_numpy(np.asarray(decoder.decode(tables, logits)))
        indices[group][where] = found
        latent[0, group * DIM : (group + 1) * DIM, where] = leech_decode(found).T
    decoder.finish()
    return indices


@torch.no_grad()
def decode_tile(
    model: LqzModel, data: bytes, groups: int, height: int, width: int, exact: bool = True
) -> np.ndarray:
    """Decode a tile of ``height`` x ``width`` pixels to uint8 (H, W, 3) (``exact``: as
    :func:`encode_indices`)."""
    s = model.config.stride
    indices = decode_indices(model, data, groups, -(-height // s), -(-width // s), exact)
    image = model.tokenizer.decode(indices[None])[0, :, :height, :width]
    return (image * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
