"""The images: a local folder, or Kodak downloaded into a cache and verified by SHA-256."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from . import EvalError

KODAK_URL = "http://r0k.us/graphics/kodak/kodak/{name}"
IMAGE_SUFFIXES = (".png", ".ppm", ".pnm", ".bmp", ".tif", ".tiff")
MIN_SIDE = 161  # MS-SSIM with 5 scales and an 11-tap window needs more than 160 px a side


@dataclass(frozen=True)
class TestImage:
    """One RGB test image: its name (file stem) and pixels (H x W x 3, uint8)."""

    name: str
    pixels: np.ndarray

    @property
    def num_pixels(self) -> int:
        return int(self.pixels.shape[0] * self.pixels.shape[1])

    def pil(self) -> Image.Image:
        return Image.fromarray(self.pixels, "RGB")


def kodak_checksums() -> dict[str, str]:
    """File name → SHA-256 of the 24 Kodak PNGs, as shipped in ``kodak_eval/data``."""
    text = resources.files("kodak_eval").joinpath("data/kodak.sha256").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_cache_dir() -> Path:
    """``$KODAK_EVAL_CACHE``, else ``$XDG_CACHE_HOME/kodak_eval/kodak`` (``~/.cache`` default)."""
    if env := os.environ.get("KODAK_EVAL_CACHE"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kodak_eval" / "kodak"


def download_kodak(cache: Path, limit: int | None = None, timeout: float = 60.0) -> Path:
    """Fetch the Kodak PNGs missing from ``cache`` and verify every one against the checksums."""
    sums = kodak_checksums()
    names = sorted(sums)[:limit] if limit else sorted(sums)
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = cache / name
        if path.is_file() and sha256_file(path) == sums[name]:
            continue
        url = KODAK_URL.format(name=name)
        tmp = path.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                tmp.write_bytes(response.read())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EvalError(
                f"cannot download {url} ({exc}); pass --images DIR with the Kodak PNGs"
            ) from exc
        if sha256_file(tmp) != sums[name]:
            tmp.unlink(missing_ok=True)
            raise EvalError(f"checksum mismatch for {url}; refusing to use it")
        os.replace(tmp, path)
    return cache


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    if not folder.exists():
        raise EvalError(f"image folder not found: {folder}")
    if not folder.is_dir():
        raise EvalError(f"not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EvalError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def load_images(folder: Path, limit: int | None = None) -> list[TestImage]:
    """Load the (first ``limit``) images of ``folder`` as RGB."""
    images = []
    for path in list_images(folder)[:limit] if limit else list_images(folder):
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise EvalError(f"cannot read image {path}: {exc}") from exc
        if min(pixels.shape[:2]) < MIN_SIDE:
            raise EvalError(
                f"image {path.name} is {pixels.shape[1]}x{pixels.shape[0]}: MS-SSIM needs at "
                f"least {MIN_SIDE} px a side"
            )
        images.append(TestImage(name=path.stem, pixels=pixels))
    return images
