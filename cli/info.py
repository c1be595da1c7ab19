"""``lqz info``: what an .lqz file holds, read from its header (no model needed)."""

from __future__ import annotations

import json
from typing import Any

import click

from lqz.constants import SUFFIX

from .batch import Batch, Coded, Result
from .exits import CliError, ExitCode, common_options
from .inputs import Job, expand_inputs, read_input


def describe(data: bytes) -> dict[str, Any]:
    """The facts ``lqz info`` prints, for an .lqz file's bytes (validated: every section read)."""
    from lqz import format as fmt
    from lqz.api import quality_of

    fmt.read_header(data)  # the first error is the header's if it is the header that is bad
    header, tiles, alpha = fmt.unpack(data, known_model_ids=None)
    pixels = header.width * header.height
    return {
        "version": header.version,
        "writer": header.writer,
        "model": header.model_id.hex(),
        "quality": quality_of(header),
        "level": header.level,
        "depth_maps": header.depth_maps,
        "width": header.width,
        "height": header.height,
        "channels": header.channels,
        "alpha": bool(header.has_alpha),
        "bytes": len(data),
        "bpp": 8 * len(data) / pixels,
        "tile_size": header.tile_size,
        "tiles": len(tiles),
        "tile_bytes": [len(t) for t in tiles],
        "alpha_bytes": len(alpha) if alpha is not None else 0,
    }


def render(facts: dict[str, Any], name: str) -> str:
    """``describe``'s facts as aligned text lines."""
    kind = "gray" if facts["channels"] == 1 else "RGB"
    if facts["alpha"]:
        kind += f" + alpha ({facts['alpha_bytes']:,} bytes, zlib)"
    rows = [
        ("file", name),
        ("format", f"lqz version {facts['version']}"),
        (
            "writer",
            facts["writer"] or f"unknown (format version {facts['version']} does not record it)",
        ),
        ("model", facts["model"]),
        (
            "quality",
            "unknown (model not installed)" if facts["quality"] is None else str(facts["quality"]),
        ),
        (
            "level",
            f"{facts['level']} of that model"
            + (", adaptive depth (depth maps)" if facts["depth_maps"] else ""),
        ),
        ("size", f"{facts['width']}x{facts['height']} {kind}"),
        ("bytes", f"{facts['bytes']:,}"),
        ("bpp", f"{facts['bpp']:.4f}"),
        ("tiles", f"{facts['tiles']} of up to {facts['tile_size']}x{facts['tile_size']} pixels"),
    ]
    return "\n".join(f"{key:<8}{value}" for key, value in rows)


@click.command(
    epilog="""\b
Examples:
  lqz info photo.lqz
  lqz info photo.lqz --json | python -m json.tool
  lqz info coded/*.lqz --json     one JSON object per line
"""
)
@click.argument("inputs", nargs=-1, required=True, metavar="FILE.lqz...")
@click.option("--json", "as_json", is_flag=True, help="JSON output (one object per file and line).")
@common_options
def info(inputs: tuple[str, ...], as_json: bool, quiet: bool, debug: bool) -> int:
    """Show what an .lqz file holds: format version, writer, model, level, size, bytes, bpp, tiles.

    Works without the model (and for files of other models). The whole file is checked: a
    corrupt or truncated file is an error (exit code 3).
    """
    jobs, is_batch = expand_inputs(inputs, lambda: {SUFFIX})
    batch = Batch("read", quiet=True, debug=debug, batch=is_batch, stage_code=ExitCode.CORRUPT)
    shown = 0

    def show(job: Job) -> Coded:
        nonlocal shown
        data = read_input(job)
        if not data:
            raise CliError(f"{job.label}: empty file, not an .lqz file", ExitCode.CORRUPT)
        facts = describe(data)
        if as_json:
            click.echo(json.dumps({"file": job.label, **facts}))
        else:
            click.echo(("\n" if shown else "") + render(facts, job.label))
        shown += 1
        return Coded(None, "", Result(len(data), len(data), facts["bpp"]))

    return batch.run(jobs, show)
