"""Turning user images into what the codec codes (RGB planes, gray flag, alpha) and back."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from .errors import UnsupportedImage
from .format import MAX_DIMENSION

#: Largest width or height the .lqz format stores.
MAX_SIDE = MAX_DIMENSION

#: Modes with more than 8 bits per sample that :func:`prepare` reduces (with a warning).
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
#: Raw modes of 16-bit samples read into 8-bit modes ("RGB;16" alone is packed 5-6-5, not deep).
_DEEP_RAWMODE = re.compile(r"(;16[BLN]$)|(^L;16$)")


@dataclass(frozen=True)
class PreparedImage:
    """An image as coded: uint8 RGB (H, W, 3), whether it was gray, and its alpha plane."""

    rgb: np.ndarray
    gray: bool
    alpha: np.ndarray | None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise UnsupportedImage(f"numpy images must be uint8, got {array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array, mode="L")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        if array.shape[2] == 1:
            return Image.fromarray(array[:, :, 0], mode="L")
        return Image.fromarray(array, mode="RGB" if array.shape[2] == 3 else "RGBA")
    raise UnsupportedImage(
        f"numpy images must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}"
    )


def reduced_depth(image: Image.Image) -> bool:
    """Whether Pillow reads this not yet loaded image at 8 bits from more in the file.

    16-bit RGB, RGBA and LA PNGs (and TIFFs) open as 8-bit modes, the low bits dropped on load;
    only the raw mode of the undecoded tiles tells.
    """
    if image.mode in _DEEP_MODES:
        return False  # explicit 16/32-bit mode: _to_8bit reduces it
    for tile in getattr(image, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and _DEEP_RAWMODE.search(rawmode):
            return True
    return False


def _to_8bit(image: Image.Image) -> Image.Image:
    """Reduce 16-bit and 32-bit integer/float modes to 8-bit gray, with a warning."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        warnings.warn("16-bit image reduced to 8 bits", stacklevel=3)
        data = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(data / 257.0), 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        warnings.warn("floating-point image reduced to 8 bits (assumed range 0..255)", stacklevel=3)
        data = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(data), 0, 255).astype(np.uint8), "L")
    return image


def prepare(image: Image.Image | np.ndarray) -> PreparedImage:
    """EXIF orientation applied; gray kept as a flag; palette/CMYK/... converted to RGB."""
    if isinstance(image, np.ndarray):
        image = _from_array(image)
    if not isinstance(image, Image.Image):
        raise UnsupportedImage(f"expected a PIL image or a uint8 numpy array, got {type(image)}")
    if max(image.size) > MAX_SIDE:
        width, height = image.size
        raise UnsupportedImage(f"image is {width}x{height}: lqz codes at most {MAX_SIDE} per side")
    if reduced_depth(image):
        warnings.warn("16-bit image reduced to 8 bits", stacklevel=2)
    image = ImageOps.exif_transpose(image) or image
    image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        "transparency" in image.info and image.mode in ("L", "RGB")
    )
    alpha = np.asarray(image.convert("RGBA").getchannel("A")) if has_alpha else None
    if alpha is not None and bool((alpha == 255).all()):
        alpha = None  # fully opaque: nothing to keep
    gray = image.mode in ("1", "L", "LA", "La")
    rgb = np.array(image.convert("RGB"), dtype=np.uint8)  # writable: torch.from_numpy warns
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UnsupportedImage("image has no pixels")
    return PreparedImage(rgb=rgb, gray=gray, alpha=alpha)


def restore(rgb: np.ndarray, gray: bool, alpha: np.ndarray | None) -> Image.Image:
    """The decoded PIL image: L/LA for gray input, RGB/RGBA otherwise."""
    if gray:
        luma = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        image = Image.fromarray(luma, "L")
        if alpha is not None:
            image = Image.merge("LA", (image, Image.fromarray(alpha, "L")))
        return image
    image = Image.fromarray(rgb, "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    return image
