"""Encoder-side latent refinement (``lqz.nn.refine``) with the shipped stride-8 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lqz import tiles
from lqz.nn.refine import refine_indices
from lqz.nn.weights import load_model
from lqz.tiles import pad_to_stride

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "models" / "lqz-mse.safetensors"
SAMPLE = ROOT / "docs" / "sample.png"

pytestmark = pytest.mark.skipif(not WEIGHTS.exists(), reason="no shipped weights")


@pytest.fixture(scope="module")
def model():
    return load_model(WEIGHTS)


def crop(height: int, width: int) -> torch.Tensor:
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))[40 : 40 + height, 100 : 100 + width]
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255


def mse(model, indices: torch.Tensor, image: torch.Tensor) -> float:
    h, w = image.shape[-2:]
    with torch.no_grad():
        decoded = model.tokenizer.decode(indices)[..., :h, :w]
    return torch.mean((decoded - image) ** 2).item()


def test_zero_steps_is_the_analysis_transforms_tokens(model) -> None:
    image = crop(48, 64)
    expected = model.tokenizer.encode(image, 3)
    got = refine_indices(model.tokenizer, image, 3, steps=0)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("groups", [1, 4])
def test_steps_lower_the_error_on_a_natural_image(model, groups: int) -> None:
    image = crop(64, 96)
    plain = model.tokenizer.encode(image, groups)
    refined = refine_indices(model.tokenizer, image, groups, steps=3)
    assert refined.shape == plain.shape
    assert not torch.equal(refined, plain)
    assert mse(model, refined, image) < 0.97 * mse(model, plain, image)


def test_padding_does_not_count(model) -> None:
    image = crop(37, 53)  # not a multiple of the stride: replicate-padded
    padded = pad_to_stride(image, model.config.stride)
    plain = model.tokenizer.encode(padded, 2)
    refined = refine_indices(model.tokenizer, padded, 2, steps=3, valid=(37, 53))
    assert mse(model, refined, image) < mse(model, plain, image)


def test_runs_under_inference_mode(model) -> None:
    with torch.inference_mode():  # as in lqz.encode: even the image is an inference tensor
        image = crop(32, 32)
        indices = refine_indices(model.tokenizer, image, 2, steps=2)
    assert indices.shape == (1, 2, 4, 4)
    assert all(p.grad is None for p in model.parameters())


def pixels(height: int, width: int) -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[:height, :width].copy()


@pytest.mark.parametrize("effort", [0, 3])
def test_tokens_do_not_depend_on_the_thread_count(model, effort: int) -> None:
    """A grid of two encoder bands: the same tokens with torch on 1 thread or on 2."""
    rgb = pixels(250, 120)  # 32 latent rows: two bands
    assert len(tiles._bands(-(-250 // model.config.stride))) == 2
    threads = torch.get_num_threads()
    try:
        found = []
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.inference_mode():
                found.append(tiles.tile_indices(model, rgb, 3, effort))
            assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(found[0], found[1])


def test_encoder_bands_see_past_the_analysis_transforms_reach(
    model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Banded plain tokens are the whole grid's: the halo covers what each latent reads; a halo
    of one row does not (so the check can fail)."""
    rgb = pixels(256, 192)
    x = pad_to_stride(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, 8)
    with torch.inference_mode():
        whole = model.tokenizer.encode(x, 6)[0]
        assert torch.equal(tiles.tile_indices(model, rgb, 6), whole)
        monkeypatch.setattr(tiles, "ENCODER_HALO", 1)
        assert not torch.equal(tiles.tile_indices(model, rgb, 6), whole)
