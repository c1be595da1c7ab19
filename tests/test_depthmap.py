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
