"""The prior's coding passes: each group's passes partition the grid, each pass reads only its
group's tokens of earlier passes, and the trainer scores exactly the coded tokens."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lqz.leech import DIM
from lqz.leech import decode as leech_decode
from lqz.nn.config import ModelConfig
from lqz.nn.model import LqzModel
from lqz.nn.schedule import Pass, coding_steps, context_mask, group_passes, pass_mask

TINY = ModelConfig(channels=8, groups=3, kernel=3, prior_channels=8, mixtures=2, levels=(1, 2, 3))
SPLIT = dataclasses.replace(TINY, split_first_group=True)


def noisy_split_model() -> LqzModel:
    """A three-pass tiny model whose prior outputs depend visibly on its inputs."""
    model = LqzModel(SPLIT)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    return model


def random_latent(batch: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token indices (B, G, h, w) and their codeword latent (B, 24G, h, w)."""
    indices = torch.randint(0, 196560, (batch, SPLIT.groups, h, w))
    latent = leech_decode(indices).movedim(-1, 2).reshape(batch, SPLIT.latent_channels, h, w)
    return indices, latent


def brute_force_mask(h: int, w: int, rule) -> torch.Tensor:
    return torch.tensor([[rule(r, c) for c in range(w)] for r in range(h)], dtype=torch.bool)


RULES = {
    Pass.ANCHORS: lambda r, c: (r + c) % 2 == 0,
    Pass.REST: lambda r, c: (r + c) % 2 == 1,
    Pass.EVEN: lambda r, c: r % 2 == 0 and c % 2 == 0,
    Pass.ODD: lambda r, c: r % 2 == 1 and c % 2 == 1,
}


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (3, 1), (4, 5), (7, 6)])
def test_pass_masks_match_their_definitions(shape: tuple[int, int]) -> None:
    h, w = shape
    for kind, rule in RULES.items():
        assert torch.equal(pass_mask(h, w, kind), brute_force_mask(h, w, rule))


@pytest.mark.parametrize("config", [TINY, SPLIT], ids=["checkerboard", "split"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 4), (6, 7)])
def test_passes_partition_each_group_and_read_only_earlier_passes(
    config: ModelConfig, shape: tuple[int, int]
) -> None:
    h, w = shape
    steps = coding_steps(config, config.groups)
    assert [g for g, _ in steps] == sorted(g for g, _ in steps)
    for group in range(config.groups):
        decoded = torch.zeros(h, w, dtype=torch.bool)
        for pass_ in group_passes(config, group):
            assert (group, pass_) in steps
            assert not (context_mask(h, w, pass_) & ~decoded).any()  # reads only decoded ones
            coded = pass_mask(h, w, pass_)
            assert not (coded & decoded).any()
            decoded |= coded
        assert decoded.all()


def test_split_applies_to_group_zero_only() -> None:
    assert group_passes(SPLIT, 0) == (Pass.EVEN, Pass.ODD, Pass.REST)
    assert group_passes(SPLIT, 1) == group_passes(TINY, 0) == (Pass.ANCHORS, Pass.REST)
    assert len(coding_steps(SPLIT, 3)) == len(coding_steps(TINY, 3)) + 1
    prior = LqzModel(SPLIT).prior
    rows = {prior.embed_row(g, p) for g, p in coding_steps(SPLIT, 3)}
    assert len(rows) == len(coding_steps(SPLIT, 3)) == prior.embed.num_embeddings
    with pytest.raises(ValueError, match="no pass ODD"):
        prior.embed_row(1, Pass.ODD)
    with pytest.raises(ValueError, match="no pass ANCHORS"):
        prior.embed_row(0, Pass.ANCHORS)


def test_config_without_the_field_reads_as_two_passes() -> None:
    legacy = TINY.to_json().replace(', "split_first_group": false', "")
    assert "split_first_group" not in legacy
    assert ModelConfig.from_json(legacy).split_first_group is False
    assert ModelConfig.from_json(SPLIT.to_json()) == SPLIT


def test_prior_bits_with_a_pass_per_image_scores_those_passes() -> None:
    """Per-image passes (the trainer's) give the same bits as scoring each image alone."""
    from lqz.objectives import prior_bits

    torch.manual_seed(0)
    model = noisy_split_model()
    h, w = 5, 6
    indices, codewords = random_latent(3, h, w)
    groups = torch.tensor([0, 0, 2])
    passes = torch.tensor([Pass.ODD, Pass.EVEN, Pass.REST])
    mixed = prior_bits(model.prior, codewords, indices, groups, passes, sample=1000)
    assert mixed.shape == (3, 6)  # the smallest pass, ODD, has 2 x 3 positions
    for b in range(3):
        alone = prior_bits(
            model.prior, codewords[b : b + 1], indices[b : b + 1], groups[b : b + 1], int(passes[b])
        )[0]
        assert all(torch.isclose(alone, v).any() for v in mixed[b])
        if passes[b] == Pass.ODD:  # all of its positions, in the coding order
            torch.testing.assert_close(mixed[b], alone)
    with pytest.raises(ValueError, match="one pass"):
        prior_bits(model.prior, codewords, indices, groups, passes)


def test_decoded_tokens_of_earlier_passes_matter_to_odd() -> None:
    model = noisy_split_model()
    h, w = 4, 4
    _, latent = random_latent(1, h, w)
    even = pass_mask(h, w, Pass.EVEN).expand(DIM, h, w)
    changed = latent.clone()
    changed[0, :DIM][even] = -changed[0, :DIM][even]
    a = model.prior(latent, 0, Pass.ODD)[0]
    b = model.prior(changed, 0, Pass.ODD)[0]
    assert not torch.equal(a, b)


def test_a_trained_run_migrates_to_the_split_and_keeps_training(tmp_path, noise_images) -> None:
    """Old passes keep their pmfs exactly; ODD starts as group 0's REST; training resumes."""
    from lqz.train.loop import TrainOptions, train
    from lqz.train.migrate import main as migrate

    data = noise_images(6, 48, 48)
    run = tmp_path / "run"
    opts = TrainOptions(
        data=data, run_dir=run, config=TINY, batch=2, crop=32, steps=3, holdout=2, threads=1,
        device="cpu", checkpoint_seconds=1e9, validate_seconds=1e9, log_every=1,
    )  # fmt: skip
    train(opts)
    saved = torch.load(run / "state.pt", weights_only=True)
    old = LqzModel(TINY)
    old.prior.load_state_dict(saved["prior"])
    migrate([str(run)])  # the one-shot tool, in place
    migrated = torch.load(run / "state.pt", weights_only=True)
    kept = torch.load(run / "state.prev.pt", weights_only=True)  # the old checkpoint stays
    assert ModelConfig.from_json(kept["config"]) == TINY
    new = LqzModel(SPLIT)
    assert ModelConfig.from_json(migrated["config"]) == SPLIT
    new.prior.load_state_dict(migrated["prior"])
    h, w = 3, 4
    _, latent = random_latent(1, h, w)
    with torch.no_grad():
        same = [((0, Pass.REST), (0, Pass.REST)), ((0, Pass.ANCHORS), (0, Pass.EVEN))]
        same += [((g, p), (g, p)) for g in (1, 2) for p in (Pass.ANCHORS, Pass.REST)]
        for before, after in same:
            assert torch.equal(old.prior(latent, *before)[0], new.prior(latent, *after)[0])
        emb = new.prior.embed.weight
        assert torch.equal(emb[new.prior.embed_row(0, Pass.ODD)], emb[1])
    migrate([str(run)])  # a second call changes nothing
    assert torch.load(run / "state.prev.pt", weights_only=True)["step"] == kept["step"]
    train(dataclasses.replace(opts, steps=5))
    resumed = torch.load(run / "state.pt", weights_only=True)
    assert resumed["step"] == 5
    assert ModelConfig.from_json(resumed["config"]) == SPLIT
    assert resumed["ema"]["prior.embed.weight"].shape[0] == 2 * TINY.groups + 1


def test_migrating_weights_keeps_every_pass_and_refuses_to_overwrite(tmp_path) -> None:
    from lqz.errors import OutputError
    from lqz.nn.weights import load_model, save_weights
    from lqz.train.migrate import migrate_weights

    torch.manual_seed(1)
    old = LqzModel(TINY)
    with torch.no_grad():
        for p in old.prior.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    src, out = tmp_path / "old.safetensors", tmp_path / "new.safetensors"
    save_weights(old, src, half=False)
    assert migrate_weights(src, out, half=False)
    new = load_model(out)
    assert new.config == SPLIT
    _, latent = random_latent(1, 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(
            new.prior(latent, 0, Pass.EVEN), old.prior(latent, 0, Pass.ANCHORS)
        )
        torch.testing.assert_close(new.prior(latent, 2, Pass.REST), old.prior(latent, 2, Pass.REST))
    with pytest.raises(OutputError):
        migrate_weights(src, out)
    assert not migrate_weights(out, tmp_path / "again.safetensors")  # already split
    assert not (tmp_path / "again.safetensors").exists()
