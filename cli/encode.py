"""``lqz encode``: images (anything Pillow reads) to .lqz files."""

from __future__ import annotations

import functools
import io
import time
import warnings
from dataclasses import dataclass
from typing import Any

import click

from lqz.constants import SUFFIX
from lqz.effort import DEFAULT_EFFORT, MAX_EFFORT

from .batch import Batch, Coded, Result, no_work
from .exits import CliError, ExitCode, common_options
from .inputs import Job, expand_inputs, read_input
from .outputs import plan_outputs
from .runtime import jobs_option, load_model, output_option, set_threads, threads_option


def image_suffixes() -> set[str]:
    """File suffixes of the formats Pillow can open (what a folder input contributes)."""
    from PIL import Image

    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def open_image(data: bytes, label: str) -> Any:
    """A loaded PIL image from file bytes; every way this can fail is an input error."""
    from PIL import Image, UnidentifiedImageError

    from lqz.format import MAGIC
    from lqz.images import MAX_SIDE, reduced_depth

    if data.startswith(MAGIC):
        raise CliError(f"{label}: this is an .lqz file (use lqz decode)", ExitCode.INPUT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise CliError(f"{label}: not an image Pillow can read", ExitCode.INPUT) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CliError(
            f"{label}: refused as a possible decompression bomb: {exc}", ExitCode.INPUT
        ) from None
    except Exception as exc:  # Pillow raises many kinds on malformed headers
        raise CliError(f"{label}: cannot read image: {exc}", ExitCode.INPUT) from None
    width, height = image.size
    if max(width, height) > MAX_SIDE:
        raise CliError(
            f"{label}: image is {width}x{height}: lqz codes at most {MAX_SIDE} pixels per side",
            ExitCode.INPUT,
        )
    if width < 1 or height < 1:
        raise CliError(f"{label}: image has no pixels", ExitCode.INPUT)
    if reduced_depth(image):
        warnings.warn("16-bit image reduced to 8 bits", stacklevel=1)
    try:
        image.load()
    except Exception as exc:
        raise CliError(f"{label}: cannot decode image: {exc}", ExitCode.INPUT) from None
    return image


@dataclass(frozen=True)
class EncodeSettings:
    """The options of ``lqz encode`` that coding a file needs (sent to batch workers)."""

    quality: int | None
    bpp: float | None
    effort: int


def encode_file(job: Job, settings: EncodeSettings) -> Coded:
    """Encode one job's image; the caller writes the output."""
    from lqz import api
    from lqz import format as fmt

    start = time.perf_counter()
    data = read_input(job)
    image = open_image(data, job.label)
    bpp = settings.bpp
    encoded = api.encode(image, quality=settings.quality, bpp=bpp, effort=settings.effort)
    header = fmt.read_header(encoded)
    pixels = header.width * header.height
    rate = 8 * len(encoded) / pixels
    quality = api.quality_of(header)
    target = ""
    if bpp is not None:
        target = f" (target {bpp:g})"
        if rate > bpp:
            warnings.warn(
                f"target {bpp:g} bpp is below the smallest setting: "
                f"wrote quality {quality} at {rate:.4f} bpp",
                stacklevel=1,
            )
    line = (
        f"{job.label} -> {job.dest_label}: {header.width}x{header.height}, "
        f"quality {quality}, {len(encoded):,} bytes, {rate:.4f} bpp{target}, "
        f"{time.perf_counter() - start:.2f} s"
    )
    return Coded(encoded, line, Result(in_bytes=len(data), out_bytes=len(encoded), bpp=rate))


@click.command(
    epilog="""\b
Examples:
  lqz encode photo.png                  writes photo.lqz next to photo.png
  lqz encode photo.jpg -o out.lqz -q 2  level 2 (smaller file, lower quality)
  lqz encode photo.png --bpp 0.5        best level whose file is at most 0.5 bpp
  lqz encode photo.png -e 0             fastest encode (no refinement steps)
  lqz encode photos/ -o coded/          every image in photos/ into coded/
  lqz encode photos/ -o coded/ -j 2     the same, two files at a time (two processes)
  lqz encode 'shots/**/*.png' -o coded/ a glob (quoted: lqz expands it, ** recurses)
  cat photo.png | lqz encode - > photo.lqz
"""
)
@click.argument("inputs", nargs=-1, required=True, metavar="IN...")
@output_option(
    "Output file, '-' for stdout, or a folder (a folder with several inputs). "
    f"Default: the input's name with {SUFFIX}, next to it (stdin: stdout)."
)
@click.option(
    "-q",
    "--quality",
    type=click.IntRange(min=1),
    metavar="LEVEL",
    help="Quality level: 1 is the smallest file, higher levels spend more bits "
    "(lqz.QUALITIES lists them). Default: the middle level.",
)
@click.option(
    "--bpp",
    type=click.FloatRange(min=0, min_open=True),
    metavar="TARGET",
    help="Rate target in bits per pixel: the highest level whose whole file is at or under "
    "TARGET (the lowest level, with a warning, if none is).",
)
@click.option(
    "-e",
    "--effort",
    type=click.IntRange(0, MAX_EFFORT),
    default=DEFAULT_EFFORT,
    show_default=True,
    metavar="STEPS",
    help="Encoder refinement steps: each makes encoding slower and the file usually a little "
    "better for its size; 0 is the fastest. Decoding speed does not depend on it.",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@threads_option
@jobs_option
@common_options
def encode(
    inputs: tuple[str, ...],
    output: str | None,
    quality: int | None,
    bpp: float | None,
    effort: int,
    force: bool,
    threads: int | None,
    jobs: int,
    quiet: bool,
    debug: bool,
) -> int:
    """Compress images to .lqz files.

    IN is an image file (PNG, JPEG, WebP, TIFF, BMP, ... anything Pillow reads), a folder (its
    images, not recursive), a glob, or '-' for stdin. EXIF orientation is applied; gray images
    stay gray; 16-bit images are reduced to 8 bits (with a warning); alpha is stored losslessly.
    """
    if quality is not None and bpp is not None:
        raise click.UsageError("give either -q/--quality or --bpp, not both")
    todo, is_batch = expand_inputs(inputs, image_suffixes)
    plan_outputs(todo, output, is_batch, lambda source: source.stem + SUFFIX, force, {SUFFIX})
    batch = Batch("encoded", quiet, debug, is_batch, ExitCode.INPUT, force)
    if all(job.failure is not None for job in todo):
        return batch.run(todo, no_work)  # report them; no model needed
    set_threads(threads)
    loaded = load_model(debug, quiet, "encode")
    if quality is not None and quality not in loaded.qualities:
        levels = loaded.qualities
        raise CliError(f"quality must be one of {levels[0]}..{levels[-1]}, got {quality}")
    work = functools.partial(encode_file, settings=EncodeSettings(quality, bpp, effort))
    return batch.run(todo, work, jobs, threads)
