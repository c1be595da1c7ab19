"""The tile coder: pixels <-> token indices <-> entropy-coded bytes of one tile.

Tokens are coded in the steps of :mod:`lqz.nn.schedule`, each with the pmf parameters of the
model's prior (:class:`lqz.nn.contract.CodingPrior`) and the range coder of
:mod:`lqz.entropy.coder`. :mod:`lqz.api` cuts images into tiles; :mod:`lqz.format` packs them.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from .entropy import depthmap
from .entropy.coder import TokenDecoder, TokenEncoder, symbol_bits
from .format import DEPTH_BLOCK
from .leech import DIM
from .leech import decode as leech_decode
from .nn.contract import CodingPrior
from .nn.model import LqzModel
from .nn.refine import refine_indices
from .nn.schedule import coding_steps, pass_mask
from .nn.tokenizer import group_mask
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
    depth: torch.Tensor | None,
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
        part = None if depth is None else depth[None, a:b]
        indices = refine_indices(model.tokenizer, window, groups, effort, seen, part)[0]
    else:
        with torch.inference_mode():  # mode is per thread: the worker's is off
            indices = model.tokenizer.encode(window, groups)[0]
    return indices[:, r0 - a : r1 - a]


def tile_indices(
    model: LqzModel,
    pixels: np.ndarray,
    groups: int,
    effort: int = 0,
    depth: torch.Tensor | None = None,
) -> torch.Tensor:
    """Token indices (k, h, w) of a uint8 (H, W, 3) tile: the first ``groups`` groups, after
    ``effort`` steps of latent refinement (:mod:`lqz.nn.refine`; 0: the analysis transform's),
    for a decoder that keeps ``depth`` (h, w) groups per position (default: all).

    Computed in row bands by the grid's size, each on one thread: the same tokens whatever
    threads the caller allows (oneDNN's floats change with the thread count)."""
    x = pad_to_stride(_to_tensor(pixels), model.config.stride)
    bands = _bands(x.shape[2] // model.config.stride)
    valid = pixels.shape[:2]
    parts = single_threaded(
        [partial(_band_indices, model, x, valid, groups, effort, depth, rows) for rows in bands]
    )
    return torch.cat(parts, dim=1)


def _band_errors(
    model: LqzModel,
    x: torch.Tensor,
    indices: torch.Tensor,
    choices: tuple[int, ...],
    valid: tuple[int, int],
    rows: tuple[int, int],
) -> torch.Tensor:
    """Squared error (C, r1 - r0, w) of every stride x stride block of latent rows ``rows``
    when all positions keep ``choices[c]`` groups, from a window :data:`ENCODER_HALO` rows
    larger; pixels beyond ``valid`` (padding) do not count."""
    s = model.config.stride
    r0, r1 = rows
    a, b = max(0, r0 - ENCODER_HALO), min(indices.shape[1], r1 + ENCODER_HALO)
    window = indices[:, a:b]
    target = x[0, :, r0 * s : r1 * s]
    seen = torch.zeros(target.shape[1:], dtype=torch.float64)
    seen[: max(0, valid[0] - r0 * s), : valid[1]] = 1
    out = []
    with torch.inference_mode():  # mode is per thread: the worker's is off
        for groups in choices:
            depth = torch.full(window.shape[1:], groups)
            shown = model.tokenizer.synthesize(masked_latent(model, window, depth)).clamp(0, 1)
            shown = shown[0, :, (r0 - a) * s : (r1 - a) * s]
            se = ((shown - target) ** 2).sum(0).double() * seen
            out.append(se.view(r1 - r0, s, -1, s).sum((1, 3)))
    return torch.stack(out)


@torch.no_grad()
def token_bits(
    model: LqzModel, indices: torch.Tensor, depth: torch.Tensor | None = None, exact: bool = True
) -> torch.Tensor:
    """-log2 p (k, h, w) of every token (k, h, w) under the coding prior reading what a decoder
    of ``depth`` holds (None: every token; entries the map leaves out are meaningless)."""
    prior = model.coding_prior(exact)
    k, h, w = indices.shape
    latent = masked_latent(model, indices, depth)
    out = torch.zeros(k, h, w, dtype=torch.float64)
    for group, pass_ in coding_steps(model.config, k):
        where = pass_mask(h, w, pass_)
        tables, logits = _pass_prior(prior, latent, group, pass_)
        bits = symbol_bits(tables, logits, indices[group][where])
        out[group][where] = torch.from_numpy(bits)
    return out


def depth_costs(
    model: LqzModel, pixels: np.ndarray, indices: torch.Tensor, choices: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(errors, bits), each (C, h, w) float64, of a uint8 (H, W, 3) tile with token indices
    (k, h, w), k = ``choices[-1]``: per position, its block's squared error (pixels in [0, 1])
    when every position keeps ``choices[c]`` groups, and its first ``choices[c]`` tokens' bits
    under the float prior reading all k groups. Computed in the row bands of
    :func:`tile_indices`, each on one thread: the same figures whatever threads the caller
    allows."""
    x = pad_to_stride(_to_tensor(pixels), model.config.stride)
    bands = _bands(indices.shape[1])
    parts = single_threaded(
        [
            partial(_band_errors, model, x, indices, choices, pixels.shape[:2], rows)
            for rows in bands
        ]
    )
    cumulative = token_bits(model, indices, exact=False).cumsum(0)
    return torch.cat(parts, dim=1), cumulative[torch.tensor(choices) - 1]


def choose_depths(
    errors: torch.Tensor, bits: torch.Tensor, choices: tuple[int, ...], lam: float
) -> torch.Tensor:
    """The depth map (h, w): per block of :data:`~lqz.format.DEPTH_BLOCK` squared positions,
    the count among ``choices`` minimizing the block's ``errors + lam * bits`` (both
    (C, h, w), :func:`depth_costs`).

    Blocks, not positions: a position's cost assumes its neighbours at its own depth, and the
    synthesis mixes neighbours; over a block that holds but at its edges (measured on held-out
    crops: per position the real PSNR falls ~0.7 dB short of the predicted one, per 4 x 4
    block ~0.05 dB, see ``models/MODEL_CARD.md``)."""
    c, h, w = errors.shape
    b = DEPTH_BLOCK
    cost = F.pad(errors + lam * bits, (0, -w % b, 0, -h % b))
    block = cost.view(c, cost.shape[1] // b, b, cost.shape[2] // b, b).sum((2, 4))
    return expand_blocks(torch.tensor(choices)[block.argmin(0)], h, w)


def block_map(depth: torch.Tensor) -> torch.Tensor:
    """A depth map's one value per block (ceil(h / B), ceil(w / B)); ValueError unless it is
    constant within every block."""
    b = DEPTH_BLOCK
    blocks = depth[::b, ::b]
    if not torch.equal(expand_blocks(blocks, *depth.shape), depth):
        raise ValueError(f"a depth map must be constant in blocks of {b} x {b} positions")
    return blocks


def expand_blocks(blocks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Block values (ceil(h / B), ceil(w / B)) -> the depth map (h, w)."""
    b = DEPTH_BLOCK
    return blocks.repeat_interleave(b, 0).repeat_interleave(b, 1)[:height, :width]


def tile_depths(
    model: LqzModel,
    pixels: np.ndarray,
    indices: torch.Tensor,
    choices: tuple[int, ...],
    lam: float,
) -> torch.Tensor:
    """The encoder's depth map (h, w) of a tile at trade-off ``lam`` (squared error per bit):
    :func:`choose_depths` of :func:`depth_costs`, one count per block of
    :data:`~lqz.format.DEPTH_BLOCK` squared positions."""
    errors, bits = depth_costs(model, pixels, indices, choices)
    return choose_depths(errors, bits, choices, lam)


def encode_tile(
    model: LqzModel,
    pixels: np.ndarray,
    groups: int,
    effort: int = 0,
    choices: tuple[int, ...] | None = None,
    lam: float = 0.0,
) -> bytes:
    """Code a uint8 (H, W, 3) tile with the first ``groups`` token groups, after ``effort``
    steps of latent refinement (:func:`tile_indices`), with the exact prior. ``choices``
    (ascending, the last ``groups``): adaptive depth, each position keeping one of them by
    :func:`tile_depths` at ``lam`` (from the plain tokens), the tokens then refined for that
    map, the stream led by it."""
    if choices is None:
        return encode_indices(model, tile_indices(model, pixels, groups, effort))
    plain = tile_indices(model, pixels, groups)
    depth = tile_depths(model, pixels, plain, choices, lam)
    indices = tile_indices(model, pixels, groups, effort, depth) if effort else plain
    return encode_indices(model, indices, depth=depth, choices=choices)


def masked_latent(
    model: LqzModel, indices: torch.Tensor, depth: torch.Tensor | None
) -> torch.Tensor:
    """The codeword latent (1, 24T, h, w) of indices (k, h, w), keeping ``depth`` (h, w) token
    groups per position (None: all k): what a decoder holds."""
    latent = model.tokenizer.latent_of(indices[None])
    if depth is None:
        return latent
    return latent * group_mask(depth[None], model.config.token_groups)


def _step_params(
    prior: CodingPrior,
    latent: torch.Tensor,
    depth: torch.Tensor | None,
    group: int,
    pass_: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(positions (h, w) bool, tables, logits) of one coding step's tokens: the pass's
    positions, without those whose depth stops below the group."""
    _, _, h, w = latent.shape
    where = pass_mask(h, w, pass_)
    tables, logits = _pass_prior(prior, latent, group, pass_)
    if depth is None:
        return where, tables, logits
    keep = depth[where] > group
    return where & (depth > group), tables[keep], logits[keep]


def choice_indices(depth: torch.Tensor, choices: tuple[int, ...]) -> np.ndarray:
    """A depth map (group counts) as indices into ``choices``; ValueError for other counts."""
    table = torch.tensor(choices)
    found = (depth[..., None] == table).nonzero()
    if len(found) != depth.numel():
        raise ValueError(f"depths must be among {choices}")
    return found[:, -1].view(depth.shape).numpy()


@torch.no_grad()
def encode_indices(
    model: LqzModel,
    indices: torch.Tensor,
    exact: bool = True,
    depth: torch.Tensor | None = None,
    choices: tuple[int, ...] | None = None,
) -> bytes:
    """Entropy-code token indices (k, h, w) with the prior (``exact``: the exact one, as
    files from format version 3 on; else the float prior of earlier versions).

    ``depth`` (h, w), constant in blocks of :data:`~lqz.format.DEPTH_BLOCK` squared
    positions, with ``choices`` (ascending group counts, the last k): the stream starts with
    the depth map, one symbol per block (:mod:`lqz.entropy.depthmap`), and codes each
    position's first ``depth`` groups only."""
    prior = model.coding_prior(exact)
    k = indices.shape[0]
    encoder = TokenEncoder()
    if depth is not None:
        if choices is None or choices[-1] != k:
            raise ValueError(f"a depth map needs its choices, the deepest {k}")
        depthmap.encode(encoder, choice_indices(block_map(depth), choices), len(choices))
    latent = masked_latent(model, indices, depth)
    for group, pass_ in coding_steps(model.config, k):
        where, tables, logits = _step_params(prior, latent, depth, group, pass_)
        encoder.encode(tables, logits, indices[group][where])
    return encoder.finish()


def decode_indices(
    model: LqzModel, data: bytes, groups: int, height: int, width: int, exact: bool = True
) -> torch.Tensor:
    """Decode token indices (k, h, w) of a latent grid from entropy-coded bytes (``exact``: as
    :func:`encode_indices`)."""
    return _decode_tokens(model, data, groups, height, width, exact, None)[0]


def decode_adaptive(
    model: LqzModel,
    data: bytes,
    choices: tuple[int, ...],
    height: int,
    width: int,
    exact: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the depth map (h, w) and the token indices (k, h, w), k = ``choices[-1]``, of a
    stream :func:`encode_indices` wrote with a depth map; tokens the map leaves out are 0."""
    indices, depth = _decode_tokens(model, data, choices[-1], height, width, exact, choices)
    assert depth is not None
    return indices, depth


@torch.no_grad()
def _decode_tokens(
    model: LqzModel,
    data: bytes,
    groups: int,
    height: int,
    width: int,
    exact: bool,
    choices: tuple[int, ...] | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    prior = model.coding_prior(exact)
    latent = torch.zeros(1, model.config.token_channels, height, width)
    indices = torch.zeros(groups, height, width, dtype=torch.int64)
    decoder = TokenDecoder(data)
    depth = None
    if choices is not None:
        b = DEPTH_BLOCK
        picked = depthmap.decode(decoder, -(-height // b), -(-width // b), len(choices))
        depth = expand_blocks(torch.tensor(choices)[torch.from_numpy(picked)], height, width)
    for group, pass_ in coding_steps(model.config, groups):
        where, tables, logits = _step_params(prior, latent, depth, group, pass_)
        found = torch.from_numpy(np.asarray(decoder.decode(tables, logits)))
        indices[group][where] = found
        latent[0, group * DIM : (group + 1) * DIM, where] = leech_decode(found).T
    decoder.finish()
    return indices, depth


@torch.no_grad()
def decode_tile(
    model: LqzModel,
    data: bytes,
    groups: int,
    height: int,
    width: int,
    exact: bool = True,
    choices: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Decode a tile of ``height`` x ``width`` pixels to uint8 (H, W, 3) (``exact``: as
    :func:`decode_indices`; ``choices``: the stream has a depth map, as :func:`decode_adaptive`)."""
    s = model.config.stride
    indices, depth = _decode_tokens(
        model, data, groups, -(-height // s), -(-width // s), exact, choices
    )
    latent = masked_latent(model, indices, depth)
    image = model.tokenizer.synthesize(latent).clamp(0, 1)[0, :, :height, :width]
    return (image * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
