"""Errors raised on bad input. Every one derives from :class:`LqzError`."""


class LqzError(Exception):
    """Base class of every error lqz raises on bad input; its message is one line."""

    exit_code = 1


class ImageTooLarge(LqzError):
    """An ``.lqz`` file declares more pixels than the decoder may allocate (``max_pixels``)."""

    exit_code = 2


class FormatLimitError(LqzError, ValueError):
    """A writer was given values the ``.lqz`` format cannot store (``lqz.format`` pack side)."""


class FormatError(LqzError):
    """An ``.lqz`` file (or section of one) is not valid; see ``docs/FORMAT.md``."""

    exit_code = 3


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


class TrainingDataError(LqzError):
    """Training images or a training pack are missing, unreadable or too few (``lqz.train``)."""

    exit_code = 2


class CheckpointError(LqzError):
    """A training run's state is missing, unreadable or does not fit the model (``lqz.train``)."""

    exit_code = 2


class OutputError(LqzError):
    """An output of a tool exists (no ``--force``) or cannot be written."""

    exit_code = 4


class TrainSettingError(LqzError, ValueError):
    """A training option is invalid or the options contradict each other."""
