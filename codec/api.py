"""Python API: ``lqz.encode``, ``lqz.decode``, ``lqz.QUALITIES``. The model loads once."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import format as fmt
from .constants import DEFAULT_MAX_PIXELS
from .effort import DEFAULT_EFFORT, MAX_EFFORT
from .errors import ImageTooLarge, ImplausibleHeader, InvalidSetting, LqzError, UnknownModel
from .images import prepare, restore
from .qualities import Ladder, ladder_path
from .threads import torch_threads_kept

DEFAULT_TILE_SIZE = 1024
#: The numba kernels that encoding and decoding call from Python, as (module, name); their
#: callees compile with them. :func:`kernels_cold` looks them up in numba's on-disk cache.
_CODING_KERNELS = {
    "encode": (
        ("lqz.entropy.kernels", "encode_kernel"),
        ("lqz.leech.search", "_nearest_batch"),
        ("lqz.nn.exact_kernels", "grid_gelu_kernel"),
    ),
    "decode": (
        ("lqz.nn.exact_kernels", "grid_gelu_kernel"),
        ("lqz.entropy.kernels", "shape_keep_kernel"),
        ("lqz.entropy.kernels", "kept_support_kernel"),
        ("lqz.entropy.kernels", "details_kernel"),
    ),
}


@dataclass
class LoadedModel:
    """A model in eval mode with the id that .lqz files carry."""

    model: object
    model_id: bytes


@lru_cache(maxsize=4)
def _load(path: Path, expected_id: bytes) -> LoadedModel:
    from .nn.weights import load_model

    # models may load lazily inside encode's inference mode; their parameters must be ordinary
    # tensors all the same, for the encoder's refinement steps (autograd) to use them
    with torch.inference_mode(False):
        model = load_model(path)
    return LoadedModel(model=model, model_id=expected_id)


@dataclass(frozen=True)
class ModelSet:
    """The models of a quality ladder; each loads on first use (and once)."""

    ladder: Ladder

    @property
    def qualities(self) -> tuple[int, ...]:
        return self.ladder.qualities

    @property
    def identity(self) -> str:
        return self.ladder.identity

    def at(self, quality: int) -> tuple[LoadedModel, int]:
        """The model and its level that code ``quality``."""
        rung = self.ladder.rung(quality)
        return _load(rung.weights, self.ladder.model_ids[rung.weights]), rung.level

    def lam(self, quality: int) -> float | None:
        """The adaptive-depth trade-off of ``quality``, or None (one depth everywhere)."""
        return self.ladder.rung(quality).lam

    def for_header(self, header: fmt.Header) -> tuple[LoadedModel, int]:
        """The model and group count that decode a file with ``header`` (already checked to
        name one of :attr:`model_ids`)."""
        path = self.ladder.weights_for(header.model_id)
        assert path is not None
        loaded = _load(path, header.model_id)
        levels = loaded.model.config.levels
        if not 1 <= header.level <= len(levels):
            raise ImplausibleHeader(
                f"level {header.level} is not a level of model {header.model_id.hex()} "
                f"(1..{len(levels)})"
            )
        return loaded, levels[header.level - 1]

    def runs(self) -> list[tuple[int, ...]]:
        """The qualities split into maximal runs that use one model, ascending."""
        numbered = enumerate(self.ladder.rungs, start=1)
        return [tuple(q for q, _ in run) for _, run in groupby(numbered, lambda r: r[1].weights)]

    @property
    def model_ids(self) -> set[bytes]:
        return set(self.ladder.model_ids.values())


@lru_cache(maxsize=4)
def _model_set(path: Path) -> ModelSet:
    return ModelSet(Ladder.load(path))


def model_set() -> ModelSet:
    """The (cached) models of the ladder at :func:`lqz.qualities.ladder_path`; WeightsError if
    unusable."""
    return _model_set(ladder_path())


def clear_cache() -> None:
    """Forget loaded ladders and models (after ``$LQZ_WEIGHTS`` changes)."""
    _model_set.cache_clear()
    _load.cache_clear()


def qualities() -> tuple[int, ...]:
    """Quality levels in use, ascending (higher = more bits, better PSNR)."""
    return model_set().qualities


def quality_of(header: fmt.Header) -> int | None:
    """The quality a file with ``header`` was coded at, if the ladder in use has its model."""
    try:
        return model_set().ladder.quality_of(header.model_id, header.level, header.depth_maps)
    except LqzError:
        return None


def writer() -> str:
    """What this release records as the writer of the files it makes (``"lqz 0.1.0"``)."""
    from . import __version__

    return f"lqz {__version__}"


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


def _encode_at(prepared, models: ModelSet, quality: int, tile_size: int, effort: int) -> bytes:
    from .tiles import encode_tile

    loaded, level = models.at(quality)
    config = loaded.model.config
    groups = config.groups_at(level)
    lam = models.lam(quality)
    choices = None if lam is None else config.levels[:level]
    header = fmt.Header(
        version=fmt.FORMAT_VERSION if lam is None else fmt.DEPTH_MAP_VERSION,
        model_id=loaded.model_id,
        level=level,
        fine=0,
        width=prepared.width,
        height=prepared.height,
        channels=1 if prepared.gray else 3,
        has_alpha=prepared.alpha is not None,
        tile_size=tile_size,
        writer=writer(),
        depth_maps=lam is not None,
    )
    tiles = [
        encode_tile(loaded.model, prepared.rgb[y0:y1, x0:x1], groups, effort, choices, lam or 0.0)
        for x0, y0, x1, y1 in header.tile_boxes()
    ]
    alpha = fmt.compress_alpha(prepared.alpha) if prepared.alpha is not None else None
    return fmt.pack(header, tiles, alpha)


def encode(
    image: Image.Image | np.ndarray,
    quality: int | None = None,
    bpp: float | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    effort: int = DEFAULT_EFFORT,
) -> bytes:
    """Compress an image to a complete ``.lqz`` file.

    ``quality`` is one of :data:`lqz.QUALITIES` (default: the middle one). ``bpp`` instead picks
    the highest level whose file is at or under the target (the lowest level if none is);
    bpp counts the whole file, header included, over width x height. ``effort``: encoder-side
    refinement steps (0..:data:`MAX_EFFORT`; more is slower and usually a little better).
    Of a multi-frame image (animated GIF, PNG or WebP) the current frame is coded, with a warning.
    """
    if quality is not None and bpp is not None:
        raise InvalidSetting("give either a quality level or a bpp target, not both")
    if not _is_int(effort) or not 0 <= effort <= MAX_EFFORT:
        raise InvalidSetting(f"effort must be a whole number in 0..{MAX_EFFORT}, got {effort!r}")
    effort = int(effort)
    models = model_set()
    prepared = prepare(image)
    frames = getattr(image, "n_frames", 1) if isinstance(image, Image.Image) else 1
    if frames > 1:
        frame = image.tell()
        which = "the first" if frame == 0 else f"frame {frame + 1}"
        warnings.warn(f"{frames} frames: only {which} is coded", stacklevel=2)
    with torch.inference_mode(), torch_threads_kept():
        if bpp is None:
            quality = default_quality() if quality is None else quality
            if not _is_int(quality) or quality not in models.qualities:
                raise InvalidSetting(
                    f"quality must be one of {list(models.qualities)}, got {quality!r}"
                )
            return _encode_at(prepared, models, int(quality), tile_size, effort)
        if not _is_real(bpp) or not bpp > 0:
            raise InvalidSetting(f"bpp target must be a positive number, got {bpp!r}")
        return _search_bpp(prepared, models, bpp, tile_size, effort)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _search_bpp(prepared, models: ModelSet, target: float, tile_size: int, effort: int) -> bytes:
    """The highest quality whose file is at or under ``target`` bpp (else the lowest quality).

    File size grows with the level within one model (its groups are nested), not necessarily
    across the ladder's seams on tiny images: binary search each model's run of qualities, the
    highest run first.
    """
    pixels = prepared.width * prepared.height
    for run in reversed(models.runs()):
        lo, hi = 0, len(run) - 1
        best: bytes | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            data = _encode_at(prepared, models, run[mid], tile_size, effort)
            if 8 * len(data) / pixels <= target:
                best, lo = data, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best
    return _encode_at(prepared, models, models.qualities[0], tile_size, effort)


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
    from .tiles import decode_tile

    data = bytes(data)
    check_size(fmt.read_header(data), max_pixels)
    models = model_set()
    try:
        header, tiles, alpha_section = fmt.unpack(data, known_model_ids=models.model_ids)
    except UnknownModel:
        header = fmt.read_header(data)
        raise UnknownModel(
            f"the .lqz file needs model {header.model_id.hex()}, which {writer()} does not "
            f"ship (file written by {fmt.describe_writer(header)})"
        ) from None
    loaded, groups = models.for_header(header)
    # The alpha plane first: it costs at most width x height bytes of inflating, and a corrupt
    # one then fails before the tiles' far costlier decoding.
    alpha = (
        fmt.decompress_alpha(alpha_section, header.width, header.height)
        if header.has_alpha and alpha_section is not None
        else None
    )
    rgb = np.empty((header.height, header.width, 3), dtype=np.uint8)
    exact = header.version >= fmt.EXACT_PRIOR_VERSION
    choices = loaded.model.config.levels[: header.level] if header.depth_maps else None
    with torch.inference_mode(), torch_threads_kept():
        for (x0, y0, x1, y1), payload in zip(header.tile_boxes(), tiles, strict=True):
            rgb[y0:y1, x0:x1] = decode_tile(
                loaded.model, bytes(payload), groups, y1 - y0, x1 - x0, exact, choices
            )
    return restore(rgb, header.channels == 1, alpha)
