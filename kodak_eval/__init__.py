"""kodak_eval: rate–distortion evaluation of lqz against classical codecs on Kodak.

Run ``python -m kodak_eval --help`` (or the ``lqz-rd`` console script). See README.md in this
folder for the method, the encoder options and the output files.
"""

from __future__ import annotations

__version__ = "0.1.0"


class EvalError(Exception):
    """Bad input or an unrecoverable condition; the message is one line for the user."""
