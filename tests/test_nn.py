"""Tokenizer, prior causality, weights I/O and the trainer, on tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lqz.leech import DIM
from lqz.leech import decode as leech_decode
from lqz.nn.config import ModelConfig
from lqz.nn.model import LqzModel
from lqz.nn.schedule import Pass, pass_mask
from lqz.nn.tokenizer import group_mask
from lqz.nn.weights import WeightsError, load_model, model_id, read_weights, save_weights

TINY = ModelConfig(channels=8, groups=3, kernel=3, prior_channels=8, mixtures=2, levels=(1, 2, 3))


def tiny_model(seed: int = 0) -> LqzModel:
    torch.manual_seed(seed)
    return LqzModel(TINY).eval()


def test_config_json_round_trip_and_levels() -> None:
    config = dataclasses.replace(TINY, levels=(1, 3))
    assert ModelConfig.from_json(config.to_json()) == config
    assert config.groups_at(2) == 3
    with pytest.raises(ValueError):
        config.groups_at(3)
    with pytest.raises(ValueError):
        ModelConfig.from_json('{"bogus": 1}')


def test_group_mask_keeps_prefix() -> None:
    mask = group_mask(torch.tensor([0, 2, 3]), 3)[:, :, 0, 0]
    assert mask.shape == (3, 3 * DIM)
    assert mask.sum(1).tolist() == [0, 2 * DIM, 3 * DIM]
    assert mask[1, : 2 * DIM].all() and not mask[1, 2 * DIM :].any()


def test_tokenizer_shapes_and_codewords() -> None:
    model = tiny_model()
    x = torch.rand(2, 3, 32, 48)
    x_hat, codewords, indices = model.tokenizer(x, torch.tensor([1, 3]))
    assert x_hat.shape == x.shape
    assert indices.shape == (2, 3, 2, 3)
    expected = leech_decode(indices).movedim(-1, 2).reshape(2, 3 * DIM, 2, 3)
    assert torch.allclose(codewords, expected, atol=1e-6)
    assert torch.equal(model.tokenizer.encode(x, 2), indices[:, :2])


def test_truncated_decode_ignores_later_groups() -> None:
    model = tiny_model()
    indices = torch.randint(0, 196560, (1, 3, 2, 2))
    a = model.tokenizer.decode(indices[:, :2])
    other = indices.clone()
    other[:, 2] = torch.randint(0, 196560, (1, 2, 2))
    assert torch.equal(a, model.tokenizer.decode(other[:, :2]))
    assert a.shape == (1, 3, 32, 32) and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("group,pass_", [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_prior_sees_only_decoded_tokens(group: int, pass_: int) -> None:
    """Changing any token not yet decoded at (group, pass) leaves its pmf parameters unchanged."""
    model = tiny_model()
    h, w = 4, 5
    indices = torch.randint(0, 196560, (1, TINY.groups, h, w))
    latent = leech_decode(indices).movedim(-1, 2).reshape(1, TINY.latent_channels, h, w)
    tables, logits = model.prior(latent, group, pass_)
    assert tables.shape == (1, h, w, TINY.mixtures, DIM, 9)
    assert logits.shape == (1, h, w, TINY.mixtures)

    decoded = torch.zeros(TINY.groups, h, w, dtype=torch.bool)
    decoded[:group] = True
    if pass_ == 1:
        decoded[group] = pass_mask(h, w, Pass.ANCHORS)
    changed = torch.where(decoded, indices[0], torch.randint(0, 196560, (TINY.groups, h, w)))
    latent2 = leech_decode(changed[None]).movedim(-1, 2).reshape(1, TINY.latent_channels, h, w)
    tables2, logits2 = model.prior(latent2, group, pass_)
    assert torch.equal(tables, tables2) and torch.equal(logits, logits2)

    if group > 0 or pass_ == 1:  # and decoded tokens do matter
        seen = torch.where(decoded, torch.randint(0, 196560, (TINY.groups, h, w)), indices[0])
        latent3 = leech_decode(seen[None]).movedim(-1, 2).reshape(1, TINY.latent_channels, h, w)
        assert not torch.equal(tables, model.prior(latent3, group, pass_)[0])


def test_weights_round_trip(tmp_path) -> None:
    model = tiny_model()
    path = tmp_path / "w.safetensors"
    save_weights(model, path, half=False)
    loaded = load_model(path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert loaded.config == TINY
    assert len(model_id(path)) == 8
    save_weights(model, tmp_path / "h.safetensors", half=True)
    config, state = read_weights(tmp_path / "h.safetensors")
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    assert model_id(path) != model_id(tmp_path / "h.safetensors")


def test_weights_errors(tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError):
        load_model(bad)
    with pytest.raises(WeightsError):
        load_model(tmp_path / "missing.safetensors")


def test_tiny_model_trains(tmp_path, learnable_images) -> None:
    """A few steps of the real training loop on tiny images: the loss falls, state resumes."""

    from lqz.train.loop import TrainOptions, train

    data = learnable_images
    run = tmp_path / "run"
    opts = TrainOptions(
        data=data, run_dir=run, config=TINY, batch=4, crop=32, lr=3e-3, steps=60,
        log_every=10, holdout=2, threads=1, device="cpu", checkpoint_seconds=1e9,
        validate_seconds=1e9,
    )  # fmt: skip
    train(opts)
    import json

    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    bits = [r["bits_per_token"] for r in records if "bits_per_token" in r]
    assert losses[-1] < 0.7 * losses[0]
    assert bits[-1] < bits[0]
    assert "bpp_q3" in records[-1]["validation"]
    train(dataclasses.replace(opts, steps=70))  # resumes from step 60
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 70

    from lqz.errors import CheckpointError, TrainSettingError
    from lqz.train.export import export

    exported = export(run, tmp_path / "w.safetensors", levels="1,3")
    assert read_weights(tmp_path / "w.safetensors")[0] == dataclasses.replace(TINY, levels=(1, 3))
    assert all(torch.equal(v, state["ema"][k]) for k, v in exported.state_dict().items())
    last = export(run, tmp_path / "l.safetensors", average=False)
    trained = {k[len("tokenizer.") :]: v for k, v in last.state_dict().items() if "tokenizer." in k}
    assert all(torch.equal(v, state["tokenizer"][k]) for k, v in trained.items())
    assert not all(torch.equal(v, state["ema"][k]) for k, v in last.state_dict().items())
    with pytest.raises(TrainSettingError):
        export(run, tmp_path / "x.safetensors", levels="3,1")
    with pytest.raises(CheckpointError):
        export(tmp_path / "nothing", tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_tile_coding_is_bit_exact_across_thread_counts() -> None:
    """Encode with 2 threads, decode with 1: the same tokens and pixels come back."""
    from lqz.tiles import decode_indices, decode_tile, encode_indices, encode_tile

    model = tiny_model()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(37, 50, 3), dtype=np.uint8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
        from lqz.tiles import pad_to_stride

        indices = model.tokenizer.encode(pad_to_stride(x, TINY.stride), 3)[0]
        data = encode_indices(model, indices)
        tile = encode_tile(model, pixels, 3)
        torch.set_num_threads(1)
        assert encode_tile(model, pixels, 3) == tile
        decoded = decode_indices(model, data, 3, *indices.shape[1:])
        assert torch.equal(decoded, indices)
        image = decode_tile(model, tile, 3, 37, 50)
        torch.set_num_threads(2)
        assert np.array_equal(image, decode_tile(model, tile, 3, 37, 50))
        assert image.shape == (37, 50, 3) and image.dtype == np.uint8
    finally:
        torch.set_num_threads(threads)


FLAT = dataclasses.replace(TINY, stride_log2=3, latent_kernel=3)


def test_flat_latent_stage_shapes_and_codewords() -> None:
    """latent_kernel > 0: every stride-2 stage keeps GDN, a stride-1 conv makes the latent."""
    torch.manual_seed(0)
    model = LqzModel(FLAT).eval()
    assert FLAT.stride == 8
    x = torch.rand(2, 3, 16, 24)
    x_hat, codewords, indices = model.tokenizer(x, torch.tensor([1, 3]))
    assert x_hat.shape == x.shape and indices.shape == (2, 3, 2, 3)
    expected = leech_decode(indices).movedim(-1, 2).reshape(2, 3 * DIM, 2, 3)
    assert torch.allclose(codewords, expected, atol=1e-6)
    convs = [m for m in model.tokenizer.analysis if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1]


def test_transfer_weights_copies_matching_tensors_only(tmp_path) -> None:
    from lqz.train.loop import transfer_weights

    source = tiny_model(1)
    path = tmp_path / "source.safetensors"
    save_weights(source, path, half=False)
    torch.manual_seed(2)
    target = LqzModel(FLAT)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    copied = transfer_weights(target, path)
    src, dst = source.state_dict(), target.state_dict()
    same = [k for k in dst if k in src and src[k].shape == dst[k].shape]
    assert copied == len(same) > 0
    for key in dst:
        expected = src[key] if key in same else before[key]
        assert torch.equal(dst[key], expected), key
    assert "analysis.6.weight" not in same  # strided latent conv vs stride-1 latent conv


def test_prior_bits_sampling_scores_a_subset() -> None:
    from lqz.objectives import prior_bits

    torch.manual_seed(0)
    model = tiny_model()
    x = torch.rand(2, 3, 64, 80)
    _, codewords, indices = model.tokenizer(x, torch.tensor([3, 3]))
    groups = torch.tensor([0, 2])
    full = prior_bits(model.prior, codewords, indices, groups, 1)
    assert full.shape == (2, 10)  # 4 x 5 positions, half of them in pass 1
    assert torch.equal(prior_bits(model.prior, codewords, indices, groups, 1, sample=99), full)
    part = prior_bits(model.prior, codewords, indices, groups, 1, sample=3)
    assert part.shape == (2, 3)
    for b in range(2):
        assert all(torch.isclose(full[b], v).any() for v in part[b])


def test_weight_average_matches_a_hand_computed_ema() -> None:
    from lqz.train.ema import WeightAverage

    model = tiny_model(3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.9)
    expected = {k: v.clone() for k, v in start.items()}
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * (step + 1))
        average.update(model)
        for k, v in model.state_dict().items():
            expected[k] = 0.9 * expected[k] + 0.1 * v if v.is_floating_point() else v.clone()
    for k, v in average.state_dict().items():
        assert torch.allclose(v, expected[k], atol=1e-6), k
    current = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied(model):
        assert all(torch.equal(model.state_dict()[k], v) for k, v in average.state_dict().items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in current.items())
    with pytest.raises(ValueError):
        WeightAverage(model, decay=1.0)
