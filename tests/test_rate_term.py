"""The rate term of training (``--rate-lambda``): the codeword-slope gradient of ``log_prob``,
the sampled bpp estimate, and a tiny model trained on MSE + λ·R."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lqz.entropy.shell_pmf import log_partition, log_prob
from lqz.errors import TrainSettingError
from lqz.leech.shell import index_to_codeword
from lqz.nn.schedule import group_passes
from lqz.objectives import group_bits, prior_bits, sampled_bpp
from lqz.train.loop import TINY, Session, TrainStep
from lqz.train.quantizer import decode, latent_of


def test_codeword_coords_keep_log_prob_and_get_posterior_weighted_table_slopes() -> None:
    gen = torch.Generator().manual_seed(3)
    n, m = 6, 2
    tables = torch.randn(n, m, 24, 9, generator=gen, dtype=torch.float64)
    logits = torch.randn(n, m, generator=gen, dtype=torch.float64)
    index = torch.tensor([0, 500, 1103, 98_000, 150_000, 196_559])
    ints = index_to_codeword(index.numpy()).astype(np.int64)  # (n, 24) in -4..4
    coords = torch.tensor(ints, dtype=torch.float64, requires_grad=True)

    plain = log_prob(tables, logits, index)
    with_coords = log_prob(tables, logits, index, coords)
    assert torch.equal(plain, with_coords)
    with_coords.sum().backward()

    log_z = log_partition(tables).numpy()
    t, lg = tables.numpy(), logits.numpy()
    expected = np.zeros((n, 24))
    for i in range(n):
        cols = ints[i] + 4
        log_pm = np.array([t[i, k, np.arange(24), cols].sum() - log_z[i, k] for k in range(m)])
        joint = lg[i] - np.log(np.exp(lg[i]).sum()) + log_pm
        post = np.exp(joint - joint.max())
        post /= post.sum()
        for d in range(24):
            lo, hi = max(cols[d] - 1, 0), min(cols[d] + 1, 8)
            slopes = (t[i, :, d, hi] - t[i, :, d, lo]) / (hi - lo)
            expected[i, d] = (post * slopes).sum()
    np.testing.assert_allclose(coords.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def tiny_session(seed: int, prior_lr: float = 1e-3) -> Session:
    torch.manual_seed(seed)
    return Session.new(TINY, torch.device("cpu"), 1e-3, prior_lr, 0.9)


def smooth_images(count: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, size // 8, size // 8, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")


def test_sampled_bpp_averages_to_the_exact_bpp_over_groups_and_passes() -> None:
    session = tiny_session(0)
    model, config = session.model, session.config
    x = smooth_images(2, 64, 1)
    used = torch.tensor([1, 3])
    with torch.no_grad():
        indices = model.tokenizer.encode(x, config.token_groups)
        codewords = latent_of(model.tokenizer, indices)
        exact = group_bits(model.prior, codewords, indices, config.token_groups)
        expected = torch.stack([exact[i, : int(u)].sum() for i, u in enumerate(used)]) / 64**2
        mean = torch.zeros(2, dtype=torch.float64)
        for g in range(config.token_groups):
            passes = group_passes(config, g)
            for p in passes:
                groups = torch.full((2,), g)
                bits = prior_bits(model.prior, codewords, indices, groups, p)
                estimate = sampled_bpp(config, bits, groups, torch.full((2,), p), used, (8, 8))
                mean += estimate.double() / (config.token_groups * len(passes))
    torch.testing.assert_close(mean, expected.double(), rtol=1e-5, atol=1e-7)


def rd_figures(session: Session, x: torch.Tensor) -> tuple[float, float]:
    """(mean MSE, mean exact bpp) of ``x`` over the model's levels, plain tokens."""
    model = session.model
    mses, bpps = [], []
    with torch.no_grad():
        for level in session.config.levels:
            indices = model.tokenizer.encode(x, level)
            mses.append(float(((decode(model.tokenizer, indices) - x) ** 2).mean()))
            codewords = latent_of(model.tokenizer, indices)
            bits = group_bits(model.prior, codewords, indices, level).sum()
            bpps.append(float(bits) / (len(x) * x.shape[-2] * x.shape[-1]))
    return float(np.mean(mses)), float(np.mean(bpps))


def train_tiny(
    rate_lambda: float, steps: int, prior_lr: float = 1e-3
) -> tuple[Session, list[dict[str, torch.Tensor]], torch.Tensor]:
    session = tiny_session(0, prior_lr)
    step = TrainStep(session, torch.device("cpu"), prior_tokens=16, rate_lambda=rate_lambda)
    x = smooth_images(4, 64, 2)
    torch.manual_seed(5)
    return session, [step(x) for _ in range(steps)], x


def test_a_tiny_model_trained_on_mse_plus_rate_lowers_its_rd_loss() -> None:
    lam = 0.05
    session = tiny_session(0)
    x = smooth_images(4, 64, 2)
    mse0, bpp0 = rd_figures(session, x)
    session, figures, x = train_tiny(lam, 40)
    mse1, bpp1 = rd_figures(session, x)
    assert mse1 + lam * bpp1 < 0.9 * (mse0 + lam * bpp0)
    assert all(math.isfinite(float(f["rate"])) and float(f["rate"]) > 0 for f in figures)


def test_rate_lambda_settings_are_checked() -> None:
    session = tiny_session(0)
    with pytest.raises(TrainSettingError):
        TrainStep(session, torch.device("cpu"), prior=False, rate_lambda=0.01)
    with pytest.raises(TrainSettingError):
        TrainStep(session, torch.device("cpu"), depth_maps=0.5, rate_lambda=0.01)
    with pytest.raises(TrainSettingError):
        TrainStep(session, torch.device("cpu"), rate_lambda=-1.0)


def test_trainer_cli_rejects_bad_rate_settings_in_one_line_before_loading_data(
    tmp_path, capsys
) -> None:
    from lqz.train.__main__ import main
    from lqz.train.entry import run_main

    missing = tmp_path / "no-such-data"  # would fail with a data error if it were read first
    for extra in (["--no-prior"], ["--depth-maps", "0.5"]):
        argv = ["--data", str(missing), "--root", str(tmp_path), "--tiny", "--rate-lambda", "0.01"]
        with pytest.raises(SystemExit) as exit_:
            run_main(lambda argv=argv + extra: main(argv), "lqz.train")
        assert exit_.value.code == TrainSettingError.exit_code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--rate-lambda" in err
