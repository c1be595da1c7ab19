"""``lqz decode``: .lqz files to lossless images (PNG by default)."""

from __future__ import annotations

import functools
import io
import time
from pathlib import Path
from typing import Any

import click

from lqz.constants import DEFAULT_MAX_PIXELS, SUFFIX

from .batch import Batch, Coded, Result, no_work
from .exits import CliError, ExitCode, common_options
from .inputs import Job, expand_inputs, read_input
from .outputs import plan_outputs
from .runtime import jobs_option, load_model, output_option, set_threads, threads_option

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


def _formats_help() -> str:
    """The output formats for messages and help: suffixes of one writer joined by '/'."""
    by_format: dict[str, list[str]] = {}
    for suffix, (name, _) in WRITERS.items():
        by_format.setdefault(name, []).append(suffix)
    return ", ".join(
        "/".join(suffixes) + (" (lossless)" if WRITERS[suffixes[0]][1].get("lossless") else "")
        for suffixes in by_format.values()
    )


FORMATS_HELP = _formats_help()
#: Names that ``-o`` with several inputs refuses as a folder: they look like one output file.
FILE_SUFFIXES = frozenset(WRITERS) | LOSSY


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


def _output_name(source: Path) -> str:
    return source.stem + DEFAULT_SUFFIX


def decode_file(job: Job, max_pixels: int | None) -> Coded:
    """Decode one job's .lqz file to the bytes of its output image; the caller writes them."""
    from lqz import api
    from lqz import format as fmt
    from lqz.errors import LqzError

    start = time.perf_counter()
    data = read_input(job)
    header = fmt.read_header(data)
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
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
    rate = 8 * len(data) / (header.width * header.height)
    line = (
        f"{job.label} -> {job.dest_label}: {header.width}x{header.height} {image.mode}, "
        f"quality {api.quality_of(header)}, {rate:.4f} bpp, {time.perf_counter() - start:.2f} s"
    )
    return Coded(written, line, Result(in_bytes=len(data), out_bytes=len(written), bpp=rate))


@click.command(
    epilog=f"""\b
Output formats (lossless only): {FORMATS_HELP}.
Lossy formats such as .jpg are refused.
\b
Examples:
  lqz decode photo.lqz                 writes photo.png next to photo.lqz
  lqz decode photo.lqz -o photo.tiff   the format follows the extension
  lqz decode coded/ -o restored/       every .lqz in coded/ into restored/ (PNG)
  lqz decode coded/ -o restored/ -j 2  the same, two files at a time (two processes)
  lqz decode - < photo.lqz > photo.png
"""
)
@click.argument("inputs", nargs=-1, required=True, metavar="IN.lqz...")
@output_option(
    "Output file (format by extension), '-' for stdout (PNG), or a folder (a folder with "
    f"several inputs). Default: the input's name with {DEFAULT_SUFFIX}, next to it "
    "(stdin: stdout)."
)
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option(
    "--max-pixels",
    type=click.IntRange(min=0),
    metavar="N",
    help="Refuse files of more than N pixels (width x height) before allocating them "
    f"(default {DEFAULT_MAX_PIXELS:,}; 0 = no limit).",
)
@threads_option
@jobs_option
@common_options
def decode(
    inputs: tuple[str, ...],
    output: str | None,
    force: bool,
    max_pixels: int | None,
    threads: int | None,
    jobs: int,
    quiet: bool,
    debug: bool,
) -> int:
    """Decompress .lqz files to lossless images.

    IN is an .lqz file, a folder (its .lqz files, not recursive), a glob, or '-' for stdin.
    Gray images come back as gray (L or LA), colour as RGB or RGBA.
    """
    todo, is_batch = expand_inputs(inputs, lambda: {SUFFIX})
    plan_outputs(todo, output, is_batch, _output_name, force, FILE_SUFFIXES)
    if not is_batch and todo[0].failure is None:
        writer_for(todo[0].dest)  # refuse .jpg and the like before any work
    batch = Batch("decoded", quiet, debug, is_batch, ExitCode.CORRUPT, force)
    if all(job.failure is not None for job in todo):
        return batch.run(todo, no_work)
    set_threads(threads)
    load_model(debug, quiet, "decode")
    work = functools.partial(decode_file, max_pixels=max_pixels)
    return batch.run(todo, work, jobs, threads)
