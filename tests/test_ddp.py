"""Data-parallel training (``torchrun -m lqz.train``): two gloo processes on the CPU."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from lqz.nn.config import ModelConfig
from lqz.nn.model import LqzModel

TINY = ModelConfig(channels=8, groups=3, kernel=3, prior_channels=8, mixtures=2, levels=(1, 2, 3))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, data: Path, root: Path) -> None:
    """One rank, as torchrun starts it: the environment says who it is."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    from lqz.train.loop import TrainOptions, train

    torch.manual_seed(rank)  # different random weights per rank: rank 0's must win
    opts = TrainOptions(
        data=data, run_dir=root / "run", config=TINY, batch=2, crop=32, lr=3e-3, steps=4,
        holdout=2, threads=1, device="cpu", checkpoint_seconds=1e9, validate_seconds=1e9,
        log_every=1,
    )  # fmt: skip
    session = train(opts)
    state = {k: v.clone() for k, v in session.model.state_dict().items()}
    torch.save({"model": state, "ema": session.average.state_dict()}, root / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_ranks_keep_identical_weights_and_only_rank_0_writes(tmp_path: Path, noise_images):
    data = noise_images(6, 48, 48)
    mp.spawn(worker, args=(2, free_port(), data, tmp_path), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(v, b[part][k]) for k, v in a[part].items()), part
    saved = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert saved["step"] == 4
    assert all(torch.equal(v, a["model"][f"tokenizer.{k}"]) for k, v in saved["tokenizer"].items())
    inits = []
    for seed in (0, 1):  # the ranks' own random weights: different, and both left behind
        torch.manual_seed(seed)
        inits.append(LqzModel(TINY).state_dict())
    assert not all(torch.equal(v, inits[1][k]) for k, v in inits[0].items())
    for init in inits:
        assert not all(torch.equal(v, a["model"][k]) for k, v in init.items())
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert sum('"loss"' in line for line in log) == 4  # one record per step, from rank 0 only
