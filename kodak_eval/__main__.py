"""Command line: ``python -m kodak_eval`` / ``lqz-rd``. See ``--help`` and README.md here."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import click

from . import EvalError
from .codecs import DEFAULT_CODECS, Contender, LqzCodec, all_codecs
from .data import default_cache_dir, download_kodak, load_images
from .env import environment
from .evaluate import drop_stale, plan, run
from .report import averages_table, is_full_kodak, speed_table, write_reports
from .store import load_results, merge_entry, new_results, save_results


def parse_codecs(text: str) -> list[str]:
    """Comma-separated codec names, validated, duplicates dropped, order kept."""
    known = all_codecs()
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in known:
            raise EvalError(f"unknown codec {name!r} (known: {', '.join(known)})")
        if name not in names:
            names.append(name)
    if not names:
        raise EvalError("--codecs names no codec")
    return names


def parse_settings(items: tuple[str, ...], codecs: list[str]) -> dict[str, list[int]]:
    """``CODEC=S1,S2,...`` items (also ``;``-separated within one) into sorted int lists."""
    settings: dict[str, list[int]] = {}
    for item in (part for raw in items for part in raw.split(";")):
        if not item.strip():
            continue
        name, sep, values = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise EvalError(f"--settings {item!r}: expected CODEC=S1,S2,...")
        if name not in all_codecs():
            raise EvalError(f"--settings: unknown codec {name!r}")
        if name not in codecs:
            raise EvalError(f"--settings names {name!r}, which is not in --codecs")
        try:
            levels = sorted({int(v) for v in values.split(",") if v.strip()})
        except ValueError:
            raise EvalError(f"--settings {item!r}: settings must be integers") from None
        if not levels:
            raise EvalError(f"--settings {item!r}: no settings given")
        settings[name] = levels
    return settings


def available_codecs(names: list[str]) -> list[Contender]:
    """The codecs that can run here; a note on stderr for each that cannot."""
    codecs = []
    for name in names:
        codec = all_codecs()[name]
        reason = codec.unavailable()
        if reason:
            click.echo(f"note: skipping {name}: {reason}", err=True)
        else:
            codecs.append(codec)
    return codecs


def command_line(argv: list[str]) -> str:
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    head = ["lqz-rd"] if prog == "lqz-rd" else ["python", "-m", "kodak_eval"]
    return shlex.join(head + argv)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of test images (e.g. ../shared/kodak). Default: download Kodak into a cache "
    "($KODAK_EVAL_CACHE or ~/.cache/kodak_eval/kodak) and verify its SHA-256 sums.",
)
@click.option(
    "--codecs",
    "codec_text",
    default=",".join(DEFAULT_CODECS),
    show_default=True,
    help="Comma-separated codecs; one whose plugin is missing is skipped with a note.",
)
@click.option(
    "--settings",
    "settings_items",
    multiple=True,
    metavar="CODEC=S1,S2,...",
    help="Settings of one codec (quality 0..100, or lqz levels); repeatable. Default: each "
    "codec's ladder (README.md).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("out/kodak"),
    show_default=True,
    help="Output folder.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use the first N images.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads per codec and for torch (timings depend on it).",
)
@click.option(
    "--lqz-effort",
    type=click.IntRange(0, 100),
    default=None,
    metavar="STEPS",
    help="lqz encoder refinement steps (lqz encode -e). Default: lqz's default. Results are "
    "kept per effort: changing it measures lqz again.",
)
@click.option("--force", is_flag=True, help="Re-measure what results.json already holds.")
@click.option("--speed", is_flag=True, help="Print the per-codec encode/decode timing summary.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def cli(
    images: Path | None,
    codec_text: str,
    settings_items: tuple[str, ...],
    out: Path,
    limit: int | None,
    threads: int,
    lqz_effort: int | None,
    force: bool,
    speed: bool,
    no_progress: bool,
) -> None:
    """Rate–distortion curves of lqz and classical codecs on Kodak: tables, BD-rates, plots."""
    names = parse_codecs(codec_text)
    chosen = parse_settings(settings_items, names)
    folder = images if images is not None else download_kodak(default_cache_dir(), limit)
    test_images = load_images(folder, limit)
    image_names = [im.name for im in test_images]
    if len(set(image_names)) != len(image_names):
        raise EvalError(f"two images in {folder} share a name (stem); keep one of each")

    codecs = available_codecs(names)
    for codec in codecs:
        if isinstance(codec, LqzCodec):
            codec.effort = lqz_effort
    settings: dict[str, list[int]] = {}
    for codec in codecs:
        settings[codec.name] = chosen.get(codec.name) or list(codec.default_settings())
        for s in settings[codec.name]:
            codec.check_setting(s)
        codec.set_threads(threads)

    path = out / "results.json"
    try:
        results = load_results(path)
    except EvalError:
        if not force:
            raise
        results = None  # unreadable, and --force starts over anyway
    if results is not None and results["images"] != image_names:
        if not force:
            raise EvalError(
                f"{path} holds results for other images ({len(results['images'])}); "
                "use another --out, or --force to start over"
            )
        results = None
    if results is None:
        results = new_results(image_names)

    import torch

    torch.set_num_threads(threads)
    todo = plan(codecs, settings, results["codecs"], force)
    stale = drop_stale(codecs, results["codecs"])
    if stale:
        click.echo(f"dropped {stale} entries measured by another version of their codec", err=True)
    if todo:
        results["env"] = environment(threads, command_line(sys.argv[1:]))

    def on_entry(codec_name: str, entry: dict) -> None:
        merge_entry(results, codec_name, entry)
        save_results(path, results)

    start = time.perf_counter()
    run(todo, test_images, on_entry, progress=not no_progress)
    elapsed = time.perf_counter() - start
    if not results["codecs"]:
        raise EvalError("no codec could run; nothing to report")
    save_results(path, results)

    from .plots import write_plots

    dataset = "Kodak" if is_full_kodak(image_names) else f"{len(image_names)} images"
    plots = write_plots(out, results, dataset)
    write_reports(out, results, plots)
    click.echo(averages_table(results))
    if speed:
        click.echo("")
        click.echo(speed_table(results))
    click.echo(
        f"\nmeasured {len(todo)} codec settings x {len(test_images)} images in {elapsed:.1f} s; "
        f"wrote {out}/results.json, results.csv, results_per_image.csv, bd_rate.json, "
        f"report.md, {', '.join(plots)}",
        err=True,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and a non-zero exit status instead of tracebacks."""
    prog = "lqz-rd" if sys.argv and os.path.basename(sys.argv[0]) == "lqz-rd" else "kodak_eval"
    try:
        code = cli.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"{prog}: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except EvalError as exc:
        click.echo(f"{prog}: error: {exc}", err=True)
        sys.exit(1)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"{prog}: interrupted; results.json keeps every finished setting", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
