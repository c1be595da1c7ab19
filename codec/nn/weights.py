"""Shipped weights: safetensors (no pickle) with the model config in the metadata."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..qualities import CONFIG_KEY, WeightsError, model_id
from .config import ModelConfig
from .model import LqzModel

__all__ = ["WeightsError", "load_model", "model_id", "read_weights", "save_weights"]


def save_weights(model: LqzModel, path: Path, half: bool = True) -> None:
    """Write the model's weights (fp16 when ``half``) and config to ``path``."""
    dtype = torch.float16 if half else torch.float32
    tensors = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    save_file(tensors, str(path), metadata={CONFIG_KEY: model.config.to_json()})


def read_weights(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and float32 state dict from a safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise WeightsError(f"cannot read model weights {path}: {exc}") from None
    if CONFIG_KEY not in meta:
        raise WeightsError(f"{path} has no lqz model config in its metadata")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return ModelConfig.from_json(meta[CONFIG_KEY]), state


def load_model(path: Path) -> LqzModel:
    """An LqzModel in eval mode with the weights of ``path``."""
    config, state = read_weights(path)
    model = LqzModel(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not match the lqz architecture: {exc}") from None
    return model.eval()
