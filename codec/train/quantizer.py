"""The trainer's Λ24 quantizer: the nearest-codeword search on the device the latent is on.

:class:`lqz.leech.LeechQuantizer` searches with the numba kernel on the CPU and looks codewords
up in a CPU table; on a GPU every step would copy the latent to the host and back.
:class:`DeviceQuantizer` computes the same codewords, indices and straight-through gradient, but
on CUDA searches with ``lqz.leech.quantize_torch`` and keeps the codebook on the device. It has
no weights: a model's state dict is the same with either.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from ..leech import DIM, LeechQuantizer, codebook, quantize
from ..nn.tokenizer import Tokenizer

_BOOKS: dict[torch.device, torch.Tensor] = {}


def device_codebook(device: torch.device) -> torch.Tensor:
    """The unit-norm codebook (196560, 24) float32 on ``device`` (cached)."""
    device = torch.device(device)
    if device not in _BOOKS:
        _BOOKS[device] = codebook().to(device)
    return _BOOKS[device]


def search_function(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The nearest-codeword search for latents on ``device``: (..., 24) -> int64 (...)."""
    if torch.device(device).type == "cuda":
        from ..leech import quantize_torch  # the GPU search; only the CUDA path needs it

        return quantize_torch
    return quantize


class DeviceQuantizer(LeechQuantizer):
    """:class:`LeechQuantizer` with the search and codebook on the latent's device.

    Always works in float32 (also under autocast: the search must see the latent exactly).
    ``timer``: a context-manager factory wrapped around each search (the trainer's timing).
    """

    def __init__(
        self, timer: Callable[[str], AbstractContextManager] | None = None, stages: int = 1
    ) -> None:
        super().__init__(stages)
        self.timer = timer

    def forward(
        self, latent: torch.Tensor, needed: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(latent.device.type, enabled=False):
            return self._quantize(latent.float(), needed)

    def _search(self, unit: torch.Tensor) -> torch.Tensor:
        with self.timer("search") if self.timer else nullcontext():
            return search_function(unit.device)(unit).to(unit.device)

    def _codewords(self, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return device_codebook(like.device)[indices]


def use_device_quantizer(
    tokenizer: Tokenizer, timer: Callable[[str], AbstractContextManager] | None = None
) -> None:
    """Give ``tokenizer`` a :class:`DeviceQuantizer` (its weights are unchanged)."""
    tokenizer.quantizer = DeviceQuantizer(timer, tokenizer.config.stages)


def latent_of(tokenizer: Tokenizer, indices: torch.Tensor) -> torch.Tensor:
    """:meth:`Tokenizer.latent_of` on the indices' device: (B, k, h, w) -> (B, 24T, h, w)."""
    b, k, h, w = indices.shape
    codewords = device_codebook(indices.device)[indices]
    return tokenizer.padded(codewords.movedim(-1, 2).reshape(b, k * DIM, h, w))


@torch.no_grad()
def decode(tokenizer: Tokenizer, indices: torch.Tensor) -> torch.Tensor:
    """:meth:`Tokenizer.decode` on the indices' device: image (B, 3, H, W) in [0, 1]."""
    return tokenizer.synthesize(latent_of(tokenizer, indices)).clamp(0, 1)
