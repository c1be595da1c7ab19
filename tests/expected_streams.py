"""Frozen bitstreams: small ``.lqz`` files written by the shipped models, with digests of what
they decode to (``tests/expected/manifest.json``; checked by ``tests/test_expected_streams.py``).

Writing them is deliberate, never a side effect of testing::

    python tests/expected_streams.py            # write the cases that are missing
    python tests/expected_streams.py --rewrite  # rewrite every case (a change of what files
                                                # decode to: say why in the commit and model card)
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import lqz
from lqz import api
from lqz import format as fmt

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected"
MANIFEST = EXPECTED / "manifest.json"
SAMPLE = HERE.parent / "docs" / "sample.png"


@dataclass(frozen=True)
class Case:
    """One frozen file: a crop of docs/sample.png in a mode, coded at a quality.

    The "2bands" cases have latent grids tall enough for the prior's two row bands.
    """

    name: str
    quality: int
    box: tuple[int, int, int, int]  # left, upper, right, lower
    mode: str = "RGB"  # RGB, L, RGBA or LA (alpha: a fixed gradient)
    tile_size: int = api.DEFAULT_TILE_SIZE
    effort: int = 0


CASES = (
    Case("q1-rgb-97x61", 1, (11, 7, 108, 68)),
    Case("q2-gray-80x50", 2, (200, 100, 280, 150), mode="L"),
    Case("q2-rgb-2bands-40x256", 2, (160, 0, 200, 256)),
    Case("q3-rgba-64x40", 3, (30, 150, 94, 190), mode="RGBA"),
    Case("q4-la-45x33", 4, (300, 20, 345, 53), mode="LA"),
    Case("q5-rgb-6tiles-150x100", 5, (120, 60, 270, 160), tile_size=64),
    Case("q6-rgb-effort2-48x48", 6, (0, 200, 48, 248), effort=2),
    Case("q6-rgb-2bands-72x136", 6, (300, 100, 372, 236)),
    Case("q7-rgb-57x23", 7, (250, 180, 307, 203)),
    Case("q8-rgb-33x17", 8, (350, 230, 383, 247)),
)


def source_image(case: Case) -> Image.Image:
    """The image a case codes (deterministic: a crop of the sample, alpha a gradient)."""
    rgb = Image.open(SAMPLE).convert("RGB").crop(case.box)
    base = rgb.convert("L") if case.mode in ("L", "LA") else rgb
    if case.mode not in ("RGBA", "LA"):
        return base
    w, h = base.size
    ramp = (np.add.outer(np.arange(h) * 7, np.arange(w) * 3) % 256).astype(np.uint8)
    base.putalpha(Image.fromarray(ramp, "L"))
    return base


def token_digest(data: bytes) -> str:
    """SHA-256 over every tile's decoded token indices (int64, (groups, h, w), tile order),
    each after its depth map (int64, (h, w)) in files with depth maps."""
    from lqz.tiles import decode_adaptive, decode_indices

    models = api.model_set()
    header, tiles, _ = fmt.unpack(data, known_model_ids=models.model_ids)
    loaded, groups = models.for_header(header)
    stride = loaded.model.config.stride
    digest = hashlib.sha256()
    with torch.inference_mode():
        for (x0, y0, x1, y1), payload in zip(header.tile_boxes(), tiles, strict=True):
            h, w = -(-(y1 - y0) // stride), -(-(x1 - x0) // stride)
            if header.depth_maps:
                choices = loaded.model.config.levels[: header.level]
                indices, depth = decode_adaptive(loaded.model, bytes(payload), choices, h, w)
                digest.update(depth.numpy().astype("<i8").tobytes())
            else:
                indices = decode_indices(loaded.model, bytes(payload), groups, h, w)
            digest.update(indices.numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def reference_path(case: Case) -> Path:
    """The decoded pixels of a case's file, as written (lossless PNG)."""
    return EXPECTED / f"{case.name}.png"


def pixels_match(image: Image.Image, reference: Image.Image) -> str | None:
    """Why ``image`` is not ``reference`` up to the synthesis's float rounding, or None.

    Tokens decode bit for bit on every machine (the exact prior); the synthesis transform runs
    in float32, whose rounding differs a little between CPUs: a pixel may differ by one level,
    in at most :data:`PIXEL_SLACK` of the values.
    """
    if (image.mode, image.size) != (reference.mode, reference.size):
        return f"{image.mode} {image.size} is not {reference.mode} {reference.size}"
    a = np.asarray(image, dtype=np.int16)
    b = np.asarray(reference, dtype=np.int16)
    off = np.abs(a - b)
    if off.max() > 1 or (off > 0).mean() > PIXEL_SLACK:
        return f"max difference {off.max()}, {(off > 0).mean():.2%} of the values differ"
    return None


#: share of pixel values that may differ by one level from the reference (float32 synthesis)
PIXEL_SLACK = 0.01


def record(case: Case, data: bytes) -> dict[str, object]:
    """The manifest entry of a case's file (and its reference pixels, written beside it)."""
    image = lqz.decode(data)
    image.save(reference_path(case))
    return {
        "quality": case.quality,
        "mode": image.mode,
        "size": [image.width, image.height],
        "bytes": len(data),
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "tokens_sha256": token_digest(data),
    }


def load_manifest() -> dict[str, dict[str, object]]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def write(rewrite: bool) -> None:
    manifest = load_manifest()
    EXPECTED.mkdir(exist_ok=True)
    for case in CASES:
        path = EXPECTED / f"{case.name}.lqz"
        if path.exists() and case.name in manifest and not rewrite:
            continue
        data = lqz.encode(
            source_image(case), quality=case.quality, tile_size=case.tile_size, effort=case.effort
        )
        path.write_bytes(data)
        manifest[case.name] = record(case, data)
        print(f"wrote {path.relative_to(HERE.parent)} ({len(data):,} bytes)")
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rewrite", action="store_true", help="rewrite every case")
    write(parser.parse_args().rewrite)


if __name__ == "__main__":
    main()
