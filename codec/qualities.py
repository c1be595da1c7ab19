"""The quality ladder: which model, at which of its levels, codes each user-facing quality.

One model per rate would cost one training run per rate. lqz ships few models, each with
several levels (groups of Λ24 tokens), and a ladder that picks, for each quality, the model and
level with the best PSNR at that rate (measured on held-out data, recorded in
``models/MODEL_CARD.md``). An ``.lqz`` header stores the model's id and that model's level, so a
file stays decodable whatever ladder a later release ships, as long as it ships the model.

A ladder is a JSON file next to the weights it names (``models/ladder.json``)::

    {"qualities": [{"weights": "lqz-mse-s16.safetensors", "level": 1}, ...]}

A rung with ``"lambda": lam`` codes with adaptive depth (format version 4): each latent position
keeps one of the group counts of the model's levels 1..``level``, chosen by the encoder at that
trade-off (:func:`lqz.tiles.tile_depths`); the file's header records the model, the level and
the depth-map flag, so a ladder has at most one such rung per (model, level).

or a single weights file, whose levels are then the qualities. Reading a ladder needs neither
torch nor the tensors: ids are file hashes and levels come from the safetensors metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .errors import WeightsError
from .models import MODELS_DIR

#: The shipped quality ladder and its main model (the one training continues from).
DEFAULT_LADDER = MODELS_DIR / "ladder.json"
DEFAULT_WEIGHTS = MODELS_DIR / "lqz-mse.safetensors"

#: The ``.lqz`` model id: the first bytes of the SHA-256 of the weights file.
MODEL_ID_BYTES = 8
#: Key of the model config (JSON) in the safetensors metadata.
CONFIG_KEY = "lqz_config"


def model_id(path: Path) -> bytes:
    """The model identifier written into .lqz files: first 8 bytes of SHA-256 of the file."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).digest()[:MODEL_ID_BYTES]
    except OSError as exc:
        raise WeightsError(f"cannot read model weights {path}: {exc.strerror}") from None


def model_levels(path: Path) -> tuple[int, ...]:
    """Groups per level of the weights at ``path``, from their metadata (no tensors read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise WeightsError(f"cannot read model weights {path}: {exc}") from None
    try:
        return tuple(json.loads(meta[CONFIG_KEY])["levels"])
    except (KeyError, TypeError, ValueError):
        raise WeightsError(f"{path} has no lqz model config in its metadata") from None


@dataclass(frozen=True)
class Rung:
    """One quality: ``level`` (1-based) of the model in ``weights``; ``lam``: with adaptive
    depth at that trade-off (squared error of pixels in [0, 1] per bit), else None."""

    weights: Path
    level: int
    lam: float | None = None

    @property
    def depth_maps(self) -> bool:
        return self.lam is not None


@dataclass(frozen=True)
class Ladder:
    """Qualities 1..n, ascending in rate and PSNR, each a (model, level) rung."""

    rungs: tuple[Rung, ...]

    @classmethod
    def load(cls, path: Path) -> Ladder:
        """A ladder from a JSON ladder file, or every level of one weights file."""
        path = Path(path)
        if path.suffix != ".json":
            return cls(tuple(Rung(path, i) for i in range(1, len(model_levels(path)) + 1)))
        try:
            spec = json.loads(path.read_text())
            entries = [(e["weights"], e["level"], e.get("lambda")) for e in spec["qualities"]]
        except OSError as exc:
            raise WeightsError(f"cannot read quality ladder {path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise WeightsError(f"{path} is not a quality ladder (see lqz/qualities.py)") from None
        if not entries:
            raise WeightsError(f"quality ladder {path} is empty")
        rungs = tuple(Rung(path.parent / str(w), level, lam) for w, level, lam in entries)
        counts = {w: len(model_levels(w)) for w in {r.weights for r in rungs}}  # once per file
        for rung in rungs:
            count = counts[rung.weights]
            if not isinstance(rung.level, int) or not 1 <= rung.level <= count:
                raise WeightsError(
                    f"{path}: level {rung.level!r} of {rung.weights.name}, which has 1..{count}"
                )
            if rung.lam is not None and (
                isinstance(rung.lam, bool)
                or not isinstance(rung.lam, int | float)
                or not 0 <= rung.lam < float("inf")
            ):
                raise WeightsError(f"{path}: lambda {rung.lam!r} is not a number >= 0")
        keys = [(r.weights, r.level, r.depth_maps) for r in rungs]
        if len(set(keys)) != len(keys):
            raise WeightsError(f"{path}: two qualities code the same level of the same model")
        return cls(rungs)

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.rungs) + 1))

    @cached_property
    def model_ids(self) -> dict[Path, bytes]:
        """Id of every weights file the ladder uses, in order of first use."""
        return {r.weights: model_id(r.weights) for r in self.rungs}

    @property
    def identity(self) -> str:
        """Hex id of the ladder as a whole: changes when any model or rung does."""
        h = hashlib.sha256()
        for rung in self.rungs:
            h.update(self.model_ids[rung.weights] + rung.level.to_bytes(2, "little"))
            if rung.lam is not None:  # one-level-per-image ladders keep the identity they had
                h.update(repr(float(rung.lam)).encode())
        return h.hexdigest()[:16]

    def rung(self, quality: int) -> Rung:
        return self.rungs[quality - 1]

    def weights_for(self, model: bytes) -> Path | None:
        """The weights file whose id is ``model``, if the ladder has it."""
        return next((p for p, i in self.model_ids.items() if i == bytes(model)), None)

    def quality_of(self, model: bytes, level: int, depth_maps: bool = False) -> int | None:
        """The quality whose rung is ``level`` of model ``model``, with adaptive depth or
        not, if any."""
        for quality, rung in enumerate(self.rungs, start=1):
            if (rung.level, rung.depth_maps) == (level, depth_maps) and self.model_ids[
                rung.weights
            ] == bytes(model):
                return quality
        return None


def ladder_path() -> Path:
    """The ladder or weights file in use: ``$LQZ_WEIGHTS`` if set, else the shipped ladder."""
    if "LQZ_WEIGHTS" in os.environ:
        return Path(os.environ["LQZ_WEIGHTS"])
    return DEFAULT_LADDER if DEFAULT_LADDER.exists() else DEFAULT_WEIGHTS
