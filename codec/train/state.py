"""Training state folder: atomic checkpoints, resume, and a JSON-lines log."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

DEFAULT_ROOT = Path(os.environ.get("LQZ_TRAIN_DIR", Path.home() / ".cache" / "lqz" / "train"))


class RunState:
    """Files of one run: ``state.pt`` (latest), ``state.prev.pt`` and ``log.jsonl``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.latest = folder / "state.pt"
        self.previous = folder / "state.prev.pt"
        self.log_path = folder / "log.jsonl"

    def save(self, state: dict[str, Any]) -> None:
        """Write the checkpoint atomically, keeping the previous one."""
        tmp = self.folder / "state.tmp"
        torch.save(state, tmp)
        if self.latest.exists():
            os.replace(self.latest, self.previous)
        os.replace(tmp, self.latest)

    def load(self) -> dict[str, Any] | None:
        """The latest readable checkpoint, or None."""
        for path in (self.latest, self.previous):
            if path.exists():
                try:
                    return torch.load(path, map_location="cpu", weights_only=True)
                except Exception as exc:  # a torn file from a hard kill: fall back
                    print(f"could not read {path}: {exc}", flush=True)
        return None

    def log(self, record: dict[str, Any]) -> None:
        record = {"time": time.time(), **record}
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
