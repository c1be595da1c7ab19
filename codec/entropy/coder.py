"""Range coding of Λ24 token indices with constriction, through the exact sub-symbol chain.

Per :meth:`TokenEncoder.encode` call, tokens go in chunks of :data:`~.chain.CHUNK`; per chunk the
stream holds, in this order: every token's shape, then the supports of the shape-A, B and C
tokens (each group in token order; a shape-C support is coded as its column
:func:`~.chain.support_columns`, not its Golay index), then their details (signs / position),
each group one batched constriction call with a ``Categorical(perfect=False)`` model family
(leaky: every symbol keeps a nonzero probability). :meth:`TokenEncoder.finish` appends a
16-bit check of all indices. The decoder recomputes every pmf through the same code on the
same grid-rounded parameters (:mod:`.params`), so the probabilities agree bit for bit, whatever
the thread count (the encoder's fused pass and the decoder's passes compute each pmf row with
the same functions).

Stream format: the constriction ``queue.RangeEncoder`` words as little-endian bytes, without
trailing zero bytes (they are implicit; a stream that ends in a zero byte is rejected).

The decoder's work is bounded by the stream: a range decoder reads one word per
renormalization, in step with the encoder, so decoding a whole stream of ``W`` words reads
``W + 1`` (the last one an implicit zero), more only if the stream ends in zero words (the seal's
point word is zero: about 2^-32 of streams). A twin decoder reads the same words followed by
:data:`PAD_WORDS` zeros and then noise: as long as both decode the same symbols, the decoder has
read no further than ``W + PAD_WORDS``; a stream that needs more (truncated, forged or noise) is
rejected as soon as the twins disagree, a few symbols later, not after the whole tile.
"""

from __future__ import annotations

import zlib

import constriction
import numpy as np
import torch

from ..errors import CorruptStream
from .chain import (
    CHUNK,
    SummaryBuffers,
    column_supports,
    conditional_probabilities,
    decoder_pmfs,
    encoder_pmfs,
    grouped_detail_pmfs,
    support_columns,
)
from .params import CodingParams, grid_rows, quantize_params, validate_params
from .shell_pmf import join_index, log_prob, split_index
from .structure import CODEBOOK_SIZE

__all__ = ["CorruptStream", "TokenDecoder", "TokenEncoder", "ideal_bits", "symbol_bits"]

_FAMILY = constriction.stream.model.Categorical(perfect=False)
CHECK_BITS = 16
_CHECK_MODEL = constriction.stream.model.Uniform(1 << CHECK_BITS)
#: Zero words the twin decoder reads past the stream's end before its noise tail: one is the
#: implicit last word of every stream, the others absorb streams whose last words are zero.
PAD_WORDS = 3
#: The twin's tail after the zeros: fixed noise (any nonzero words will do), long enough that
#: two decoders that have read different words disagree on a symbol long before it ends.
_TWIN_TAIL = np.random.default_rng(0x4C515A).integers(1, 2**32, 256, dtype=np.uint32)


def _indices(indices: np.ndarray | torch.Tensor, count: int) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    out = np.asarray(indices)
    if out.shape != (count,) or (out.size and not np.issubdtype(out.dtype, np.integer)):
        raise ValueError(f"indices must be an integer array of shape ({count},)")
    out = out.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= CODEBOOK_SIZE):
        raise ValueError(f"Leech shell indices must lie in 0..{CODEBOOK_SIZE - 1}")
    return out


def _update_check(check: int, indices: np.ndarray) -> int:
    return zlib.crc32(indices.astype("<i8").tobytes(), check)


class TokenEncoder:
    """Accumulates tokens from any number of :meth:`encode` calls into one stream."""

    def __init__(self, threads: int | None = None) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()
        self._check = 0
        self._threads = threads
        self._buffers = SummaryBuffers()
        self._finished = False

    def encode(
        self,
        tables: np.ndarray | torch.Tensor,
        mix_logits: np.ndarray | torch.Tensor,
        indices: np.ndarray | torch.Tensor,
    ) -> None:
        """Code ``indices`` (T,) under tables (T, M, 24, 9) and mixture logits (T, M)."""
        if self._finished:
            raise RuntimeError("encode() after finish()")
        raw = validate_params(tables, mix_logits)
        indices = _indices(indices, len(raw))
        for start in range(0, len(raw), CHUNK):
            stop = min(start + CHUNK, len(raw))
            params = grid_rows(raw, start, stop, self._buffers.grid(raw.tables.shape[1]))
            self._encode_chunk(params, indices[start:stop])
        self._check = _update_check(self._check, indices)

    def _encode_chunk(self, params: CodingParams, indices: np.ndarray) -> None:
        shape, support, detail = split_index(indices)
        pmfs = encoder_pmfs(params, shape, support, self._threads, self._buffers)
        self._coder.encode(shape.astype(np.int32), _FAMILY, pmfs.shape)
        for s, sel in enumerate(pmfs.groups):
            if sel.size:
                symbols = support_columns(s, support[sel]).astype(np.int32)
                self._coder.encode(symbols, _FAMILY, pmfs.support[s])
        for s, sel in enumerate(pmfs.groups):
            if sel.size:
                self._coder.encode(detail[sel].astype(np.int32), _FAMILY, pmfs.detail[s])

    def encode_symbols(self, symbols: np.ndarray, probabilities: np.ndarray) -> None:
        """Code small-alphabet ``symbols`` (n,) under their rows of ``probabilities`` (n, K),
        float64 rows summing to 1 (the leaky family quantizes them the same on every machine)."""
        if self._finished:
            raise RuntimeError("encode_symbols() after finish()")
        symbols = np.asarray(symbols, dtype=np.int64)
        if len(symbols):
            self._coder.encode(symbols.astype(np.int32), _FAMILY, probabilities)
        self._check = _update_check(self._check, symbols)

    def finish(self) -> bytes:
        """Close the stream and return its bytes (the encoder cannot be used afterwards)."""
        if not self._finished:
            check = np.array([self._check & ((1 << CHECK_BITS) - 1)], dtype=np.int32)
            self._coder.encode(check, _CHECK_MODEL)
            self._finished = True
        # Trailing zero bytes are implicit: the decoder pads with zeros, as constriction does.
        return self._coder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


class TokenDecoder:
    """Decodes a stream of :class:`TokenEncoder` with the same sequence of calls.

    Raises :class:`CorruptStream` as soon as the stream is used up (see the module docstring),
    and at :meth:`finish` if the check value differs or any byte of the stream is unused.
    """

    def __init__(self, data: bytes, threads: int | None = None) -> None:
        data = bytes(data)
        if data.endswith(b"\0"):
            raise CorruptStream("token stream: trailing zero bytes (not produced by the encoder)")
        data += bytes(-len(data) % 4)
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        # The explicit zero word: once the decoder has read it, the stream's every word has been
        # read, so maybe_exhausted() at the end tells "no unused word" exactly (see finish).
        padded = np.append(words, np.uint32(0))
        twin = np.concatenate([words, np.zeros(PAD_WORDS, np.uint32), _TWIN_TAIL])
        try:
            self._coder = constriction.stream.queue.RangeDecoder(padded)
            self._twin = constriction.stream.queue.RangeDecoder(twin)
        except Exception as error:  # constriction reports bad data with various types
            raise CorruptStream(f"token stream: {error}") from error
        self._check = 0
        self._threads = threads
        self._buffers = SummaryBuffers()
        self._finished = False

    def _decode(self, model: object, *args: object) -> np.ndarray:
        try:
            out = np.asarray(self._coder.decode(model, *args), dtype=np.int64)
        except Exception as error:
            raise CorruptStream(f"token stream: {error}") from error
        try:
            same = np.array_equal(out, np.asarray(self._twin.decode(model, *args)))
        except Exception:  # the twin read its noise tail into an invalid state
            same = False
        if not same:
            raise CorruptStream(
                "token stream: the data ends before the tokens do (truncated or corrupt payload)"
            )
        return out

    def decode(
        self, tables: np.ndarray | torch.Tensor, mix_logits: np.ndarray | torch.Tensor
    ) -> np.ndarray:
        """Indices (T,) int64 of the next T tokens, given their tables and mixture logits."""
        if self._finished:
            raise RuntimeError("decode() after finish()")
        raw = validate_params(tables, mix_logits)
        out = np.empty(len(raw), dtype=np.int64)
        for start in range(0, len(raw), CHUNK):
            stop = min(start + CHUNK, len(raw))
            params = grid_rows(raw, start, stop, self._buffers.grid(raw.tables.shape[1]))
            out[start:stop] = self._decode_chunk(params)
        self._check = _update_check(self._check, out)
        return out

    def decode_symbol(self, probabilities: np.ndarray) -> int:
        """The next symbol of :meth:`TokenEncoder.encode_symbols`, under its row (K,)."""
        if self._finished:
            raise RuntimeError("decode_symbol() after finish()")
        symbol = int(self._decode(_FAMILY, probabilities[None])[0])
        self._check = _update_check(self._check, np.array([symbol]))
        return symbol

    def _decode_chunk(self, params: CodingParams) -> np.ndarray:
        decoded = decoder_pmfs(
            params, lambda pmfs: self._decode(_FAMILY, pmfs), self._threads, self._buffers
        )
        shape = decoded.shape
        support = np.zeros_like(shape)
        detail = np.zeros_like(shape)
        for s, sel in enumerate(decoded.groups):
            if sel.size:
                support[sel] = column_supports(s, self._decode(_FAMILY, decoded.support[s]))
        rows = grouped_detail_pmfs(
            params, decoded.pmfs, shape, support, self._threads, self._buffers
        )
        for s, sel in enumerate(decoded.groups):
            if sel.size:
                detail[sel] = self._decode(_FAMILY, rows[s])
        return join_index(shape, support, detail)

    def finish(self) -> None:
        """Check the stream's end: raises :class:`CorruptStream` on a mismatch or unused data.

        A whole stream leaves the decoder past its last word, with the point the encoder's seal
        chose: at most ``2^32`` above the interval's bottom. Any word left unread, or a last word
        changed by more than one, fails ``maybe_exhausted``.
        """
        if self._finished:
            return
        self._finished = True
        check = int(self._decode(_CHECK_MODEL, 1)[0])
        if check != self._check & ((1 << CHECK_BITS) - 1):
            raise CorruptStream("token stream: check value mismatch (corrupt or truncated data)")
        if not self._coder.maybe_exhausted():
            raise CorruptStream("token stream: unused data after the last token")


def symbol_bits(
    tables: np.ndarray | torch.Tensor,
    mix_logits: np.ndarray | torch.Tensor,
    indices: np.ndarray | torch.Tensor,
    threads: int | None = None,
) -> np.ndarray:
    """``-log2 p`` (T,) of each of ``indices`` under the coder's grid-rounded parameters (what
    coding it costs, to the coder's rounding; the coder's kernels, ~10x faster than
    :func:`~.shell_pmf.log_prob`)."""
    params = quantize_params(tables, mix_logits)
    indices = _indices(indices, len(params))
    probs = conditional_probabilities(params, indices, threads)
    tiny = (probs < 1e-300).any(axis=1)
    with np.errstate(divide="ignore"):
        out = -np.log2(probs).sum(axis=1)
    if tiny.any():  # flushed far-tail symbols: exact log-space evaluation instead
        rows = np.flatnonzero(tiny)
        lp = log_prob(
            torch.from_numpy(params.tables[rows]),
            torch.from_numpy(params.logits[rows]),
            torch.from_numpy(indices[rows]),
        )
        out[rows] = -lp.numpy() / np.log(2.0)
    return out


def ideal_bits(
    tables: np.ndarray | torch.Tensor,
    mix_logits: np.ndarray | torch.Tensor,
    indices: np.ndarray | torch.Tensor,
    threads: int | None = None,
) -> float:
    """Total ``-log2 p`` of ``indices`` under the coder's grid-rounded parameters."""
    return float(symbol_bits(tables, mix_logits, indices, threads).sum())
