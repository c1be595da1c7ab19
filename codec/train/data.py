"""Training data: a folder of images decoded once into uint8 arrays, random crops and flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_rgb(path: Path) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) array."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


class CropSampler:
    """Random crops (with flips) from images held in memory as uint8 arrays."""

    def __init__(self, images: list[np.ndarray], crop: int, seed: int = 0) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop}")
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        # Sample images in proportion to their area, so large photos are not under-used.
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = area / area.sum()

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


def validation_crops(images: list[np.ndarray], crop: int) -> torch.Tensor:
    """Fixed centre crops of held-out images, (N, 3, crop, crop) in [0, 1]."""
    crops = []
    for im in images:
        if min(im.shape[:2]) < crop:
            continue
        y = (im.shape[0] - crop) // 2
        x = (im.shape[1] - crop) // 2
        crops.append(im[y : y + crop, x : x + crop])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def held_out_crops(images: list[np.ndarray]) -> torch.Tensor:
    """The validation crops of the held-out images: centred squares of the largest multiple of
    16 up to 256 that fits every one of them."""
    size = min(256, min(min(im.shape[:2]) for im in images)) // 16 * 16
    return validation_crops(images, size)
