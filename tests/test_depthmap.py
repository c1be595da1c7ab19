"""Depth-map coding (lqz.entropy.depthmap): round trips beside tokens, length, bad streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lqz.entropy import CorruptStream, TokenDecoder, TokenEncoder, depthmap


def blocky_map(rng: np.random.Generator, h: int, w: int, k: int) -> np.ndarray:
    coarse = rng.integers(0, k, size=(-(-h // 4), -(-w // 4)))
    return np.kron(coarse, np.ones((4, 4), dtype=np.int64))[:h, :w]


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 24)])
@pytest.mark.parametrize("k", [1, 2, 6])
def test_map_round_trips_before_tokens(shape: tuple[int, int], k: int) -> None:
    rng = np.random.default_rng(k)
    choice = blocky_map(rng, *shape, k)
    tables = torch.randn(5, 2, 24, 9, dtype=torch.float64)
    logits = torch.zeros(5, 2, dtype=torch.float64)
    tokens = rng.integers(0, 196_560, 5)
    encoder = TokenEncoder()
    depthmap.encode(encoder, choice, k)
    encoder.encode(tables, logits, tokens)
    data = encoder.finish()
    decoder = TokenDecoder(data)
    assert np.array_equal(depthmap.decode(decoder, *shape, k), choice)
    assert np.array_equal(decoder.decode(tables, logits), tokens)
    decoder.finish()


def test_code_length_is_what_the_stream_costs() -> None:
    rng = np.random.default_rng(3)
    choice = blocky_map(rng, 64, 96, 6)
    encoder = TokenEncoder()
    depthmap.encode(encoder, choice, 6)
    bits = 8 * len(encoder.finish())
    ideal = depthmap.code_length(choice, 6)
    assert ideal < bits <= ideal + 16 + 64  # the check value and the final words
    noise = rng.integers(0, 6, size=(64, 96))
    assert depthmap.code_length(noise, 6) > 0.95 * 64 * 96 * np.log2(6) > 3 * ideal


def test_probabilities_are_exact_count_ratios() -> None:
    """Row r: (2 * count + 1) / sum over the context's seen symbols (doubled counts)."""
    choice = np.array([[0, 0, 1], [0, 2, 1]])
    rows = depthmap.probabilities(choice, 3)
    # (0, 1): left 0, above border; nothing seen in that context yet: uniform
    assert rows[1].tolist() == [1 / 3] * 3
    # (0, 2): context (left 0, above border) has seen one 0: counts 3, 1, 1
    assert rows[2].tolist() == [3 / 5, 1 / 5, 1 / 5]
    assert np.allclose(rows.sum(1), 1)


def test_bad_choices_and_bad_streams() -> None:
    with pytest.raises(ValueError, match="0..2"):
        depthmap.encode(TokenEncoder(), np.array([[0, 3]]), 3)
    rng = np.random.default_rng(4)
    choice = blocky_map(rng, 16, 16, 4)
    encoder = TokenEncoder()
    depthmap.encode(encoder, choice, 4)
    data = encoder.finish()
    for bad in (data[: len(data) // 2], data[:1] + bytes([data[1] ^ 0x40]) + data[2:]):
        with pytest.raises(CorruptStream):
            decoder = TokenDecoder(bad)
            decoded = depthmap.decode(decoder, 16, 16, 4)
            decoder.finish()
            assert not np.array_equal(decoded, choice)  # pragma: no cover


def tiny_model(seed: int):
    from lqz.nn.model import LqzModel
    from lqz.train.loop import TINY

    torch.manual_seed(seed)
    model = LqzModel(TINY).eval()
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_tile_round_trip_with_a_depth_map() -> None:
    """The decoder gets the map and every token it keeps; pixels are the masked latent's."""
    from lqz import tiles

    model = tiny_model(1)
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(45, 70, 3), dtype=np.uint8)
    indices = tiles.tile_indices(model, pixels, 3)
    h, w = indices.shape[1:]  # 6 x 9: blocks of 4 x 4, cut at the edges
    blocks = torch.from_numpy(rng.choice([1, 2, 3], size=(2, 3)))
    depth = tiles.expand_blocks(blocks, h, w)
    assert depth[5, 8] == blocks[1, 2] and depth[3, 4] == blocks[0, 1]
    data = tiles.encode_indices(model, indices, depth=depth, choices=(1, 2, 3))
    decoded, got = tiles.decode_adaptive(model, data, (1, 2, 3), *indices.shape[1:])
    assert torch.equal(got, depth)
    kept = torch.arange(3)[:, None, None] < depth[None]
    assert torch.equal(decoded[kept], indices[kept]) and not decoded[~kept].any()
    image = tiles.decode_tile(model, data, 3, 45, 70, choices=(1, 2, 3))
    latent = tiles.masked_latent(model, indices, depth)
    expected = model.tokenizer.synthesize(latent).clamp(0, 1)[0, :, :45, :70]
    assert np.array_equal(image, (expected * 255).round().byte().permute(1, 2, 0).numpy())
    # fewer tokens, fewer bytes; a wrong choice set does not decode
    assert len(data) < len(tiles.encode_indices(model, indices))
    with pytest.raises(CorruptStream):
        tiles.decode_adaptive(model, data, (2, 3), *indices.shape[1:])
    with pytest.raises(ValueError, match="among"):
        tiles.encode_indices(model, indices, depth=depth * 0 + 4, choices=(1, 2, 3))
    ragged = depth.clone()
    ragged[0, 1] = 4 - ragged[0, 0]
    with pytest.raises(ValueError, match="blocks"):
        tiles.encode_indices(model, indices, depth=ragged, choices=(1, 2, 3))


def test_depth_choice_against_brute_force_costs() -> None:
    """tile_depths is, per 4 x 4 block, the argmin of its block errors + lam * bits, each
    computed independently."""
    from lqz import tiles
    from lqz.format import DEPTH_BLOCK

    model = tiny_model(2)
    rng = np.random.default_rng(6)
    pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)  # 5 x 6 latent positions
    choices = (1, 2, 3)
    indices = tiles.tile_indices(model, pixels, 3)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    bits = tiles.token_bits(model, indices, exact=False)
    errors = []
    for c in choices:
        shown = model.tokenizer.decode(indices[None, :c])
        se = ((shown - x) ** 2).sum(1)[0].double()
        errors.append(se.view(5, 8, 6, 8).sum((1, 3)))
    b = DEPTH_BLOCK
    for lam in (0.0, 0.01, 1e6):
        depth = tiles.tile_depths(model, pixels, indices, choices, lam)
        for by in range(0, 5, b):
            for bx in range(0, 6, b):
                area = (slice(by, by + b), slice(bx, bx + b))
                assert depth[area].unique().numel() == 1
                costs = [
                    float(errors[i][area].sum()) + lam * float(bits[:c][(slice(None), *area)].sum())
                    for i, c in enumerate(choices)
                ]
                best = min(costs)
                picked = choices.index(int(depth[by, bx]))
                assert costs[picked] <= best + 1e-6 * (1 + best)
    assert (tiles.tile_depths(model, pixels, indices, choices, 1e6) == 1).all()


def test_depth_choice_does_not_depend_on_threads() -> None:
    from lqz import tiles

    model = tiny_model(3)
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(150, 40, 3), dtype=np.uint8)  # two bands
    indices = tiles.tile_indices(model, pixels, 3)
    threads = torch.get_num_threads()
    maps = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            maps.append(tiles.tile_depths(model, pixels, indices, (1, 2, 3), 0.002))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(maps[0], maps[1])
    assert maps[0].unique().numel() > 1


@pytest.fixture
def adaptive_ladder(tmp_path, monkeypatch):
    """A ladder of the main shipped model: level 3 as one depth, then with adaptive depth at
    two trade-offs (levels 2 and 3)."""
    import json

    from lqz import api
    from lqz.qualities import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.exists():
        pytest.skip("needs the shipped model")
    ladder = tmp_path / "ladder.json"
    w = str(DEFAULT_WEIGHTS)
    spec = [
        {"weights": w, "level": 1},
        {"weights": w, "level": 3},
        {"weights": w, "level": 2, "lambda": 1e9},
        {"weights": w, "level": 3, "lambda": 0.01},
    ]
    ladder.write_text(json.dumps({"qualities": spec}))
    monkeypatch.setenv("LQZ_WEIGHTS", str(ladder))
    api.clear_cache()
    yield ladder
    api.clear_cache()


def test_adaptive_quality_writes_depth_maps(adaptive_ladder) -> None:
    from lqz import api
    from lqz import format as fmt

    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[0:96, 0:160]
    picture = np.stack([xx, yy, (xx + yy) // 2], -1)  # smooth
    picture[:, 96:] = rng.integers(0, 256, size=(96, 64, 3))  # and busy
    picture = picture.astype(np.uint8)
    files = {q: api.encode(picture, quality=q, effort=0) for q in (1, 2, 3, 4)}
    headers = {q: fmt.read_header(d) for q, d in files.items()}
    assert [headers[q].version for q in (1, 2, 3, 4)] == [3, 3, 4, 4]
    assert [headers[q].depth_maps for q in (1, 2, 3, 4)] == [False, False, True, True]
    assert [api.quality_of(h) for h in headers.values()] == [1, 2, 3, 4]
    decoded = {q: np.asarray(api.decode(d)) for q, d in files.items()}
    # a trade-off no token is worth keeps one group everywhere: level 1's tokens and pixels
    assert np.array_equal(decoded[3], decoded[1])
    assert len(files[1]) <= len(files[3]) < len(files[1]) + 8  # the map costs a few bits
    # a real trade-off lands between one group and three everywhere
    assert len(files[1]) < len(files[4]) < len(files[2])

    def error(q: int) -> float:
        return float(((decoded[q].astype(float) - picture) ** 2).mean())

    assert error(2) < error(4) < error(1)


def test_info_names_depth_maps(adaptive_ladder) -> None:
    from lqz import api
    from lqz.cli.info import describe, render

    picture = np.random.default_rng(9).integers(0, 256, size=(24, 40, 3), dtype=np.uint8)
    for quality, flagged in ((2, False), (4, True)):
        facts = describe(api.encode(picture, quality=quality, effort=0))
        assert facts["depth_maps"] is flagged and facts["quality"] == quality
        assert ("adaptive depth" in render(facts, "x.lqz")) is flagged
        assert facts["version"] == (4 if flagged else 3)


def test_refined_adaptive_tile_round_trips_and_is_no_worse() -> None:
    """Adaptive depth with refinement: tokens refined for the chosen map decode, and the
    refined tile is at least as close to the picture as the plain one under the same map."""
    from lqz import tiles

    model = tiny_model(4)
    rng = np.random.default_rng(10)
    pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    choices = (1, 2, 3)
    plain = tiles.tile_indices(model, pixels, 3)
    depth = tiles.tile_depths(model, pixels, plain, choices, 0.001)
    refined = tiles.tile_indices(model, pixels, 3, 2, depth)
    data = tiles.encode_tile(model, pixels, 3, 2, choices, 0.001)
    assert data == tiles.encode_indices(model, refined, depth=depth, choices=choices)
    decoded, got = tiles.decode_adaptive(model, data, choices, 8, 8)
    assert torch.equal(got, depth)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255

    @torch.no_grad()
    def error(indices: torch.Tensor) -> float:
        latent = tiles.masked_latent(model, indices, depth)
        return float(((model.tokenizer.synthesize(latent).clamp(0, 1) - x) ** 2).mean())

    assert error(decoded) <= error(plain)
