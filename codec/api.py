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
from .errors import ImageTooLarge, LqzError
from .images import prepare, restore
from .models import MODELS_DIR

DEFAULT_WEIGHTS = MODELS_DIR / "lqz-mse.safetensors"
DEFAULT_TILE_SIZE = 1024
#: Most pixels :func:`decode` decodes unless told otherwise (2^28, e.g. 16384 x 16384): a valid
#: file of 2 kB can declare 65535 x 65535 pixels, 12.9 GB of RGB.
DEFAULT_MAX_PIXELS = 2**28
#: The numba kernels that encoding and decoding call from Python, as (module, name); their
#: callees compile with them. :func:`kernels_cold` looks them up in numba's on-disk cache.
_CODING_KERNELS = {
    "encode": (("lqz.entropy.kernels", "encode_kernel"), ("lqz.leech.search", "_nearest_batch")),
    "decode": (
        ("lqz.entropy.kernels", "shape_keep_kernel"),
        ("lqz.entropy.kernels", "kept_support_kernel"),
        ("lqz.entropy.kernels", "details_kernel"),
    ),
}


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


def kernels_cold(operation: str) -> bool | None:
    """Whether ``operation`` (``"encode"`` or ``"decode"``) in this process will first compile
    numba kernels (tens of seconds) because numba's on-disk cache has no code for them on this
    machine: the first run after an install, a numba upgrade or a change of their source.
    ``None`` when it cannot tell.

    Cheap (reads a few small cache index files); it compiles nothing.
    """
    from importlib import import_module

    found = False
    try:
        for module, name in _CODING_KERNELS[operation]:
            dispatcher = getattr(import_module(module), name, None)
            if dispatcher is None:
                continue
            found = True
            if dispatcher.overloads:
                continue  # already compiled or loaded in this process
            magic = dispatcher.targetctx.codegen().magic_tuple()
            index = dispatcher._cache._cache_file._load_index()  # {} when missing or stale
            if not any(key[1] == magic for key in index):
                return True
    except Exception:  # numba internals changed, or no caching: do not guess
        return None
    return False if found else None


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


def check_size(header: fmt.Header, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Raise :class:`~lqz.errors.ImageTooLarge` if the header declares more than ``max_pixels``
    pixels (``0`` or ``None``: no limit)."""
    if max_pixels is not None and (not _is_int(max_pixels) or max_pixels < 0):
        raise InvalidSetting(f"max_pixels must be a whole number >= 0, got {max_pixels!r}")
    pixels = header.width * header.height
    if max_pixels and pixels > max_pixels:
        raise ImageTooLarge(
            f"image is {header.width}x{header.height} = {pixels:,} pixels, over the decoding "
            f"limit of {int(max_pixels):,} (raise it with max_pixels or lqz decode --max-pixels; "
            "0 = no limit)"
        )


def decode(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decompress a ``.lqz`` file to a PIL image (L, LA, RGB or RGBA).

    A file that declares more than ``max_pixels`` pixels (default :data:`DEFAULT_MAX_PIXELS`,
    2^28; ``0`` or ``None``: no limit) raises :class:`~lqz.errors.ImageTooLarge` before anything
    of its size is allocated.
    """
    from .nn.coding import decode_tile

    data = bytes(data)
    check_size(fmt.read_header(data), max_pixels)
    loaded = loaded_model()
    header, tiles, alpha_section = fmt.unpack(data, known_model_ids={loaded.model_id})
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
