"""lqz: a learned image codec on the Leech lattice.

Heavy modules (torch, the model) load on first use, so ``import lqz`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import LqzError

__version__ = "0.3.0"
__all__ = ["QUALITIES", "LqzError", "__version__", "decode", "encode", "register_pillow"]

_LAZY: dict[str, str] = {"encode": ".api", "decode": ".api", "register_pillow": ".pillow_plugin"}


def __getattr__(name: str) -> Any:
    if name == "QUALITIES":
        return import_module(".api", __name__).qualities()
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'lqz' has no attribute {name!r}")
