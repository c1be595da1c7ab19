"""The measurement loop: every (codec, setting) over every image, with a tqdm progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from statistics import fmean
from typing import Any

import numpy as np
from tqdm import tqdm

from . import EvalError
from .codecs import Contender
from .data import TestImage
from .metrics import bits_per_pixel, ms_ssim, psnr

Entry = dict[str, Any]


def measure(codec: Contender, setting: int, image: TestImage) -> dict[str, Any]:
    """Encode and decode one image; rate from the whole file, metrics on 8-bit RGB."""
    source = image.pil()
    start = time.perf_counter()
    data = codec.encode(source, setting)
    enc_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded_image = codec.decode(data)
    dec_s = time.perf_counter() - start
    decoded = np.asarray(decoded_image.convert("RGB"))
    if decoded.shape != image.pixels.shape:
        raise EvalError(
            f"{codec.name} q={setting} decoded {image.name} to {decoded.shape[1]}x"
            f"{decoded.shape[0]}, expected {image.pixels.shape[1]}x{image.pixels.shape[0]}"
        )
    return {
        "image": image.name,
        "width": int(image.pixels.shape[1]),
        "height": int(image.pixels.shape[0]),
        "bytes": len(data),
        "bpp": bits_per_pixel(len(data), image.num_pixels),
        "psnr": psnr(image.pixels, decoded),
        "ms_ssim": ms_ssim(image.pixels, decoded),
        "enc_s": enc_s,
        "dec_s": dec_s,
    }


def summarize(setting: int, per_image: list[dict[str, Any]], codec_id: str = "") -> Entry:
    """One results.json entry: plain means over images of every per-image figure."""
    return {
        "setting": setting,
        "codec_id": codec_id,
        **{key: fmean(row[key] for row in per_image) for key in METRIC_KEYS},
        "per_image": per_image,
    }


METRIC_KEYS = ("bpp", "psnr", "ms_ssim", "enc_s", "dec_s")


def plan(
    codecs: Sequence[Contender],
    settings: dict[str, Sequence[int]],
    done: dict[str, list[Entry]],
    force: bool,
) -> list[tuple[Contender, int]]:
    """The (codec, setting) pairs still to measure: not in ``done``, or measured by another
    version of the codec (other lqz weights, other library)."""
    todo = []
    for codec in codecs:
        identity = codec.identity()
        have = {e["setting"] for e in done.get(codec.name, []) if e.get("codec_id") == identity}
        todo += [(codec, s) for s in settings[codec.name] if force or s not in have]
    return todo


def drop_stale(codecs: Sequence[Contender], done: dict[str, list[Entry]]) -> int:
    """Remove the entries of ``codecs`` measured by another version of the codec (other lqz
    weights, other library), so that a report never mixes versions: settings still in the
    ladder are measured again, others (e.g. a level the new weights no longer have) go.
    Returns how many entries were dropped."""
    dropped = 0
    for codec in codecs:
        identity = codec.identity()
        entries = done.get(codec.name, [])
        kept = [e for e in entries if e.get("codec_id") == identity]
        dropped += len(entries) - len(kept)
        if codec.name in done:
            done[codec.name] = kept
    return dropped


def run(
    todo: Sequence[tuple[Contender, int]],
    images: Sequence[TestImage],
    on_entry: Callable[[str, Entry], None],
    progress: bool = True,
) -> None:
    """Measure every pair of ``todo``; ``on_entry(codec_name, entry)`` after each pair."""
    with tqdm(
        total=len(todo) * len(images), unit="img", disable=not progress, dynamic_ncols=True
    ) as bar:
        for codec, setting in todo:
            identity = codec.identity()
            per_image = []
            for image in images:
                bar.set_description(f"{codec.name} q={setting} {image.name}")
                try:
                    per_image.append(measure(codec, setting, image))
                except EvalError:
                    raise
                except Exception as exc:
                    raise EvalError(
                        f"{codec.name} q={setting} failed on {image.name}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    ) from exc
                bar.update(1)
            on_entry(codec.name, summarize(setting, per_image, identity))
