"""Model configuration: the one source of truth for the architecture's hyperparameters."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, fields

from ..leech.shell import DIM


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of the tokenizer (transforms) and the autoregressive prior."""

    channels: int = 128  # width N of the analysis/synthesis transforms
    groups: int = 16  # Λ24 token groups per latent position (24 * groups latent channels)
    kernel: int = 5  # kernel size of the strided convolutions
    stride_log2: int = 4  # four stride-2 stages: latent stride 16
    #: 0: the last stride-2 stage maps straight to the latent (Ballé layout). k > 0: all
    #: ``stride_log2`` stages keep ``channels`` and GDN, then a stride-1 k x k convolution maps
    #: to the latent (and its mirror opens the synthesis).
    latent_kernel: int = 0
    prior_channels: int = 128  # width of the prior's context network
    mixtures: int = 2  # components of the per-token pmf mixture
    #: code group 0 in three passes (row/col both even, both odd, the rest) instead of two
    #: checkerboard passes: its first pass has no context (:mod:`lqz.nn.schedule`)
    split_first_group: bool = False
    #: groups coded at each quality level (ascending); the level number goes into the bitstream
    levels: tuple[int, ...] = (2, 3, 4, 6, 8, 11, 16)
    #: residual Λ24 stages per latent slice (:class:`lqz.leech.LeechQuantizer`): token group ``t``
    #: codes slice ``t % groups`` at stage ``t // groups`` (all slices' stage 1, then stage 2, ...)
    stages: int = 1
    #: how the synthesis reads the stages: "sum" (each slice's residual sum, 24 channels per
    #: slice) or "concat" (every token group's codeword, 24 channels each, its own weights)
    stage_input: str = "sum"

    def __post_init__(self) -> None:
        if self.stage_input not in ("sum", "concat"):
            raise ValueError(f"stage_input must be 'sum' or 'concat', got {self.stage_input!r}")

    @property
    def stride(self) -> int:
        return 1 << self.stride_log2

    @property
    def latent_channels(self) -> int:
        """Channels of the analysis output and the synthesis input (24 per slice)."""
        return DIM * self.groups

    @property
    def synthesis_channels(self) -> int:
        """Channels of the synthesis input: the slices', or every token group's ("concat")."""
        return self.token_channels if self.stage_input == "concat" else self.latent_channels

    @property
    def token_groups(self) -> int:
        """Token groups per latent position: ``groups * stages`` (what levels count)."""
        return self.groups * self.stages

    @property
    def token_channels(self) -> int:
        """Channels of the codeword latent the prior reads: 24 per token group."""
        return DIM * self.token_groups

    def to_json(self) -> str:
        data = asdict(self)
        if data["stages"] == 1:  # one-stage configs keep the JSON (and weights files) they had
            del data["stages"], data["stage_input"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        if "levels" in data:
            data["levels"] = tuple(data["levels"])
        return cls(**data)

    def with_levels(self, text: str) -> ModelConfig:
        """This config with the levels of ``text`` ("1,2,4"); ValueError unless they are
        integers ascending within 1..token_groups."""
        try:
            levels = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"levels must be comma-separated integers, got {text!r}") from None
        if list(levels) != sorted(set(levels)) or levels[0] < 1 or levels[-1] > self.token_groups:
            raise ValueError(f"levels must ascend within 1..{self.token_groups}, got {text!r}")
        return dataclasses.replace(self, levels=levels)

    def groups_at(self, level: int) -> int:
        """Number of token groups coded at quality ``level`` (1-based)."""
        if not 1 <= level <= len(self.levels):
            raise ValueError(f"quality level must be in 1..{len(self.levels)}, got {level}")
        return self.levels[level - 1]
