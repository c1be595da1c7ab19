"""Range coding of Λ24 tokens: round trips, determinism across threads, overhead, corrupt data."""

from __future__ import annotations

import constriction
import numpy as np
import pytest
import torch

from lqz.entropy import (
    CorruptStream,
    TokenDecoder,
    TokenEncoder,
    chain,
    ideal_bits,
    log_prob,
    symbol_bits,
)
from lqz.entropy.params import quantize_params
from lqz.entropy.shell_pmf import split_index
from lqz.errors import FormatError, LqzError

SIZE = 196_560
VALUES = np.arange(-4, 5)


def vmf_tables(rng: np.random.Generator, t: int, m: int, kappa: float) -> np.ndarray:
    mu = rng.normal(size=(t, m, 24))
    mu /= np.linalg.norm(mu, axis=-1, keepdims=True)
    return kappa * mu[..., None] * VALUES


def params(rng: np.random.Generator, kind: str, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(tables, logits) of ``t`` tokens: 'flat', 'random', 'peaked' (vMF) or 'mixture'."""
    if kind == "flat":
        return rng.normal(size=(t, 1, 24, 9)) * 0.05, np.zeros((t, 1))
    if kind == "random":
        return rng.normal(size=(t, 2, 24, 9)) * 2.0, rng.normal(size=(t, 2))
    if kind == "peaked":
        return vmf_tables(rng, t, 1, 40.0), np.zeros((t, 1))
    if kind == "mixture":
        kappa = rng.choice([5.0, 60.0, 400.0], size=(t, 3, 1, 1))
        return vmf_tables(rng, t, 3, 1.0) * kappa, rng.normal(size=(t, 3)) * 2.0
    raise KeyError(kind)


def draw(rng: np.random.Generator, tables: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Half of the tokens from the model, half uniformly over the codebook."""
    out = chain.sample(quantize_params(tables, logits), rng)
    uniform = rng.random(len(out)) < 0.5
    out[uniform] = rng.integers(0, SIZE, size=int(uniform.sum()))
    return out


def make_stream(seed: int = 0) -> tuple[list, bytes]:
    rng = np.random.default_rng(seed)
    calls = []
    for kind, t in [("random", 7), ("peaked", 0), ("mixture", 300), ("flat", 1), ("peaked", 1100)]:
        tables, logits = params(rng, kind, t)
        calls.append((tables, logits, draw(rng, tables, logits)))
    encoder = TokenEncoder()
    for tables, logits, indices in calls:
        encoder.encode(tables, logits, indices)
    return calls, encoder.finish()


def decode_stream(calls: list, data: bytes, threads: int | None = None) -> list[np.ndarray]:
    decoder = TokenDecoder(data, threads=threads)
    out = [decoder.decode(tables, logits) for tables, logits, _ in calls]
    decoder.finish()
    return out


def test_round_trip_many_calls() -> None:
    calls, data = make_stream()
    for (_, _, indices), decoded in zip(calls, decode_stream(calls, data), strict=True):
        assert decoded.dtype == np.int64
        assert np.array_equal(decoded, indices)
    # torch inputs work the same way
    tables, logits, indices = calls[2]
    encoder = TokenEncoder()
    encoder.encode(torch.from_numpy(tables).float(), torch.from_numpy(logits), indices)
    decoder = TokenDecoder(encoder.finish())
    assert np.array_equal(decoder.decode(torch.from_numpy(tables).float(), logits), indices)
    decoder.finish()


def test_results_do_not_depend_on_thread_counts() -> None:
    rng = np.random.default_rng(1)
    tables, logits = params(rng, "mixture", 200)
    p = quantize_params(tables, logits)
    indices = draw(rng, tables, logits)
    runs = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            summary = chain.summarize(p, threads=threads)
            details = [
                chain.detail_pmfs(p, summary, s, np.arange(200), np.zeros(200, np.int64), threads)
                for s in range(3)
            ]
            encoder = TokenEncoder(threads=threads)
            encoder.encode(tables, logits, indices)
            runs.append(([a.copy() for a in (summary.shape, *summary.support)], details, encoder))
    finally:
        torch.set_num_threads(before)
    (sum1, det1, enc1), (sum2, det2, enc2) = runs
    for a, b in zip(sum1 + det1, sum2 + det2, strict=True):
        assert np.array_equal(a, b)  # bitwise
    data = enc2.finish()
    assert data == enc1.finish()
    decoder = TokenDecoder(data, threads=1)  # encoded with 2 threads, decoded with 1
    assert np.array_equal(decoder.decode(tables, logits), indices)
    decoder.finish()


def test_encoder_and_decoder_pmfs_are_bit_identical() -> None:
    """The encoder's fused kernel, the decoder's passes and summarize give the same bits, with
    1 or 2 threads."""
    rng = np.random.default_rng(8)
    tables, logits = params(rng, "mixture", 150)
    tables[:50, :, 3] *= 300.0  # some components on the exact / log paths
    p = quantize_params(tables, logits)
    indices = draw(rng, tables, logits)
    shape, support, _ = split_index(indices)
    results = []
    for threads in (1, 2):
        enc = chain.encoder_pmfs(p, shape, support, threads)
        calls = []

        def decode_shapes(pmfs: np.ndarray, calls: list = calls, expect=enc.shape) -> np.ndarray:
            start = sum(calls)
            calls.append(len(pmfs))
            assert np.array_equal(pmfs, expect[start : start + len(pmfs)])
            return shape[start : start + len(pmfs)]

        decoded = chain.decoder_pmfs(p, decode_shapes, threads)
        assert sum(calls) == len(shape) and len(calls) > 1  # several steps, in token order
        shapes, groups, rows = decoded.pmfs, decoded.groups, decoded.support
        assert np.array_equal(decoded.shape, shape)
        details = chain.grouped_detail_pmfs(p, shapes, shape, support, threads)
        summary = chain.summarize(p, threads)
        assert np.array_equal(enc.shape, shapes.shape) and np.array_equal(enc.shape, summary.shape)
        for s in range(3):
            sel = groups[s]
            assert np.array_equal(sel, enc.groups[s])
            assert np.array_equal(enc.support[s], rows[s])
            assert np.array_equal(enc.support[s], summary.support[s][sel])
            assert np.array_equal(enc.detail[s], details[s])
            old = chain.detail_pmfs(p, summary, s, sel, support[sel], threads)
            assert np.array_equal(enc.detail[s], old)
        results.append([enc.shape.copy(), *(a.copy() for a in enc.support + enc.detail)])
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["peaked", "flat", "mixture"])
def test_overhead_bound(kind: str) -> None:
    rng = np.random.default_rng(2)
    count = 8000 if kind != "mixture" else 2000  # the benchmark measures 100k tokens
    tables, logits = params(rng, kind, count)
    indices = chain.sample(quantize_params(tables, logits), rng)
    encoder = TokenEncoder()
    encoder.encode(tables, logits, indices)
    real = 8 * len(encoder.finish())
    ideal = ideal_bits(tables, logits, indices)
    assert real <= 1.005 * ideal + 64, (real, ideal)
    # The ideal is -log2 p, as evaluated independently by the torch log-space path.
    p = quantize_params(tables[:500], logits[:500])
    lp = log_prob(torch.from_numpy(p.tables), torch.from_numpy(p.logits), indices[:500])
    part = ideal_bits(tables[:500], logits[:500], indices[:500])
    assert abs(part + float(lp.sum()) / np.log(2.0)) < 1e-8 * part + 1e-6


def test_symbol_bits_match_log_prob_per_token() -> None:
    """Per token, the coder's code length is -log2 p by the torch log-space path, for likely
    tokens and for far-tail ones (probabilities below float64's range in the chain)."""
    rng = np.random.default_rng(4)
    tables, logits = params(rng, "mixture", 300)
    likely = chain.sample(quantize_params(tables, logits), rng)
    peaked = np.repeat(vmf_tables(rng, 1, 1, 5000.0), 100, axis=0)
    unlikely = rng.integers(0, SIZE, size=100)
    for t, g, idx in ((tables, logits, likely), (peaked, np.zeros((100, 1)), unlikely)):
        bits = symbol_bits(t, g, idx)
        q = quantize_params(t, g)
        lp = log_prob(torch.from_numpy(q.tables), torch.from_numpy(q.logits), idx)
        expected = -lp.numpy() / np.log(2.0)
        assert bits.shape == (len(idx),)
        assert np.allclose(bits, expected, rtol=1e-9, atol=1e-9)
        assert float(bits.sum()) == ideal_bits(t, g, idx)
    assert (symbol_bits(peaked, np.zeros((100, 1)), unlikely) > 60).all()


def test_every_codeword_keeps_a_nonzero_probability() -> None:
    """Leaky quantization: under an extremely peaked model, every symbol of every step (so
    every one of the 196,560 codewords) is still encodable and decodes exactly."""
    rng = np.random.default_rng(3)
    tables, logits = vmf_tables(rng, 1, 1, 5000.0), np.zeros((1, 1))
    p = quantize_params(tables, logits)
    summary = chain.summarize(p)
    rows = [summary.shape[0]] + [summary.support[s][0] for s in range(3)]
    for s, size in enumerate((276, 759, 4096)):
        every = np.arange(size)
        rows.extend(chain.detail_pmfs(p, summary, s, np.zeros_like(every), every))
    for row in rows:
        assert np.isfinite(row).all() and (row >= 0).all() and row.sum() > 0
        model = constriction.stream.model.Categorical(row, perfect=False)
        symbols = np.arange(len(row), dtype=np.int32)
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(symbols, model)
        decoder = constriction.stream.queue.RangeDecoder(encoder.get_compressed())
        assert np.array_equal(decoder.decode(model, len(row)), symbols)
    # and through the token coder, with improbable tokens
    many = np.repeat(tables, 500, axis=0)
    indices = rng.integers(0, SIZE, size=500)
    encoder = TokenEncoder()
    encoder.encode(many, np.zeros((500, 1)), indices)
    data = encoder.finish()
    decoder = TokenDecoder(data)
    assert np.array_equal(decoder.decode(many, np.zeros((500, 1))), indices)
    decoder.finish()
    # Their ideal cost (far-tail probabilities, partly below float64 range in the chain) is
    # still exact; the coder pays about 24 bits per sub-symbol there, never more than 3 * 32.
    ideal = ideal_bits(many, np.zeros((500, 1)), indices)
    q = quantize_params(many, np.zeros((500, 1)))
    lp = log_prob(torch.from_numpy(q.tables), torch.from_numpy(q.logits), indices)
    assert abs(ideal + float(lp.sum()) / np.log(2.0)) < 1e-9 * ideal
    assert 8 * len(data) < 500 * 3 * 32


def corruptions(data: bytes) -> dict[str, bytes]:
    def flip(position: int, bit: int) -> bytes:
        out = bytearray(data)
        out[position] ^= 1 << bit
        return bytes(out)

    n = len(data)
    return {
        "flip-first": flip(0, 3),
        "flip-second-word": flip(5, 0),
        "flip-middle": flip(n // 2, 6),
        "flip-last": flip(n - 1, 1),
        "truncated": data[:-4],
        "half": data[: n // 2],
        "one-word": data[:4],
        "extra-zeros": data + bytes(4),
        "extra-random": data + bytes(np.random.default_rng(0).integers(0, 256, 8, np.uint8)),
        "empty": b"",
        "one-byte-short": data[:-1],
        "zeros": bytes(n),
    }


@pytest.fixture(scope="module")
def stream() -> tuple[list, bytes]:
    return make_stream(4)


@pytest.mark.parametrize("name", list(corruptions(b"\0" * 64)))
def test_corrupt_stream_raises_lqz_error(name: str, stream: tuple[list, bytes]) -> None:
    calls, data = stream
    with pytest.raises(LqzError):
        decode_stream(calls, corruptions(data)[name])


def test_corrupt_stream_is_a_format_error(stream: tuple[list, bytes]) -> None:
    """A corrupt payload gets the exit code of a corrupt container."""
    assert issubclass(CorruptStream, FormatError)
    assert CorruptStream.exit_code == FormatError.exit_code == 3
    calls, data = stream
    with pytest.raises(CorruptStream) as info:
        decode_stream(calls, corruptions(data)["flip-middle"])
    assert isinstance(info.value, FormatError)


def test_mismatched_decoding_raises_lqz_error(stream: tuple[list, bytes]) -> None:
    calls, data = stream
    with pytest.raises(LqzError):  # one token more than was encoded
        decoder = TokenDecoder(data)
        for tables, logits, _ in calls:
            decoder.decode(tables, logits)
        decoder.decode(*params(np.random.default_rng(0), "random", 1))
        decoder.finish()
    with pytest.raises(LqzError):  # other parameters than the encoder's
        other = [(t + np.random.default_rng(1).normal(size=t.shape), g, i) for t, g, i in calls]
        decode_stream(other, data)


def test_invalid_encoder_input() -> None:
    tables, logits = params(np.random.default_rng(6), "random", 3)
    encoder = TokenEncoder()
    with pytest.raises(ValueError):
        encoder.encode(tables, logits, np.array([0, 1, SIZE]))
    with pytest.raises(ValueError):
        encoder.encode(tables, logits, np.array([0, 1]))
    with pytest.raises(ValueError):
        encoder.encode(tables, logits[:, :1], np.array([0, 1, 2]))
    bad = tables.copy()
    bad[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError):
        encoder.encode(bad, logits, np.array([0, 1, 2]))
