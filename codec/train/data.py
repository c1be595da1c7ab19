"""Training data: a folder of images decoded once into uint8 arrays, or a training pack
(:mod:`lqz.train.pack`); random crops and flips, on the CPU or on the training device."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import TrainingDataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise TrainingDataError(
            f"cannot list training images in {folder}: {exc.strerror}"
        ) from None


def load_rgb(path: Path) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) array."""
    from PIL import Image, UnidentifiedImageError  # not needed where training reads a pack

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise TrainingDataError(f"cannot read training image {path}: {exc}") from None


class CropSampler:
    """Random crops (with flips) from images held in memory as uint8 arrays."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int = 0) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise TrainingDataError(f"no training image is at least {crop}x{crop}")
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        # Sample images in proportion to their area, so large photos are not under-used.
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = area / area.sum()

    def reseed(self, seed: int | list[int]) -> None:
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        """A float batch (size, 3, crop, crop) in [0, 1]."""
        c = self.crop
        out = np.empty((size, c, c, 3), dtype=np.uint8)
        for i, k in enumerate(self.rng.choice(len(self.images), size=size, p=self.weights)):
            im = self.images[k]
            y = self.rng.integers(0, im.shape[0] - c + 1)
            x = self.rng.integers(0, im.shape[1] - c + 1)
            patch = im[y : y + c, x : x + c]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


class DeviceCrops:
    """Random crops (with flips) of equal-size uint8 images (N, S, S, 3) held on the training
    device, drawn there: one gather per batch, nothing crosses from the host."""

    def __init__(self, images: torch.Tensor, crop: int, seed: int = 0) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
            raise TrainingDataError("training crops must be uint8 (N, S, S, 3)")
        if min(images.shape[1:3]) < crop:
            raise TrainingDataError(
                f"training crops are {images.shape[1]}x{images.shape[2]}, smaller than {crop}"
            )
        self.images = images
        self.crop = crop
        self.generator = torch.Generator(device=images.device)
        self.reseed(seed)

    def reseed(self, seed: int | list[int]) -> None:
        values = [seed] if isinstance(seed, int) else seed
        self.generator.manual_seed(int(np.random.SeedSequence(values).generate_state(1)[0]))

    def _uniform(self, high: int, size: int) -> torch.Tensor:
        g = self.generator
        return torch.randint(high, (size,), generator=g, device=self.images.device)

    def batch(self, size: int) -> torch.Tensor:
        """A float batch (size, 3, crop, crop) in [0, 1] on the images' device."""
        n, h, w, _ = self.images.shape
        c = self.crop
        k = self._uniform(n, size)
        y = self._uniform(h - c + 1, size)
        x = self._uniform(w - c + 1, size)
        span = torch.arange(c, device=self.images.device)
        flip_x, flip_y = self._uniform(2, size).bool(), self._uniform(2, size).bool()
        rows = y[:, None] + torch.where(flip_y[:, None], c - 1 - span, span)
        cols = x[:, None] + torch.where(flip_x[:, None], c - 1 - span, span)
        patch = self.images[k[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B,c,c,3)
        return patch.permute(0, 3, 1, 2).float().div_(255.0)


def validation_crops(images: list[np.ndarray], crop: int) -> np.ndarray:
    """Fixed centre crops of held-out images, uint8 (N, crop, crop, 3)."""
    crops = []
    for im in images:
        if min(im.shape[:2]) < crop:
            continue
        y = (im.shape[0] - crop) // 2
        x = (im.shape[1] - crop) // 2
        crops.append(im[y : y + crop, x : x + crop])
    return np.stack(crops)


def heldout_size(shapes: list[tuple[int, ...]]) -> int:
    """Side of the validation crops: the largest multiple of 16 up to 256 that fits every
    held-out image."""
    size = min(256, min(min(s[:2]) for s in shapes)) // 16 * 16
    if size < 16:
        raise TrainingDataError("held-out images must be at least 16x16")
    return size


def held_out_crops(images: list[np.ndarray]) -> torch.Tensor:
    """The validation crops of the held-out images (centred squares of :func:`heldout_size`),
    float (N, 3, S, S) in [0, 1]."""
    return to_float(validation_crops(images, heldout_size([im.shape for im in images])))


def to_float(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    crops = torch.as_tensor(crops)
    return crops.permute(0, 3, 1, 2).float().div_(255.0)


def load_pack(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(training crops, held-out crops) of a training pack, uint8 (N, S, S, 3) each."""
    try:
        with np.load(path, allow_pickle=False) as pack:
            crops, holdout = pack["crops"], pack["holdout"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise TrainingDataError(f"{path} is not an lqz training pack: {exc}") from None
    for name, array in (("crops", crops), ("holdout", holdout)):
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or not len(array):
            raise TrainingDataError(f"{path}: {name} must be non-empty uint8 (N, H, W, 3)")
    return crops, holdout
