"""The exact prior (``lqz.nn.exact_prior``): the same pmfs whatever the order of its sums."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lqz import tiles
from lqz.leech import decode as leech_decode
from lqz.nn.exact_prior import (
    ACTIVATION_BITS,
    ACTIVATION_MAX,
    GELU_SPAN,
    ExactPrior,
    GridGELU,
    gelu_table,
    gelu_table_digest,
    to_grid,
)
from lqz.nn.schedule import coding_steps, pass_mask
from lqz.nn.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "models" / "lqz-mse.safetensors"

pytestmark = pytest.mark.skipif(not WEIGHTS.exists(), reason="no shipped weights")

#: SHA-256 of the GELU table (float64 bytes): every machine must compute this very table
GELU_TABLE_SHA256 = "778110645d7ceccb2bb05ae8750991750554216a9ae22712cd6031ae85c52119"


@pytest.fixture(scope="module")
def model():
    return load_model(WEIGHTS)


def latent_of(model, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    indices = torch.randint(0, 196560, (model.config.groups, h, w), generator=g)
    return leech_decode(indices).permute(0, 3, 1, 2).reshape(1, -1, h, w)


def test_gelu_table_is_the_frozen_one() -> None:
    table = gelu_table()
    step = 2.0**-ACTIVATION_BITS
    assert torch.equal(torch.round(table / step) * step, table)  # on the grid
    x = torch.arange(-(len(table) // 2), len(table) // 2 + 1, dtype=torch.float64) * step
    assert (table - torch.nn.functional.gelu(x)).abs().max() <= step / 2 + 1e-12
    assert gelu_table_digest() == GELU_TABLE_SHA256


def grid_gelu(x: torch.Tensor) -> torch.Tensor:
    """The grid GELU in torch operations (how lqz computed it before its kernel): GELU of
    ``to_grid(x)`` from the table, the identity above its span, 0 below."""
    x = to_grid(x)
    n = GELU_SPAN * 2**ACTIVATION_BITS
    index = (x * 2.0**ACTIVATION_BITS).clamp(-n, n).to(torch.int64) + n
    out = torch.where(x > GELU_SPAN, x, gelu_table()[index])
    return torch.where(x < -GELU_SPAN, torch.zeros_like(x), out)


def test_grid_gelu_kernel_is_the_torch_definition() -> None:
    """Bit for bit, on random activations and on the grid's edges: ties, the table's ends,
    the clamp, beyond it, and strided input."""
    torch.manual_seed(0)
    step = 2.0**-ACTIVATION_BITS
    edges = [0.5 * step, 1.5 * step, -2.5 * step, GELU_SPAN, GELU_SPAN + step / 2, -GELU_SPAN]
    edges += [-GELU_SPAN - step, ACTIVATION_MAX, ACTIVATION_MAX + 1, -1e300, 1e300, -0.0]
    x = torch.cat(
        [torch.tensor(edges, dtype=torch.float64), torch.randn(4096, dtype=torch.float64) * 9]
    )
    grid = torch.randn(2, 7, 9, 11, dtype=torch.float64).mul(12).transpose(1, 3)
    for sample in (x, grid, (torch.rand(5000, dtype=torch.float64) - 0.5) * 2 * GELU_SPAN):
        assert torch.equal(GridGELU()(sample), grid_gelu(sample))


def test_exact_prior_is_the_float_prior_up_to_rounding(model) -> None:
    exact = model.coding_prior(exact=True)
    assert isinstance(exact, ExactPrior)
    latent = latent_of(model, 9, 7, seed=1)
    for group, pass_ in list(coding_steps(model.config, model.config.groups))[:6]:
        t_float, l_float = model.prior.pass_params(latent, group, pass_)
        t_exact, l_exact = exact.pass_params(latent, group, pass_)
        assert t_exact.dtype == torch.float64
        assert torch.allclose(t_exact, t_float.double(), atol=0.05)
        assert torch.allclose(l_exact, l_float.double(), atol=0.05)


@torch.no_grad()
def test_coding_path_equals_the_whole_grid_bit_for_bit(model) -> None:
    """pass_params (1x1 as a matrix product, stride-2 convolutions on a band, a matrix-product
    head) and forward (convolutions and an einsum on the whole grid) sum in different orders:
    exact arithmetic makes them equal to the last bit, bands included."""
    exact = model.coding_prior(exact=True)
    h, w = 11, 6
    latent = latent_of(model, h, w, seed=2)
    for group, pass_ in coding_steps(model.config, 4):
        tables, logits = exact(latent, group, pass_)
        where = pass_mask(h, w, pass_)
        t, lg = exact.pass_params(latent, group, pass_)
        assert torch.equal(t, tables[0][where]) and torch.equal(lg, logits[0][where])
        top = exact.pass_params(latent, group, pass_, (0, 5))
        bottom = exact.pass_params(latent, group, pass_, (5, h))
        assert torch.equal(torch.cat([top[0], bottom[0]]), t)


@torch.no_grad()
def test_the_order_of_the_channels_does_not_change_a_bit(model) -> None:
    """Permuting the trunk's channels (and the weights with them) reorders every sum."""
    exact = model.coding_prior(exact=True)
    latent = latent_of(model, 8, 8, seed=3)
    order = torch.randperm(exact.config.prior_channels, generator=torch.Generator().manual_seed(0))
    shuffled = ExactPrior.of(model.prior)
    conv1, conv2 = shuffled.trunk[1], shuffled.trunk[3]
    shuffled.context_in.weight.copy_(shuffled.context_in.weight[order])
    shuffled.context_in.bias.copy_(shuffled.context_in.bias[order])
    shuffled.embed.weight.copy_(shuffled.embed.weight[:, order])
    conv1.weight.copy_(conv1.weight[order][:, order])
    conv1.bias.copy_(conv1.bias[order])
    conv2.weight.copy_(conv2.weight[order][:, order])
    conv2.bias.copy_(conv2.bias[order])
    shuffled.head_weight.copy_(shuffled.head_weight[:, :, order])
    for group, pass_ in list(coding_steps(model.config, 3)):
        a = exact.pass_params(latent, group, pass_)
        b = shuffled.pass_params(latent, group, pass_)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_float_prior_files_still_decode_with_the_float_prior(model) -> None:
    """exact=False codes as earlier format versions did; the two priors' streams differ."""
    indices = torch.randint(0, 196560, (3, 6, 5), generator=torch.Generator().manual_seed(5))
    old = tiles.encode_indices(model, indices, exact=False)
    new = tiles.encode_indices(model, indices)
    assert torch.equal(tiles.decode_indices(model, old, 3, 6, 5, exact=False), indices)
    assert torch.equal(tiles.decode_indices(model, new, 3, 6, 5), indices)


def test_the_exact_prior_follows_the_weights(model) -> None:
    """Changed weights (training) give a new exact prior, not a stale one."""
    first = model.coding_prior(exact=True)
    assert model.coding_prior(exact=True) is first
    with torch.no_grad():
        model.prior.head_bias.add_(0.0)
    assert model.coding_prior(exact=True) is not first


def test_the_format_version_chooses_the_prior(model) -> None:
    """A version 2 file (float prior) decodes as before; version 3 payloads need the exact one."""
    import dataclasses

    import numpy as np
    from PIL import Image

    import lqz
    from lqz import api
    from lqz import format as fmt

    rgb = np.asarray(Image.open(ROOT / "docs" / "sample.png").convert("RGB"))[:48, :64].copy()
    data = lqz.encode(Image.fromarray(rgb), quality=3)
    header, payloads, _ = fmt.unpack(data, known_model_ids=api.model_set().model_ids)
    assert header.version == fmt.EXACT_PRIOR_VERSION
    loaded, groups = api.model_set().for_header(header)
    h, w = -(-48 // 8), -(-64 // 8)
    indices = tiles.decode_indices(loaded.model, bytes(payloads[0]), groups, h, w)
    old = tiles.encode_indices(loaded.model, indices, exact=False)
    v2 = dataclasses.replace(header, version=2)
    assert np.array_equal(np.asarray(lqz.decode(fmt.pack(v2, [old]))), np.asarray(lqz.decode(data)))
    with pytest.raises(lqz.LqzError):
        lqz.decode(fmt.pack(v2, [bytes(payloads[0])]))
