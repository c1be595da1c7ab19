"""Residual Λ24 stages: the quantizer against brute force, the tokenizer's sums, the prior's
token groups, growing a one-stage model, training and tile coding of a two-stage model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lqz.leech import DIM, LeechQuantizer
from lqz.leech import decode as leech_decode
from lqz.leech.module import RESIDUAL_GAINS
from lqz.nn.config import ModelConfig
from lqz.nn.model import LqzModel
from lqz.nn.schedule import group_passes
from lqz.nn.tokenizer import channels_last, group_mask
from lqz.objectives import BITS_PER_TOKEN, prior_bits
from lqz.qualities import DEFAULT_WEIGHTS
from lqz.train.loop import TINY
from lqz.train.migrate import default_levels, stage_weights

TWO = dataclasses.replace(TINY, stages=2, levels=default_levels(TINY, 2))
CONCAT = dataclasses.replace(TWO, stage_input="concat")


def units(latent: torch.Tensor) -> np.ndarray:
    """(B, 24G, h, w) -> unit vectors (B, G, h, w, 24), float64."""
    b, c, h, w = latent.shape
    v = latent.double().reshape(b, c // DIM, DIM, h, w).movedim(2, -1).numpy()
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("needed", [None, [6, 3, 1, 4]])
def test_residual_stages_are_the_nearest_codewords_of_each_residual(brute, needed) -> None:
    """Stage k's index is the brute-force nearest codeword to the direction of what stages
    before it left; token groups beyond ``needed`` are zero with index 0."""
    torch.manual_seed(0)
    stages, g = 3, 2
    latent = torch.randn(4, DIM * g, 2, 3)
    need = None if needed is None else torch.tensor(needed)
    codewords, indices = LeechQuantizer(stages)(latent, need)
    assert codewords.shape == (4, DIM * g * stages, 2, 3) and indices.shape == (4, g * stages, 2, 3)
    counts = [g * stages] * 4 if needed is None else needed
    residual = units(latent)
    book = brute.book / np.sqrt(32.0)
    for k in range(stages):
        for slot in range(g):
            t = k * g + slot
            direction = residual[:, slot] / np.linalg.norm(residual[:, slot], axis=-1)[..., None]
            got = indices[:, t].numpy()
            for b in range(4):
                if t < counts[b]:
                    brute.assert_nearest(direction[b], got[b], rtol=1e-6)
                else:
                    assert (got[b] == 0).all()
            keep = t < torch.tensor(counts)
            expected = leech_decode(indices[:, t]).movedim(-1, 1) * keep[:, None, None, None]
            assert torch.equal(codewords[:, t * DIM : (t + 1) * DIM], expected)
            chosen = book[got] * keep.numpy()[:, None, None, None]
            residual[:, slot] = residual[:, slot] - RESIDUAL_GAINS[k] * chosen
    assert RESIDUAL_GAINS[0] == pytest.approx(3.77 / 24**0.5)


def test_stage_one_of_a_residual_quantizer_is_the_one_stage_quantizer() -> None:
    """Indices, codewords and the straight-through gradient of stage 1 are a one-stage
    quantizer's, bit for bit; the later stages carry no gradient."""
    torch.manual_seed(1)
    latent = torch.randn(2, DIM * 3, 3, 2)
    needed = torch.tensor([2, 5])
    one, two = latent.clone().requires_grad_(True), latent.clone().requires_grad_(True)
    c1, i1 = LeechQuantizer(1)(one, needed.clamp(max=3))
    c2, i2 = LeechQuantizer(2)(two, needed)
    assert torch.equal(i2[:, :3], i1) and torch.equal(c2[:, : 3 * DIM], c1)
    weight = torch.randn_like(c1)
    (c1 * weight).sum().backward()
    (c2[:, : 3 * DIM] * weight + c2[:, 3 * DIM :]).sum().backward()
    assert torch.equal(one.grad, two.grad)


def test_residual_error_falls_with_each_stage() -> None:
    torch.manual_seed(2)
    latent = torch.randn(1, DIM * 4, 8, 8)
    codewords, _ = LeechQuantizer(3)(latent)
    u = torch.from_numpy(units(latent)).float()
    parts = codewords.view(1, 3, 4, DIM, 8, 8).movedim(3, -1)
    errors, total = [], torch.zeros_like(u)
    for k in range(3):
        total = total + RESIDUAL_GAINS[k] * parts[:, k]
        errors.append(((u - total) ** 2).sum(-1).mean().item())
    assert errors[0] > 1.9 * errors[1] > 3.8 * errors[2]  # ~3.9 dB per stage


def test_one_stage_tokenizer_is_unchanged() -> None:
    """stages=1: the synthesis input is the masked codewords themselves (the old formula)."""
    torch.manual_seed(3)
    model = LqzModel(TINY)
    x = torch.rand(2, 3, 16, 24)
    used = torch.tensor([1, 3])
    x_hat, codewords, _ = model.tokenizer(x, used)
    expected = model.tokenizer.synthesis(channels_last(codewords * group_mask(used, 3)))
    assert torch.equal(x_hat, expected)
    assert '"stages"' not in TINY.to_json()


def test_two_stage_tokenizer_sums_stages_and_truncates_token_groups() -> None:
    torch.manual_seed(4)
    model = LqzModel(TWO).eval()
    tok = model.tokenizer
    x = torch.rand(2, 3, 16, 24)
    x_hat, codewords, indices = tok(x, torch.tensor([6, 4]))
    assert indices.shape == (2, 6, 2, 3) and codewords.shape == (2, 6 * DIM, 2, 3)
    assert torch.allclose(codewords, tok.latent_of(indices), atol=1e-6)
    assert torch.equal(tok.prior_latent(indices), tok.latent_of(indices))
    assert torch.equal(tok.encode(x, 4), indices[:, :4])
    # synthesis input: per slice c_1 + (a_2 / a_1) c_2, token groups beyond the level zero
    latent = tok.latent_of(indices[:, :4])
    first, second = latent[:, : 3 * DIM], latent[:, 3 * DIM :]
    summed = first + second * (RESIDUAL_GAINS[1] / RESIDUAL_GAINS[0])
    assert torch.allclose(tok.quantizer.reconstruction(latent), summed, atol=1e-6)
    assert not second[:, DIM:].any()
    decoded = tok.decode(indices[:, :4])
    assert torch.allclose(decoded, tok.synthesis(channels_last(summed)).clamp(0, 1), atol=1e-5)
    assert torch.allclose(decoded[1], x_hat[1].clamp(0, 1), atol=1e-5)
    with torch.no_grad():
        full, _, _ = tok(x, torch.tensor([6, 6]))
    assert torch.allclose(tok.decode(indices)[0], full[0].clamp(0, 1), atol=1e-5)


def test_config_json_with_stages() -> None:
    assert ModelConfig.from_json(TWO.to_json()) == TWO
    assert json.loads(TWO.to_json())["stages"] == 2
    legacy = json.loads(TINY.to_json())
    assert "stages" not in legacy and ModelConfig.from_json(json.dumps(legacy)).stages == 1
    assert TWO.token_groups == 6 and TWO.token_channels == 6 * DIM and TWO.latent_channels == 72
    assert TWO.with_levels("1,6").levels == (1, 6)
    with pytest.raises(ValueError):
        TWO.with_levels("1,7")
    assert TWO.levels == (1, 2, 3, 4, 5, 6)
    shipped = dataclasses.replace(TINY, groups=12, levels=(1, 2, 3, 4, 6, 9))
    assert default_levels(shipped, 2) == (1, 2, 3, 4, 6, 9, 12, 15, 18, 24)
    with pytest.raises(ValueError):
        LqzModel(dataclasses.replace(TINY, stages=7))


def check_grown_prior(old: LqzModel, config: ModelConfig, state: dict) -> None:
    """The grown model keeps every transform weight; its prior's outputs for the first
    stage's token groups, on latents whose later stages are zero, are the old prior's."""
    new = LqzModel(config).eval()
    new.load_state_dict(state)
    g = old.config.groups
    for name, value in old.tokenizer.state_dict().items():
        grown = new.tokenizer.state_dict()[name]  # "concat": the first layer reads more channels
        assert torch.equal(grown[:, : value.shape[1]] if grown.dim() == 4 else grown, value)
    assert not new.prior.head_weight[g:].any() and not new.prior.head_bias[g:].any()
    torch.manual_seed(5)
    indices = torch.randint(0, 196560, (2, g, 6, 5))
    before = old.tokenizer.latent_of(indices)
    after = new.tokenizer.latent_of(indices)
    assert after.shape[1] == config.token_channels and not after[:, before.shape[1] :].any()
    exact_old, exact_new = old.coding_prior(), new.coding_prior()
    with torch.no_grad():
        for group in range(g):
            for pass_ in group_passes(old.config, group):
                # float32: equal up to the summation order over the new (zero) channels
                a = old.prior(before, group, pass_)
                b = new.prior(after, group, pass_)
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
                # the exact prior (the coder's): bit for bit
                a = exact_old.pass_params(before[:1], group, pass_)
                b = exact_new.pass_params(after[:1], group, pass_)
                assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        # a later stage's zero head: the uniform pmf, log2 196,560 bits per token
        full = torch.cat([indices, indices], dim=1)[:, : config.token_groups]
        bits = prior_bits(new.prior, new.tokenizer.latent_of(full), full, torch.tensor([g, g]), 0)
        torch.testing.assert_close(bits, torch.full_like(bits, BITS_PER_TOKEN))


def test_grown_tiny_prior_keeps_the_first_stage() -> None:
    torch.manual_seed(6)
    old = LqzModel(TINY).eval()
    with torch.no_grad():
        for p in old.prior.parameters():
            p.normal_(std=0.1)
    config, state = stage_weights(TINY, old.state_dict(), 2)
    assert config == TWO
    check_grown_prior(old, config, state)
    # stage-2 token groups start from their slice's embedding rows; the ODD row stays last
    embed = state["prior.embed.weight"]
    assert torch.equal(embed[6:12], embed[0:6]) and torch.equal(embed[12], embed[-1])
    assert torch.equal(embed[12], old.prior.embed.weight[6])


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no shipped weights")
def test_shipped_model_grows_to_two_stages(tmp_path) -> None:
    """``--stages 2`` of a new run: the shipped weights grown into the run folder."""
    from lqz.nn.weights import load_model, read_weights
    from lqz.train.__main__ import with_stages

    run = tmp_path / "run"
    path = with_stages(run, DEFAULT_WEIGHTS, 2, None)
    assert path == run / "init-stages2-sum.safetensors"
    config, state = read_weights(path)
    assert config.stages == 2 and config.levels == (1, 2, 3, 4, 6, 9, 12, 15, 18, 24)
    check_grown_prior(load_model(DEFAULT_WEIGHTS), config, state)
    assert with_stages(run, path, 2, None) == path  # already two stages
    custom = with_stages(tmp_path / "other", DEFAULT_WEIGHTS, 2, "1,12,24")
    assert read_weights(custom)[0].levels == (1, 12, 24)


def test_concat_stage_input_grows_into_the_one_stage_model() -> None:
    """stage_input="concat": the synthesis reads every token group's codeword; grown from a
    one-stage model (new first-layer weights zero) it decodes as that model at every level."""
    torch.manual_seed(8)
    old = LqzModel(TINY).eval()
    config, state = stage_weights(TINY, old.state_dict(), 2, stage_input="concat")
    assert config == CONCAT
    new = LqzModel(config).eval()
    new.load_state_dict(state)
    check_grown_prior(old, config, state)
    x = torch.rand(2, 3, 16, 24)
    indices = new.tokenizer.encode(x, 6)
    assert torch.equal(indices[:, :3], old.tokenizer.encode(x, 3))
    for k in (1, 3, 5):
        expected = old.tokenizer.decode(indices[:, : min(k, 3)])
        torch.testing.assert_close(new.tokenizer.decode(indices[:, :k]), expected)
    weight = new.tokenizer.synthesis.layers[0].weight
    assert weight.shape[1] == 6 * DIM and not weight[:, 3 * DIM :].any()
    assert ModelConfig.from_json(CONCAT.to_json()) == CONCAT
    with pytest.raises(ValueError):
        dataclasses.replace(TWO, stage_input="product")


@pytest.mark.parametrize("config", [TWO, CONCAT], ids=["sum", "concat"])
def test_two_stage_tiny_model_trains(tmp_path, learnable_images, config: ModelConfig) -> None:
    """The training loop on a two-stage model: loss and bits fall, validation per level."""

    from lqz.train.loop import TrainOptions, train

    data = learnable_images
    run = tmp_path / "run"
    opts = TrainOptions(
        data=data, run_dir=run, config=config, batch=4, crop=32, lr=3e-3, steps=60,
        log_every=10, holdout=2, threads=1, device="cpu", checkpoint_seconds=1e9,
        validate_seconds=1e9,
    )  # fmt: skip
    session = train(opts)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    bits = [r["bits_per_token"] for r in records if "bits_per_token" in r]
    assert losses[-1] < 0.7 * losses[0]
    assert bits[-1] < bits[0]
    figures = records[-1]["validation"]
    assert {f"bpp_q{q}" for q in range(1, 7)} <= set(figures)
    assert figures["bpp_q6"] > figures["bpp_q3"] > figures["bpp_q1"]
    assert session.model.tokenizer.quantizer.stages == 2


@pytest.mark.parametrize("config", [TWO, CONCAT], ids=["sum", "concat"])
def test_two_stage_tiles_round_trip(config: ModelConfig) -> None:
    """Tokens and pixels of a two-stage model through the tile coder, plain and refined."""
    from lqz.tiles import decode_indices, decode_tile, encode_indices, encode_tile, tile_indices

    torch.manual_seed(7)
    model = LqzModel(config).eval()
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(21, 30, 3), dtype=np.uint8)
    for effort in (0, 1):
        indices = tile_indices(model, pixels, 5, effort)
        assert indices.shape == (5, 3, 4)
        data = encode_indices(model, indices)
        assert torch.equal(decode_indices(model, data, 5, 3, 4), indices)
        tile = encode_tile(model, pixels, 5, effort)
        assert tile == data
        image = decode_tile(model, tile, 5, 21, 30)
        expected = model.tokenizer.decode(indices[None])[0, :, :21, :30]
        assert np.array_equal(image, (expected * 255).round().to(torch.uint8).permute(1, 2, 0))
