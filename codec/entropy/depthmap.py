"""Coding of depth maps: one choice among K per latent position, in raster order.

The model is adaptive and needs no training: each symbol's probabilities are the counts of the
symbols seen so far in its context (the choices on its left and above; a border is a value of
its own), every count starting at one half. Counts are kept doubled (start 1, step 2), so every
probability is a ratio of integers, exact in float64 on every machine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: doubled start count of every (context, symbol): probabilities start uniform
START = 1
#: doubled count added per symbol seen
STEP = 2


def _contexts(choices: int) -> np.ndarray:
    return np.full((choices + 1, choices + 1, choices), START, dtype=np.int64)


def _walk(
    height: int, width: int, choices: int, symbol_at: Callable[[np.ndarray, int, int], int]
) -> np.ndarray:
    """Visit the map in raster order; ``symbol_at(probabilities, y, x)`` gives each symbol
    (the encoder looks it up, the decoder decodes it). Returns the map (h, w)."""
    counts = _contexts(choices)
    out = np.empty((height, width), dtype=np.int64)
    for y in range(height):
        for x in range(width):
            left = out[y, x - 1] if x else choices
            above = out[y - 1, x] if y else choices
            c = counts[left, above]
            symbol = symbol_at(c / c.sum(), y, x)
            out[y, x] = symbol
            c[symbol] += STEP
    return out


def probabilities(choice: np.ndarray, choices: int) -> np.ndarray:
    """The model's probability rows (h*w, K) of ``choice`` (h, w), in raster order."""
    h, w = choice.shape
    rows = np.empty((h * w, choices))

    def record(p: np.ndarray, y: int, x: int) -> int:
        rows[y * w + x] = p
        return int(choice[y, x])

    _walk(h, w, choices, record)
    return rows


def code_length(choice: np.ndarray, choices: int) -> float:
    """Bits the model spends on ``choice`` (h, w) (the range coder's length to ~0.1 %)."""
    if choices == 1:
        return 0.0
    rows = probabilities(choice, choices)
    return -float(np.log2(rows[np.arange(len(rows)), choice.flatten()]).sum())


def encode(encoder, choice: np.ndarray, choices: int) -> None:
    """Append ``choice`` (h, w), values in 0..K-1, to a :class:`~.coder.TokenEncoder`."""
    choice = np.asarray(choice, dtype=np.int64)
    if choice.size and (choice.min() < 0 or choice.max() >= choices):
        raise ValueError(f"depth choices must lie in 0..{choices - 1}")
    if choices == 1:  # nothing to choose: nothing coded
        return
    encoder.encode_symbols(choice.flatten(), probabilities(choice, choices))


def decode(decoder, height: int, width: int, choices: int) -> np.ndarray:
    """The map (h, w) of :func:`encode` from a :class:`~.coder.TokenDecoder`."""
    if choices == 1:
        return np.zeros((height, width), dtype=np.int64)
    return _walk(height, width, choices, lambda p, y, x: decoder.decode_symbol(p))
