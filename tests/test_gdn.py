"""lqz's own GDN against CompressAI's: same state dict, outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from lqz.nn.gdn import GDN

compressai_layers = pytest.importorskip("compressai.layers")

CHANNELS = 6


def _pair(inverse: bool, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Ours and CompressAI's with the same random parameters, some below the lower bounds."""
    ours = GDN(CHANNELS, inverse=inverse)
    theirs = compressai_layers.GDN(CHANNELS, inverse=inverse)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ours.beta.copy_(torch.rand(CHANNELS, generator=generator) * 1.5 - 0.2)
        ours.gamma.copy_(torch.rand(CHANNELS, CHANNELS, generator=generator) * 0.6 - 0.1)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def test_state_dict_keys_shapes_and_buffers_match() -> None:
    for inverse in (False, True):
        ours = GDN(CHANNELS, inverse=inverse).state_dict()
        theirs = compressai_layers.GDN(CHANNELS, inverse=inverse).state_dict()
        assert list(ours) == list(theirs)
        for key, value in theirs.items():
            assert ours[key].shape == value.shape, key
            assert ours[key].dtype == value.dtype, key
            assert torch.equal(ours[key], value), key  # the initialisation too


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outputs_and_gradients_match(inverse: bool, seed: int) -> None:
    ours, theirs = _pair(inverse, seed)
    generator = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(2, CHANNELS, 5, 7, generator=generator)
    weight = torch.randn(2, CHANNELS, 5, 7, generator=generator)  # gradients of both signs
    results = []
    for module in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        out = module(xi)
        (out * weight).sum().backward()
        results.append((out.detach(), xi.grad, module.beta.grad, module.gamma.grad))
    for mine, reference in zip(*results, strict=True):
        assert torch.equal(mine, reference)
    assert (ours.beta.grad != 0).any() and (ours.gamma.grad != 0).any()


def test_loads_compressai_state_dict_in_eval_and_inference_mode() -> None:
    ours, theirs = _pair(True, 3)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, CHANNELS, 4, 4)
    with torch.inference_mode():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))
