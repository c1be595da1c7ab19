"""Python API: ``lqz.encode``, ``lqz.decode``, ``lqz.QUALITIES``. The model loads once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import format as fmt
from .errors import LqzError
from .images import prepare, restore
from .models import MODELS_DIR

DEFAULT_WEIGHTS = MODELS_DIR / "lqz-mse.safetensors"
DEFAULT_TILE_SIZE = 1024


class InvalidSetting(LqzError):
    """A quality level or bpp target outside what the model offers."""


@dataclass
class LoadedModel:
    """A model in eval mode with the id that .lqz files carry."""

    model: object
    model_id: bytes

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.model.config.levels) + 1))


def weights_path() -> Path:
    """The weights in use: ``$LQZ_WEIGHTS`` if set, else the shipped model."""
    return Path(os.environ.get("LQZ_WEIGHTS", DEFAULT_WEIGHTS))


@lru_cache(maxsize=4)
def _load(path: Path) -> LoadedModel:
    from .nn.weights import load_model, model_id

    return LoadedModel(model=load_model(path), model_id=model_id(path))


def loaded_model() -> LoadedModel:
    """The (cached) model of :func:`weights_path`."""
    return _load(weights_path())


def qualities() -> tuple[int, ...]:
    """Quality levels of the model in use, ascending (higher = more bits, better PSNR)."""
    return loaded_model().qualities


def default_quality() -> int:
    levels = qualities()
    return levels[len(levels) // 2]


def _encode_at(prepared, loaded: LoadedModel, quality: int, tile_size: int) -> bytes:
    from .nn.coding import encode_tile

    groups = loaded.model.config.groups_at(quality)
    header = fmt.Header(
        version=fmt.FORMAT_VERSION,
        model_id=loaded.model_id,
        quality=quality,
        fine=0,
        width=prepared.width,
        height=prepared.height,
        channels=1 if prepared.gray else 3,
        has_alpha=prepared.alpha is not None,
        tile_size=tile_size,
    )
    tiles = [
        encode_tile(loaded.model, prepared.rgb[y0:y1, x0:x1], groups)
        for x0, y0, x1, y1 in header.tile_boxes()
    ]
    alpha = fmt.compress_alpha(prepared.alpha) if prepared.alpha is not None else None
    return fmt.pack(header, tiles, alpha)


def encode(
    image: Image.Image | np.ndarray,
    quality: int | None = None,
    bpp: float | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
) -> bytes:
    """Compress an image to a complete ``.lqz`` file.

    ``quality`` is one of :data:`lqz.QUALITIES` (default: the middle one). ``bpp`` instead picks
    the highest level whose file is at or under the target (the lowest level if none is);
    bpp counts the whole file, header included, over width x height.
    """
    if quality is not None and bpp is not None:
        raise InvalidSetting("give either a quality level or a bpp target, not both")
    loaded = loaded_model()
    prepared = prepare(image)
    with torch.inference_mode():
        if bpp is None:
            quality = default_quality() if quality is None else quality
            if not _is_int(quality) or quality not in loaded.qualities:
                raise InvalidSetting(
                    f"quality must be one of {list(loaded.qualities)}, got {quality!r}"
                )
            return _encode_at(prepared, loaded, int(quality), tile_size)
        if not _is_real(bpp) or not bpp > 0:
            raise InvalidSetting(f"bpp target must be a positive number, got {bpp!r}")
        return _search_bpp(prepared, loaded, bpp, tile_size)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _search_bpp(prepared, loaded: LoadedModel, target: float, tile_size: int) -> bytes:
    """Binary search over levels (file size grows with the level)."""
    pixels = prepared.width * prepared.height
    levels = loaded.qualities
    lo, hi = 0, len(levels) - 1
    best: bytes | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = _encode_at(prepared, loaded, levels[mid], tile_size)
        if 8 * len(data) / pixels <= target:
            best, lo = data, mid + 1
        else:
            hi = mid - 1
    return best if best is not None else _encode_at(prepared, loaded, levels[0], tile_size)


def decode(data: bytes) -> Image.Image:
    """Decompress a ``.lqz`` file to a PIL image (L, LA, RGB or RGBA)."""
    from .nn.coding import decode_tile

    loaded = loaded_model()
    header, tiles, alpha_section = fmt.unpack(bytes(data), known_model_ids={loaded.model_id})
    groups = loaded.model.config.groups_at(header.quality)
    rgb = np.empty((header.height, header.width, 3), dtype=np.uint8)
    with torch.inference_mode():
        for (x0, y0, x1, y1), payload in zip(header.tile_boxes(), tiles, strict=True):
            rgb[y0:y1, x0:x1] = decode_tile(loaded.model, bytes(payload), groups, y1 - y0, x1 - x0)
    alpha = (
        fmt.decompress_alpha(alpha_section, header.width, header.height)
        if header.has_alpha and alpha_section is not None
        else None
    )
    return restore(rgb, header.channels == 1, alpha)
