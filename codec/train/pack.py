"""Training pack: random crops of a folder of images in one file a GPU machine can read.

``python -m lqz.train.pack SRC --out PACK [--max-mib 40] [--crop 256] [--seed 0]``

The pack is an uncompressed ``.npz`` of two uint8 arrays: ``crops`` (N, S, S, 3), random S x S
crops of the training images (every image but the last ``--holdout`` by name, drawn in
proportion to their area), and ``holdout`` (H, V, V, 3), the trainer's validation crops of the
held-out images (:func:`lqz.train.data.held_out_crops`). N is as large as ``--max-mib`` allows;
the file never exceeds it. Reading it needs numpy only (no image decoder); the same folder and
seed give the same file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ..errors import OutputError, TrainingDataError
from .data import heldout_size, list_images, load_rgb, validation_crops
from .entry import run_main

#: The pack's cap: with the repository (~14 MiB) it fits the GPU window's 64 MiB carry limit.
DEFAULT_MAX_MIB = 40.0
DEFAULT_CROP = 256
DEFAULT_HOLDOUT = 8
#: Bytes kept free for the zip and .npy headers of the two arrays.
HEADER_RESERVE = 4096


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, UnidentifiedImageError) as exc:
        raise TrainingDataError(f"cannot read training image {path}: {exc}") from None


def build_pack(
    src: Path,
    max_mib: float = DEFAULT_MAX_MIB,
    crop: int = DEFAULT_CROP,
    seed: int = 0,
    holdout: int = DEFAULT_HOLDOUT,
) -> tuple[np.ndarray, np.ndarray]:
    """The (crops, holdout) arrays of the pack of the images in ``src``."""
    paths = list_images(src)
    if len(paths) <= holdout:
        raise TrainingDataError(f"need more than {holdout} images in {src}, found {len(paths)}")
    held = [load_rgb(p) for p in paths[len(paths) - holdout :]]
    val = validation_crops(held, heldout_size([im.shape for im in held]))
    train = [(p, image_size(p)) for p in paths[: len(paths) - holdout]]
    train = [(p, s) for p, s in train if min(s) >= crop]
    if not train:
        raise TrainingDataError(f"no training image in {src} is at least {crop}x{crop}")
    room = int(max_mib * 2**20) - HEADER_RESERVE - val.nbytes
    count = room // (crop * crop * 3)
    if count < 1:
        raise TrainingDataError(f"--max-mib {max_mib} leaves no room for one {crop}x{crop} crop")
    rng = np.random.default_rng(seed)
    area = np.array([h * w for _, (h, w) in train], dtype=np.float64)
    chosen = np.sort(rng.choice(len(train), size=count, p=area / area.sum()))
    crops = np.empty((count, crop, crop, 3), dtype=np.uint8)
    for k in np.unique(chosen):
        image = load_rgb(train[k][0])
        for i in np.nonzero(chosen == k)[0]:
            y = rng.integers(0, image.shape[0] - crop + 1)
            x = rng.integers(0, image.shape[1] - crop + 1)
            crops[i] = image[y : y + crop, x : x + crop]
    return crops, val


def write_pack(crops: np.ndarray, holdout: np.ndarray, out: Path, force: bool = False) -> int:
    """Write the pack atomically; returns its size in bytes."""
    if out.exists() and not force:
        raise OutputError(f"{out} exists (use --force to overwrite)")
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            np.savez(f, crops=crops, holdout=holdout)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {exc.strerror}") from None
    return out.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lqz.train.pack",
        description=__doc__.split("\n\n")[0],
        epilog="Write it to a git-ignored folder, e.g. train_data/pack.npz.",
    )
    parser.add_argument("src", type=Path, help="folder of training images")
    parser.add_argument("--out", type=Path, required=True, help="pack file to write (.npz)")
    parser.add_argument("--max-mib", type=float, default=DEFAULT_MAX_MIB, help="size cap (MiB)")
    parser.add_argument("--crop", type=int, default=DEFAULT_CROP, help="side of the crops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=int, default=DEFAULT_HOLDOUT, help="held-out images")
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    args = parser.parse_args(argv)
    if args.crop < 16 or args.max_mib <= 0 or args.holdout < 1:
        parser.error("--crop must be at least 16, --max-mib positive, --holdout at least 1")
    if args.out.exists() and not args.force:
        raise OutputError(f"{args.out} exists (use --force to overwrite)")
    crops, holdout = build_pack(args.src, args.max_mib, args.crop, args.seed, args.holdout)
    size = write_pack(crops, holdout, args.out, args.force)
    print(
        f"{len(crops)} crops {args.crop}x{args.crop} + {len(holdout)} held-out "
        f"{holdout.shape[1]}x{holdout.shape[2]} -> {args.out} ({size / 2**20:.2f} MiB)"
    )


if __name__ == "__main__":
    run_main(main, "lqz.train.pack")
