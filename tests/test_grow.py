"""Widening a trained model's transforms (lqz.train.migrate.grow_channels)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lqz.errors import CheckpointError, OutputError
from lqz.nn.model import LqzModel
from lqz.nn.weights import read_weights, save_weights
from lqz.train.loop import TINY
from lqz.train.migrate import grow_channels, main


def trained_like(seed: int = 1) -> LqzModel:
    """A tiny model whose every weight is non-zero noise (GDN's off-diagonals too): a grown
    copy that ignored any old entry would not compute the same function."""
    torch.manual_seed(seed)
    model = LqzModel(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def outputs(model: LqzModel, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        latent = model.tokenizer.analysis(image)
        return latent, model.tokenizer.synthesize(latent)


def test_a_grown_model_computes_the_same_function() -> None:
    old = trained_like()
    config, state = grow_channels(TINY, old.state_dict(), TINY.channels + 8)
    wide = LqzModel(config).eval()
    wide.load_state_dict(state)
    assert wide.tokenizer.analysis[0].weight.shape[0] == TINY.channels + 8
    image = torch.rand(2, 3, 32, 48)
    for a, b in zip(outputs(old, image), outputs(wide, image), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_new_channels_learn() -> None:
    config, state = grow_channels(TINY, trained_like().state_dict(), TINY.channels + 8)
    wide = LqzModel(config)
    wide.load_state_dict(state)
    image = torch.rand(2, 3, 32, 48)
    latent = wide.tokenizer.analysis(image)
    loss = (wide.tokenizer.synthesize(latent) - image).square().mean()
    loss.backward()
    last = wide.tokenizer.synthesis.layers[-1].weight  # deconv (in, out, k, k)
    assert torch.all(last[TINY.channels :] == 0)  # nothing reads the new channels yet ...
    assert last.grad[TINY.channels :].abs().sum() > 0  # ... but their weights have a gradient


def test_narrowing_is_refused() -> None:
    with pytest.raises(CheckpointError, match="cannot narrow"):
        grow_channels(TINY, LqzModel(TINY).state_dict(), TINY.channels - 1)


def test_the_migrate_tool_writes_wider_weights(tmp_path: Path) -> None:
    source = tmp_path / "m.safetensors"
    save_weights(trained_like().eval(), source)
    out = tmp_path / "wide.safetensors"
    main([str(source), "--out", str(out), "--channels", str(TINY.channels * 2), "--fp32"])
    config, state = read_weights(out)
    assert config.channels == TINY.channels * 2 and config.groups == TINY.groups
    old = read_weights(source)[1]
    for name, tensor in old.items():  # float32 out: the trained block exactly as it was
        block = state[name][tuple(slice(0, n) for n in tensor.shape)]
        assert torch.equal(block, tensor), name
    with pytest.raises(OutputError, match="exists"):
        main([str(source), "--out", str(out), "--channels", str(TINY.channels * 2)])
