"""Per-position depth maps in training: masks, random maps, the prior's scoring, a tiny run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lqz.leech import DIM
from lqz.nn.model import LqzModel
from lqz.nn.tokenizer import channels_last, group_mask
from lqz.objectives import prior_bits
from lqz.train.depth import MAX_BLOCK_LOG2, random_depths
from lqz.train.loop import TINY, TrainOptions, train


def test_depth_map_mask_keeps_the_first_groups_per_position() -> None:
    depth = torch.tensor([[[0, 1], [3, 2]]])
    mask = group_mask(depth, 3)
    assert mask.shape == (1, 3 * DIM, 2, 2)
    for y in range(2):
        for x in range(2):
            expected = torch.zeros(3 * DIM)
            expected[: DIM * int(depth[0, y, x])] = 1
            assert torch.equal(mask[0, :, y, x], expected)


def test_constant_depth_map_is_the_per_image_mask() -> None:
    used = torch.tensor([1, 3])
    per_image = group_mask(used, 3).expand(-1, -1, 4, 5)
    assert torch.equal(group_mask(used[:, None, None].expand(-1, 4, 5), 3), per_image)


def test_random_depths_draw_levels_in_blocks() -> None:
    torch.manual_seed(0)
    levels = torch.tensor([1, 2, 4, 9])
    maps = random_depths(levels, 200, 16, 20)
    assert maps.shape == (200, 16, 20)
    assert set(maps.unique().tolist()) == {1, 2, 4, 9}
    side = 1 << MAX_BLOCK_LOG2
    constant_blocks = 0
    mixed = 0
    for m in maps:
        blocks = m[:16, :16].reshape(2, side, 2, side)
        constant_blocks += int((blocks.amax((1, 3)) == blocks.amin((1, 3))).all())
        mixed += int(m.unique().numel() > 1)
    assert constant_blocks > 200 // (MAX_BLOCK_LOG2 + 1) // 2  # the coarsest side shows
    assert mixed > 100  # most maps vary over the image


def test_prior_bits_score_only_coded_positions() -> None:
    torch.manual_seed(3)
    model = LqzModel(TINY).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        _, codewords, indices = model.tokenizer(x, torch.tensor([3, 3]))
        groups, coded = torch.tensor([1, 1]), torch.zeros(2, 4, 4, dtype=torch.bool)
        coded[0] = True  # image 0: every position; image 1: only (0, 0) and (1, 1)
        coded[1, 0, 0] = coded[1, 1, 1] = True
        full = prior_bits(model.prior, codewords, indices, groups, 0)  # 8 anchors each
        some = prior_bits(model.prior, codewords, indices, groups, 0, 8, coded)
    assert torch.equal(some[0], full[0])
    assert torch.isnan(some[1]).sum() == 6
    kept = some[1][~torch.isnan(some[1])]
    # anchors are row-major (0,0), (0,2), (1,1), ...: positions 0 and 2 of the pass
    assert torch.equal(kept, full[1, [0, 2]])
    with pytest.raises(ValueError, match="sample size"):
        prior_bits(model.prior, codewords, indices, groups, 0, None, coded)


def test_tokenizer_reconstructs_from_a_depth_map() -> None:
    torch.manual_seed(4)
    model = LqzModel(TINY).eval()
    x = torch.rand(1, 3, 32, 32)
    depth = torch.tensor([[[1, 2, 3, 3]] * 4])
    with torch.no_grad():
        x_hat, codewords, _ = model.tokenizer(x, depth)
        masked = codewords * group_mask(depth, 3)
        expected = model.tokenizer.synthesis(channels_last(masked))
    assert torch.equal(x_hat, expected)
    assert (
        masked[0, 2 * DIM :, :, 0].abs().sum() == 0 and masked[0, 2 * DIM :, :, 3].abs().sum() > 0
    )


def test_tiny_model_trains_on_depth_maps(tmp_path, learnable_images) -> None:
    """Every image on a random depth map: the loss and the prior's bits fall, no NaN."""
    run = tmp_path / "run"
    opts = TrainOptions(
        data=learnable_images, run_dir=run, config=TINY, batch=4, crop=32, lr=3e-3, steps=60,
        log_every=10, holdout=2, threads=1, device="cpu", checkpoint_seconds=1e9,
        validate_seconds=1e9, depth_maps=1.0,
    )  # fmt: skip
    train(opts)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    bits = [r["bits_per_token"] for r in records if "bits_per_token" in r]
    assert all(math.isfinite(v) for v in losses + bits)
    assert losses[-1] < 0.7 * losses[0]
    assert bits[-1] < bits[0]


def test_depth_map_code_length_is_the_adaptive_code_length() -> None:
    """Against a dictionary-of-counts reference; a constant map costs less than a noisy one."""
    import numpy as np

    from lqz.entropy.depthmap import code_length as depth_map_bits

    rng = np.random.default_rng(2)
    choice = rng.integers(0, 3, size=(4, 6))
    counts: dict[tuple[int, int], list[float]] = {}
    expected = 0.0
    for y in range(4):
        for x in range(6):
            key = (int(choice[y, x - 1]) if x else 3, int(choice[y - 1, x]) if y else 3)
            c = counts.setdefault(key, [0.5, 0.5, 0.5])
            expected += -math.log2(c[choice[y, x]] / sum(c))
            c[choice[y, x]] += 1
    assert depth_map_bits(choice, 3) == pytest.approx(expected, rel=1e-12)
    flat = depth_map_bits(np.zeros((4, 6), dtype=np.int64), 3)
    assert flat < expected
    assert depth_map_bits(np.zeros((1, 1), dtype=np.int64), 3) == pytest.approx(math.log2(3))


def test_adaptive_measure_matches_uniform_when_one_level_is_free() -> None:
    """With a huge lam every position keeps the fewest groups: the uniform first level."""
    import numpy as np

    from lqz.train.adaptive import measure_image

    torch.manual_seed(6)
    model = LqzModel(TINY).eval()
    pixels = np.random.default_rng(6).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    uniform, adaptive = measure_image(model, pixels, (0.0, 1e9))
    assert len(uniform) == len(TINY.levels) and len(adaptive) == 2
    assert all(u.psnr == u.predicted_psnr for u in uniform)
    assert [u.bpp for u in uniform] == sorted(u.bpp for u in uniform)
    # a huge lam keeps the fewest groups everywhere: the uniform first level's tokens exactly
    cheapest = adaptive[1]
    assert cheapest.psnr == pytest.approx(uniform[0].psnr, abs=1e-5)  # threads: float rounding
    assert cheapest.bpp - cheapest.depth_bpp == pytest.approx(uniform[0].bpp, rel=1e-9)


def test_update_ladder_sets_only_this_models_adaptive_rungs(tmp_path) -> None:
    import json

    from lqz.train.adaptive import Point, update_ladder

    spec = {
        "about": "kept",
        "qualities": [
            {"weights": "a.safetensors", "level": 1},
            {"weights": "a.safetensors", "level": 2, "lambda": 1.0},
            {"weights": "a.safetensors", "level": 3},
            {"weights": "b.safetensors", "level": 3, "lambda": 2.0},
            {"weights": "a.safetensors", "level": 4, "lambda": 3.0},
        ],
    }
    ladder = tmp_path / "ladder.json"
    ladder.write_text(json.dumps(spec))
    rungs = [Point(bpp=0.1 * (i + 1), psnr=25.0 + i) for i in range(3)]
    changed = update_ladder(ladder, tmp_path / "a.safetensors", [0.022512, 0.007, 0.0035561], rungs)
    assert changed == [2, 4]
    got = json.loads(ladder.read_text())
    assert got["about"] == "kept"
    q = got["qualities"]
    assert q[0] == spec["qualities"][0] and q[2] == spec["qualities"][2]
    assert q[3] == spec["qualities"][3]  # another model's rung
    assert (q[1]["lambda"], q[1]["heldout_bpp"], q[1]["heldout_psnr"]) == (0.0225, 0.1, 25.0)
    assert (q[4]["lambda"], q[4]["heldout_bpp"], q[4]["heldout_psnr"]) == (0.00356, 0.3, 27.0)
    assert not list(tmp_path.glob("*.tmp"))
