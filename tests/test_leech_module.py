"""``lqz.leech.LeechQuantizer``: per-group normalization, exact quantization, straight-through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lqz.leech as leech
from lqz.leech import LeechQuantizer

SIZE = 196_560


def groups_of(latent: torch.Tensor) -> torch.Tensor:
    """(B, 24G, H, W) -> (B, G, H, W, 24): channels 24g .. 24g+23 form group g."""
    b, c, h, w = latent.shape
    out = torch.empty(b, c // 24, h, w, 24, dtype=latent.dtype)
    for g in range(c // 24):
        for d in range(24):
            out[:, g, :, :, d] = latent[:, 24 * g + d]
    return out


def normalize_groups(latent: torch.Tensor) -> torch.Tensor:
    """Differentiable reference: each 24-channel group divided by its L2 norm."""
    b, c, h, w = latent.shape
    parts = []
    for g in range(c // 24):
        part = latent[:, 24 * g : 24 * (g + 1)]
        parts.append(part / part.norm(dim=1, keepdim=True))
    return torch.cat(parts, dim=1)


@pytest.fixture
def latent() -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(2, 96, 5, 3, generator=gen) * 4.0 + 0.5


def test_shapes_dtypes_and_codewords(latent) -> None:
    codewords, indices = LeechQuantizer()(latent)
    assert codewords.shape == latent.shape and codewords.dtype == latent.dtype
    assert indices.shape == (2, 4, 5, 3) and indices.dtype == torch.int64
    assert ((indices >= 0) & (indices < SIZE)).all()
    cw = groups_of(codewords.detach())
    torch.testing.assert_close(cw.norm(dim=-1), torch.ones(indices.shape), rtol=0, atol=1e-6)
    assert torch.equal(cw, leech.codebook()[indices])


def test_indices_are_nearest_by_brute_force(latent, brute) -> None:
    _, indices = LeechQuantizer()(latent)
    x = groups_of(latent).double().numpy().reshape(-1, 24)
    # Normalization happens in float32: allow for its rounding in the score comparison.
    brute.assert_nearest(x, indices.numpy().reshape(-1), rtol=1e-6)
    np.testing.assert_array_equal(indices.numpy().reshape(-1), leech.quantize(x).numpy())


def test_channel_layout_with_known_codewords() -> None:
    """Plant codeword k at (b, g, h, w), scaled by a random positive factor: the module must
    return exactly k there, and that codeword's unit vector in channels 24g..24g+23."""
    gen = torch.Generator().manual_seed(11)
    b, g, h, w = 2, 3, 4, 5
    planted = torch.randint(0, SIZE, (b, g, h, w), generator=gen)
    scale = torch.rand(b, g, h, w, 1, generator=gen) * 10 + 0.1
    vectors = torch.from_numpy(leech.integer_codebook()[planted.numpy()].astype(np.float32))
    vectors = vectors * scale
    latent = torch.empty(b, 24 * g, h, w)
    for gi in range(g):
        for d in range(24):
            latent[:, 24 * gi + d] = vectors[:, gi, :, :, d]
    codewords, indices = LeechQuantizer()(latent)
    assert torch.equal(indices, planted)
    expected = leech.codebook()[planted]
    for gi in range(g):
        for d in range(24):
            assert torch.equal(codewords[:, 24 * gi + d], expected[:, gi, :, :, d])


def test_straight_through_gradient(latent) -> None:
    x = latent.clone().requires_grad_(True)
    codewords, _ = LeechQuantizer()(x)
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    (got,) = torch.autograd.grad(codewords, x, upstream)

    y = latent.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(normalize_groups(y), y, upstream)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert got.abs().max() > 0

    # Independent property of normalization: per group the gradient is orthogonal to x.
    gg, xg = groups_of(got), groups_of(latent)
    cosine = (gg * xg).sum(-1) / (gg.norm(dim=-1) * xg.norm(dim=-1))
    assert cosine.abs().max() < 1e-5


def test_straight_through_with_a_nonlinear_loss(latent) -> None:
    """MSE to a target: the upstream gradient is evaluated at the hard codewords and then passed
    through the normalization only."""
    target = torch.randn(latent.shape, generator=torch.Generator().manual_seed(9))
    x = latent.clone().requires_grad_(True)
    codewords, _ = LeechQuantizer()(x)
    loss = ((codewords - target) ** 2).mean()
    loss.backward()

    upstream = 2 * (codewords.detach() - target) / latent.numel()
    y = latent.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(normalize_groups(y), y, upstream)
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-8)


def test_zero_group_is_finite() -> None:
    latent = torch.randn(1, 48, 2, 2, generator=torch.Generator().manual_seed(1))
    latent[0, 24:, 1, 0] = 0.0
    x = latent.clone().requires_grad_(True)
    codewords, indices = LeechQuantizer()(x)
    assert indices[0, 1, 1, 0].item() == leech.quantize(np.zeros(24)).item()
    assert torch.isfinite(codewords).all()
    codewords.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_scale_invariance_and_dtypes(latent) -> None:
    module = LeechQuantizer()
    _, base = module(latent)
    _, scaled = module(latent * 1024.0)  # a power of two: exact
    assert torch.equal(base, scaled)
    cw64, idx64 = module(latent.double())
    assert cw64.dtype == torch.float64
    assert torch.equal(idx64, base)  # no near-ties in this latent
    cl = latent.contiguous(memory_format=torch.channels_last)
    cw_cl, idx_cl = module(cl)
    assert torch.equal(idx_cl, base)
    assert torch.equal(cw_cl, module(latent)[0])


def test_no_parameters_and_mode_independent(latent) -> None:
    module = LeechQuantizer()
    assert list(module.parameters()) == []
    train = module.train()(latent)
    evaluation = module.eval()(latent)
    assert torch.equal(train[0], evaluation[0]) and torch.equal(train[1], evaluation[1])
    with torch.no_grad():
        assert torch.equal(module(latent)[1], train[1])


@pytest.mark.parametrize("channels", [23, 25, 36, 100])
def test_channels_must_be_a_multiple_of_24(channels) -> None:
    with pytest.raises(ValueError):
        LeechQuantizer()(torch.randn(1, channels, 2, 2))


def test_single_group_single_pixel() -> None:
    latent = torch.randn(1, 24, 1, 1, generator=torch.Generator().manual_seed(2))
    codewords, indices = LeechQuantizer()(latent)
    assert indices.shape == (1, 1, 1, 1)
    assert indices.item() == leech.quantize(latent[0, :, 0, 0]).item()
    assert torch.equal(codewords[0, :, 0, 0], leech.codebook()[indices.item()])


def test_needed_groups_match_the_full_search_and_zero_the_rest(latent) -> None:
    full_codewords, full_indices = LeechQuantizer()(latent)
    needed = torch.tensor([1, 3])
    codewords, indices = LeechQuantizer()(latent, needed)
    for b, n in enumerate(needed.tolist()):
        torch.testing.assert_close(indices[b, :n], full_indices[b, :n], rtol=0, atol=0)
        torch.testing.assert_close(codewords[b, : 24 * n], full_codewords[b, : 24 * n])
        assert (indices[b, n:] == 0).all()
        assert (codewords[b, 24 * n :] == 0).all()
