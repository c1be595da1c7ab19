"""``lqz decode``: .lqz files to lossless images (PNG by default)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import click

from .common import (
    Batch,
    CliError,
    ExitCode,
    Job,
    Result,
    common_options,
    expand_inputs,
    load_model,
    plan_outputs,
    read_input,
    set_threads,
    write_output,
)

SUFFIX = ".lqz"
DEFAULT_SUFFIX = ".png"

#: Lossless output formats by suffix: Pillow format, save options, what they store.
WRITERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".png": ("PNG", {}),
    ".tif": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    ".tiff": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    ".bmp": ("BMP", {}),
    ".webp": ("WEBP", {"lossless": True, "exact": True}),
    ".ppm": ("PPM", {}),
    ".pnm": ("PPM", {}),
    ".pgm": ("PPM", {}),
}
#: Formats that cannot keep an alpha channel (BMP readers, Pillow's included, drop it).
NO_ALPHA = {".bmp", ".ppm", ".pnm", ".pgm"}
GRAY_ONLY = {".pgm"}
LOSSY = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".jp2",
    ".j2k",
    ".jpx",
    ".jpf",
    ".heic",
    ".heif",
    ".avif",
    ".jxl",
    ".gif",
}
FORMATS_HELP = ".png, .tif/.tiff, .bmp, .webp (lossless), .ppm/.pnm/.pgm"
#: ``lqz.api.DEFAULT_MAX_PIXELS`` for the help text (the API is not imported for --help).
MAX_PIXELS_HELP = "268435456 = 2^28"


def writer_for(dest: Path | None) -> tuple[str, str, dict[str, Any]]:
    """Suffix, Pillow format and options for an output name (stdout and no suffix: PNG)."""
    suffix = DEFAULT_SUFFIX if dest is None or not dest.suffix else dest.suffix.lower()
    if suffix in WRITERS:
        return (suffix, *WRITERS[suffix])
    if suffix in LOSSY:
        kind = "palette-limited" if suffix == ".gif" else "lossy"
        raise CliError(
            f"{dest}: {suffix} is a {kind} format; lqz decode writes lossless images only: "
            f"{FORMATS_HELP}"
        )
    raise CliError(f"{dest}: unknown image format {suffix!r}; use {FORMATS_HELP}")


def check_fits(suffix: str, gray: bool, alpha: bool, dest: Path | None) -> None:
    """Refuse an output format that would drop part of the image."""
    if alpha and suffix in NO_ALPHA:
        raise CliError(f"{dest}: {suffix} cannot store the alpha channel; use .png, .tiff or .webp")
    if not gray and suffix in GRAY_ONLY:
        raise CliError(f"{dest}: .pgm stores gray images only and this image is in colour")


def _decode_one(job: Job, batch: Batch, force: bool, max_pixels: int | None) -> Result:
    from lqz import api
    from lqz import format as fmt
    from lqz.errors import LqzError

    start = time.perf_counter()
    data = read_input(job)
    header = fmt.read_header(data)
    limit = api.DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    suffix, pil_format, options = writer_for(job.dest)
    check_fits(suffix, header.channels == 1, header.has_alpha, job.dest)
    try:
        image = api.decode(data, max_pixels=limit)
    except (LqzError, MemoryError):
        raise
    except Exception as exc:  # the range decoder on damaged data
        raise CliError(
            f"{job.label}: corrupt .lqz file: {type(exc).__name__}: {exc}", ExitCode.CORRUPT
        ) from exc
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    written = buffer.getvalue()
    write_output(job.dest, lambda f: f.write(written), force)
    rate = 8 * len(data) / (header.width * header.height)
    batch.say(
        f"{job.label} -> {job.dest_label}: {header.width}x{header.height} {image.mode}, "
        f"quality {api.quality_of(header)}, {rate:.4f} bpp, {time.perf_counter() - start:.2f} s"
    )
    return Result(in_bytes=len(data), out_bytes=len(written), bpp=rate)


@click.command(
    epilog=f"""\b
Output formats (lossless only): {FORMATS_HELP}.
Lossy formats such as .jpg are refused.
\b
Examples:
  lqz decode photo.lqz                 writes photo.png next to photo.lqz
  lqz decode photo.lqz -o photo.tiff   the format follows the extension
  lqz decode coded/ -o restored/       every .lqz in coded/ into restored/ (PNG)
  lqz decode - < photo.lqz > photo.png
"""
)
@click.argument("inputs", nargs=-1, required=True, metavar="IN.lqz...")
@click.option(
    "-o",
    "--output",
    metavar="OUT",
    help="Output file (format by extension), '-' for stdout (PNG), or a folder (a folder with "
    "several inputs). Default: the input's name with .png, next to it (stdin: stdout).",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--threads", type=click.IntRange(min=1), metavar="N", help="Torch CPU threads.")
@click.option(
    "--max-pixels",
    type=click.IntRange(min=0),
    metavar="N",
    help="Refuse files of more than N pixels (width x height) before allocating them "
    f"(default {MAX_PIXELS_HELP}; 0 = no limit).",
)
@common_options
def decode(
    inputs: tuple[str, ...],
    output: str | None,
    force: bool,
    threads: int | None,
    max_pixels: int | None,
    quiet: bool,
    debug: bool,
) -> int:
    """Decompress .lqz files to lossless images.

    IN is an .lqz file, a folder (its .lqz files, not recursive), a glob, or '-' for stdin.
    Gray images come back as gray (L or LA), colour as RGB or RGBA.
    """
    jobs, is_batch = expand_inputs(inputs, lambda: {SUFFIX})
    plan_outputs(jobs, output, is_batch, lambda source: source.stem + DEFAULT_SUFFIX, force)
    if not is_batch and jobs[0].failure is None:
        writer_for(jobs[0].dest)  # refuse .jpg and the like before any work
    batch = Batch("decoded", quiet, debug, is_batch, ExitCode.CORRUPT)
    if all(job.failure is not None for job in jobs):
        return batch.run(jobs, lambda job: Result(0, 0, 0.0))
    set_threads(threads)
    load_model(debug, quiet, "decode")
    return batch.run(jobs, lambda job: _decode_one(job, batch, force, max_pixels))
