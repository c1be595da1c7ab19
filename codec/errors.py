"""Errors raised on bad input. Every one derives from :class:`LqzError`."""


class LqzError(Exception):
    """Base class of every error lqz raises on bad input; its message is one line."""

    exit_code = 1
