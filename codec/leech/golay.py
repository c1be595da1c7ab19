"""The extended binary Golay code [24, 12, 8] in Turyn's form.

Turyn's construction: ``{(a ^ x, b ^ x, a ^ b ^ x) : a, b in H, x in H'}`` where ``H`` is the
extended Hamming code [8, 4, 4] (first-order Reed-Muller code RM(1, 3)) and ``H'`` is a
coordinate permutation of ``H`` meeting it only in ``{0, 1}``. The form matters for speed:
the +-1 images of ``H`` words are +-rows of the 8x8 Sylvester-Hadamard matrix, so all 16
correlations of an 8-vector with ``H`` come from one fast Walsh-Hadamard transform.

Word order (fixed forever for format version 1): the word with Turyn index
``x_index * 256 + a_index * 16 + b_index``, where an ``H`` word's index is ``2 * w + e`` for
the word ``y -> popcount(w & y) + e (mod 2)`` on the 8 positions ``y = 0..7``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: H' is H with its coordinates permuted so that H and H' share only the words 0 and 1.
H_PRIME_PERMUTATION = (0, 1, 2, 4, 3, 6, 7, 5)


def hamming_words() -> np.ndarray:
    """The 16 words of the extended Hamming code H = RM(1, 3), shape (16, 8), uint8."""
    y = np.arange(8)
    words = np.zeros((16, 8), dtype=np.uint8)
    for w in range(8):
        parity = np.array([bin(w & int(v)).count("1") & 1 for v in y], dtype=np.uint8)
        words[2 * w] = parity
        words[2 * w + 1] = parity ^ 1
    return words


def hamming_prime_words() -> np.ndarray:
    """The 16 words of H' (H with permuted coordinates), shape (16, 8), uint8."""
    return hamming_words()[:, list(H_PRIME_PERMUTATION)]


@lru_cache(maxsize=1)
def golay_codewords() -> np.ndarray:
    """All 4,096 codewords, shape (4096, 24), uint8 0/1, in Turyn index order."""
    h = hamming_words()
    hp = hamming_prime_words()
    x = hp[:, None, None, :]
    a = h[None, :, None, :]
    b = h[None, None, :, :]
    shape = (16, 16, 16, 8)
    words = np.concatenate(
        [
            np.broadcast_to(a ^ x, shape),
            np.broadcast_to(b ^ x, shape),
            np.broadcast_to(a ^ b ^ x, shape),
        ],
        axis=-1,
    )
    words = words.reshape(4096, 24).copy()
    words.setflags(write=False)
    return words
