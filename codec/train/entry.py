"""Entry points of the training tools: an :class:`LqzError` becomes one line and its exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..errors import LqzError


def run_main(main: Callable[[], None], tool: str) -> None:
    """Run a tool's ``main``; on :class:`LqzError`, print ``TOOL: error: MESSAGE`` and exit
    with the error's code (no traceback)."""
    try:
        main()
    except LqzError as exc:
        print(f"{tool}: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
