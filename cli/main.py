"""``lqz`` command line: a click group whose subcommands live in their own modules.

Failures end as one line on stderr, ``lqz: error: ...``, and an exit code (``ExitCode`` in
``cli/exits.py``, table in docs/CLI.md); ``--debug`` adds the traceback. Nothing heavy is
imported at start-up: ``lqz --help`` does not load torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from lqz import __version__

from .decode import decode
from .encode import encode
from .exits import ExitCode, error, exit_codes_help
from .info import info


class LqzGroup(click.Group):
    """A click group that reports usage errors as one line with exit code 1."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args, prog_name or "lqz", complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            code = ExitCode.OK
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            error(exc.format_message() + hint)
            code = ExitCode.ERROR
        except click.ClickException as exc:
            error(exc.format_message())
            code = ExitCode.ERROR
        except click.Abort:
            error("interrupted")
            code = ExitCode.INTERRUPTED
        code = int(code) if isinstance(code, int) else ExitCode.OK
        if not standalone_mode:
            return code
        sys.exit(code)


HELP = f"""lqz: a learned image codec on the Leech lattice (spherical Leech quantization).

\b
Examples:
  lqz encode photo.png              photo.png -> photo.lqz (default level)
  lqz encode photo.png --bpp 0.5    the best level at or under 0.5 bits per pixel
  lqz decode photo.lqz -o back.png  lossless output (.png, .tiff, ...)
  lqz info photo.lqz --json         version, model, level, size, bytes, bpp, tiles
  lqz encode photos/ -o coded/      a folder (or several files, or a glob) at once
  lqz decode coded/ -o out/ -j 2    two files at a time, in two processes
  lqz selfcheck                     verify the Leech codebook and the quantizer

Exit codes: {exit_codes_help()}.
"""


@click.group(
    name="lqz",
    cls=LqzGroup,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="lqz")
def cli() -> None:
    pass


cli.add_command(encode)
cli.add_command(decode)
cli.add_command(info)


@cli.command()
@click.option("--vectors", default=2000, show_default=True, help="Random vectors to check.")
def selfcheck(vectors: int) -> None:
    """Verify the Λ24 codebook and exact quantizer against brute force; print what was checked."""
    from lqz.leech.selfcheck import run

    run(vectors, echo=click.echo)


def main() -> None:
    code = cli.main(prog_name="lqz", standalone_mode=False)
    _exit(int(code) if isinstance(code, int) else ExitCode.OK)


def _exit(code: int) -> None:
    """Exit with ``code``; after coding, skip the interpreter's clean-up.

    Tearing down torch's modules takes about a second at exit, a fifth of a one-image run.
    Every output is written, fsynced and renamed (or its temporary file removed) before the
    command returns, so once stdout and stderr are flushed there is nothing left to do.
    """
    if "torch" in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            sys.exit(code)  # let the interpreter report or ignore it as usual
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
