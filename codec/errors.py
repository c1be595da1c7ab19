"""Errors raised on bad input. Every one derives from :class:`LqzError` and lives here.

Each class carries the exit code of the ``lqz`` command that fails with it (``exit_code``;
the table is in docs/CLI.md): 1 for settings and model problems, 2 for input images that
cannot be coded, 3 for invalid ``.lqz`` data, 4 for outputs that exist or cannot be written.
"""

#: Exit codes of the ``lqz`` command that these errors map to (``lqz.cli.exits.ExitCode``).
EXIT_ERROR = 1
EXIT_INPUT = 2
EXIT_CORRUPT = 3
EXIT_OUTPUT = 4


class LqzError(Exception):
    """Base class of every error lqz raises on bad input; its message is one line.

    A subclass names its exit code in its class line (``exit_code=...``), else inherits it.
    """

    exit_code: int = EXIT_ERROR

    def __init_subclass__(cls, exit_code: int | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code


class InvalidSetting(LqzError, exit_code=EXIT_ERROR):
    """A quality level, bpp target, effort or limit outside what the codec offers."""


class WeightsError(LqzError, exit_code=EXIT_ERROR):
    """The weights or ladder file is missing, unreadable or does not match the architecture."""


class UnsupportedImage(LqzError, exit_code=EXIT_INPUT):
    """The input is not an image lqz can code."""


class ImageTooLarge(LqzError, exit_code=EXIT_INPUT):
    """An ``.lqz`` file declares more pixels than the decoder may allocate (``max_pixels``)."""


class FormatLimitError(LqzError, ValueError, exit_code=EXIT_ERROR):
    """A writer was given values the ``.lqz`` format cannot store (``lqz.format`` pack side)."""


class FormatError(LqzError, exit_code=EXIT_CORRUPT):
    """An ``.lqz`` file (or section of one) is not valid; see ``docs/FORMAT.md``."""


class BadMagic(FormatError):
    """The data does not start with the ``.lqz`` magic bytes."""


class UnsupportedVersion(FormatError):
    """The file is an ``.lqz`` file of a format version this reader does not know."""


class UnknownModel(FormatError):
    """The file was coded with a model whose id the caller does not have."""


class TruncatedFile(FormatError):
    """The data ends before the end its header declares."""


class ChecksumMismatch(FormatError):
    """A CRC32 stored in the file does not match the bytes it covers."""


class ImplausibleHeader(FormatError):
    """Header fields out of range or inconsistent with each other (sizes, counts, flags)."""


class TrailingData(FormatError):
    """Bytes follow the end of the file that its header declares."""


class CorruptAlpha(FormatError):
    """The alpha section is not a zlib stream of exactly width x height bytes."""


class CorruptStream(FormatError):
    """The entropy-coded token stream is truncated, corrupted or does not match the calls.

    A format error, like a damaged container: a tile payload is file content."""


class TrainingDataError(LqzError, exit_code=EXIT_INPUT):
    """Training images or a training pack are missing, unreadable or too few (``lqz.train``)."""


class CheckpointError(LqzError, exit_code=EXIT_INPUT):
    """A training run's state is missing, unreadable or does not fit the model (``lqz.train``)."""


class OutputError(LqzError, exit_code=EXIT_OUTPUT):
    """An output of a tool exists (no ``--force``) or cannot be written."""


class TrainSettingError(LqzError, ValueError):
    """A training option is invalid or the options contradict each other."""
