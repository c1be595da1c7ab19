"""Training state folder: atomic checkpoints, resume, and a JSON-lines log."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

DEFAULT_ROOT = Path(os.environ.get("LQZ_TRAIN_DIR", Path.home() / ".cache" / "lqz" / "train"))

#: What a checkpoint holds (:meth:`lqz.train.loop.Session.checkpoint`).
CHECKPOINT_KEYS = frozenset(
    {
        "config",
        "tokenizer",
        "optimizer",
        "prior",
        "prior_optimizer",
        "prior_steps",
        "ema",
        "step",
        "elapsed",
    }
)


class RunState:
    """Files of one run: ``state.pt`` (latest), ``state.prev.pt`` and ``log.jsonl``."""

    def __init__(self, folder: Path, create: bool = True) -> None:
        self.folder = folder
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        self.latest = folder / "state.pt"
        self.previous = folder / "state.prev.pt"
        self.log_path = folder / "log.jsonl"

    def save(self, state: dict[str, Any]) -> None:
        """Write the checkpoint atomically, keeping the previous one."""
        missing = CHECKPOINT_KEYS - set(state)
        if missing:
            raise ValueError(f"checkpoint lacks {sorted(missing)}")
        tmp = self.folder / "state.tmp"
        torch.save(state, tmp)
        if self.latest.exists():
            os.replace(self.latest, self.previous)
        os.replace(tmp, self.latest)

    def load(self) -> dict[str, Any] | None:
        """The latest readable checkpoint, or None when the run has none.

        A torn latest file (a hard kill while writing) falls back to the previous one; when
        checkpoints exist but none is readable, :class:`CheckpointError` (never a silent
        fresh start over a run's history).
        """
        problems = []
        for path in (self.latest, self.previous):
            if not path.exists():
                continue
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                problems.append(f"{path}: {str(exc).splitlines()[0] if str(exc) else exc!r}")
                print(f"could not read {path}: {exc}", flush=True)
                continue
            missing = CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else CHECKPOINT_KEYS
            if missing:
                raise CheckpointError(f"{path} is not an lqz checkpoint (lacks {sorted(missing)})")
            return state
        if problems:
            raise CheckpointError(f"no readable checkpoint in {self.folder}: {problems[0]}")
        return None

    def log(self, record: dict[str, Any]) -> None:
        record = {"time": time.time(), **record}
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
