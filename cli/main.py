"""``lqz`` command line: a click group whose subcommands live in their own modules."""

from __future__ import annotations

import click
from lqz import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lqz")
def cli() -> None:
    """lqz: a learned image codec on the Leech lattice (spherical Leech quantization).

    \b
    Examples:
      lqz selfcheck            verify the Leech codebook and the quantizer
    """


@cli.command()
@click.option("--vectors", default=2000, show_default=True, help="Random vectors to check.")
def selfcheck(vectors: int) -> None:
    """Verify the Λ24 codebook and exact quantizer against brute force; print what was checked."""
    from lqz.leech.selfcheck import run

    run(vectors, echo=click.echo)


def main() -> None:
    cli(prog_name="lqz")


if __name__ == "__main__":
    main()
