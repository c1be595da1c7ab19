"""The coding path's prior (pass positions only, row bands on two threads) against the
training path's ``Prior.forward``, and bit-exact round trips through it on small grids."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lqz import tiles
from lqz.leech import DIM
from lqz.leech import decode as leech_decode
from lqz.nn.config import ModelConfig
from lqz.nn.contract import CodingPrior
from lqz.nn.model import LqzModel
from lqz.nn.schedule import Pass, coding_steps, context_mask, pass_mask

TINY = ModelConfig(channels=8, groups=3, kernel=3, prior_channels=8, mixtures=2, levels=(1, 2, 3))
SPLIT = dataclasses.replace(TINY, split_first_group=True)

SHAPES = [(1, 1), (1, 7), (6, 1), (2, 3), (3, 2), (5, 8), (7, 9), (16, 5), (17, 4)]


def tiny_model(seed: int = 0, config: ModelConfig = TINY) -> LqzModel:
    torch.manual_seed(seed)
    return LqzModel(config).eval()


def random_latent(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token indices (G, h, w) and their codeword latent (1, 24G, h, w)."""
    gen = torch.Generator().manual_seed(seed)
    indices = torch.randint(0, 196560, (TINY.groups, h, w), generator=gen)
    latent = leech_decode(indices).movedim(-1, 1).reshape(1, TINY.latent_channels, h, w)
    return indices, latent


def loud_model(config: ModelConfig = TINY) -> LqzModel:
    """A tiny model whose prior outputs are O(1), so a tolerance means something."""
    model = tiny_model(config=config)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def reference(model: LqzModel, latent: torch.Tensor, group: int, pass_: int):
    """``Prior.forward`` on the whole grid, then the pass's positions in row-major order."""
    h, w = latent.shape[2:]
    tables, logits = model.prior(latent, group, pass_)
    where = pass_mask(h, w, pass_)
    return tables[0][where], logits[0][where]


@pytest.mark.parametrize("config", [TINY, SPLIT], ids=["checkerboard", "split"])
@pytest.mark.parametrize("shape", SHAPES)
@torch.no_grad()
def test_pass_params_match_forward(shape: tuple[int, int], config: ModelConfig) -> None:
    model = loud_model(config)
    h, w = shape
    _, latent = random_latent(h, w, seed=h * 100 + w)
    for group, pass_ in coding_steps(config, config.groups):
        want_tables, want_logits = reference(model, latent, group, pass_)
        assert want_tables.numel() == 0 or want_tables.abs().max() > 0.1
        tables, logits = model.prior.pass_params(latent, group, pass_)
        torch.testing.assert_close(tables, want_tables, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logits, want_logits, atol=1e-5, rtol=1e-5)
        for split in sorted({1, h // 2, h - 1} - {0, h}):  # two bands stitch to the whole
            top = model.prior.pass_params(latent, group, pass_, (0, split))
            bottom = model.prior.pass_params(latent, group, pass_, (split, h))
            torch.testing.assert_close(torch.cat([top[0], bottom[0]]), want_tables)
            torch.testing.assert_close(torch.cat([top[1], bottom[1]]), want_logits)
        threaded = tiles._pass_prior(model.prior, latent, group, pass_)
        torch.testing.assert_close(threaded[0], want_tables, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(threaded[1], want_logits, atol=1e-5, rtol=1e-5)


def test_bands_cover_the_grid() -> None:
    for h in range(1, 80):
        bands = tiles._bands(h)
        assert bands[0][0] == 0 and bands[-1][1] == h
        assert all(a[1] == b[0] for a, b in zip(bands, bands[1:], strict=False))
        assert all(r0 < r1 for r0, r1 in bands)
    assert len(tiles._bands(64)) == 2


@pytest.mark.parametrize("config", [TINY, SPLIT], ids=["checkerboard", "split"])
@pytest.mark.parametrize("band_rows", [tiles.BAND_MIN_ROWS, 1])
@pytest.mark.parametrize("shape", SHAPES)
@torch.no_grad()
def test_round_trip_is_bit_exact(
    shape: tuple[int, int], band_rows: int, config: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encode with 2 torch threads, decode with 1 (and the reverse): the same indices."""
    monkeypatch.setattr(tiles, "BAND_MIN_ROWS", band_rows)
    model = tiny_model(config=config)
    h, w = shape
    indices, _ = random_latent(h, w, seed=h * 10 + w)
    threads = torch.get_num_threads()
    try:
        for enc, dec in ((2, 1), (1, 2)):
            torch.set_num_threads(enc)
            data = tiles.encode_indices(model, indices)
            torch.set_num_threads(dec)
            decoded = tiles.decode_indices(model, data, TINY.groups, h, w)
            assert torch.equal(decoded, indices)
            assert torch.get_num_threads() == dec
            partial = tiles.decode_indices(model, tiles.encode_indices(model, indices[:1]), 1, h, w)
            assert torch.equal(partial, indices[:1])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "config,group,pass_",
    [
        (TINY, 1, Pass.ANCHORS),
        (TINY, 1, Pass.REST),
        (SPLIT, 0, Pass.EVEN),
        (SPLIT, 0, Pass.ODD),
        (SPLIT, 0, Pass.REST),
        (SPLIT, 1, Pass.REST),
    ],
)
@torch.no_grad()
def test_only_decoded_tokens_are_read(config: ModelConfig, group: int, pass_: Pass) -> None:
    """Garbage in later groups and in the group's tokens not yet decoded changes nothing."""
    model = loud_model(config)
    h, w = 9, 6
    _, latent = random_latent(h, w, seed=5)
    noisy = latent + torch.randn(latent.shape) * 5
    noisy[0, : group * DIM] = latent[0, : group * DIM]
    seen = context_mask(h, w, pass_).expand(DIM, h, w)
    current = slice(group * DIM, (group + 1) * DIM)
    noisy[0, current][seen] = latent[0, current][seen]
    for rows in ((0, h), (0, 4), (4, h), (3, 8)):
        clean = model.prior.pass_params(latent, group, pass_, rows)
        dirty = model.prior.pass_params(noisy, group, pass_, rows)
        assert torch.equal(clean[0], dirty[0]) and torch.equal(clean[1], dirty[1])
    if seen.any():  # and the group's decoded tokens do matter
        noisy[0, current] = latent[0, current] + torch.randn(DIM, h, w) * 5
        assert not torch.equal(
            model.prior.pass_params(noisy, group, pass_)[0],
            model.prior.pass_params(latent, group, pass_)[0],
        )


def test_the_prior_implements_the_coding_contract() -> None:
    prior = tiny_model().prior
    assert isinstance(prior, CodingPrior) and isinstance(prior.halo, int) and prior.halo >= 0
    assert not isinstance(torch.nn.Linear(2, 2), CodingPrior)


@pytest.mark.parametrize("config", [TINY, SPLIT], ids=["checkerboard", "split"])
@torch.no_grad()
def test_a_band_reads_only_rows_within_the_halo(config: ModelConfig) -> None:
    """Garbage more than ``halo`` rows away from a band changes nothing; at ``halo`` rows it
    does (for the steps that read any context): the halo is what the bands need."""
    model = loud_model(config)
    halo = model.prior.halo
    h, w, (r0, r1) = 14, 5, (5, 9)
    _, latent = random_latent(h, w, seed=11)
    for group, pass_ in coding_steps(config, config.groups):
        clean = model.prior.pass_params(latent, group, pass_, (r0, r1))
        far = latent.clone()
        far[..., : r0 - halo, :] = torch.randn(far[..., : r0 - halo, :].shape) * 5
        far[..., r1 + halo :, :] = torch.randn(far[..., r1 + halo :, :].shape) * 5
        dirty = model.prior.pass_params(far, group, pass_, (r0, r1))
        assert torch.equal(clean[0], dirty[0]) and torch.equal(clean[1], dirty[1])
        if group > 0:  # every step from group 1 on reads group 0
            near = latent.clone()
            near[..., r0 - halo, :] += torch.randn(near[..., r0 - halo, :].shape) * 5
            assert not torch.equal(
                model.prior.pass_params(near, group, pass_, (r0, r1))[0], clean[0]
            )


@torch.no_grad()
def test_worker_thread_and_caller_thread_give_the_same_floats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two bands on two threads (caller allows 2) == both on the caller's thread (allows 1)."""
    monkeypatch.setattr(tiles, "BAND_MIN_ROWS", 2)
    model = loud_model(SPLIT)
    _, latent = random_latent(7, 5, seed=9)
    threads = torch.get_num_threads()
    try:
        for group, pass_ in coding_steps(SPLIT, SPLIT.groups):
            torch.set_num_threads(2)
            parallel = tiles._pass_prior(model.prior, latent, group, pass_)
            torch.set_num_threads(1)
            serial = tiles._pass_prior(model.prior, latent, group, pass_)
            assert torch.equal(parallel[0], serial[0])
            assert torch.equal(parallel[1], serial[1])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad, torch.enable_grad])
def test_worker_thread_under_any_grad_mode(mode) -> None:
    """Grad mode does not carry over to the worker thread; inference tensors must still work."""
    model = tiny_model()
    indices, _ = random_latent(17, 4, seed=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with mode():
            data = tiles.encode_indices(model, indices)
            assert torch.equal(tiles.decode_indices(model, data, TINY.groups, 17, 4), indices)
    finally:
        torch.set_num_threads(threads)
