"""Fuzzing lqz.format and lqz.decode: whatever the bytes, only LqzError subclasses escape.

The CI run makes about 12,000 cases (about a minute on a busy 2-core machine), nearly all of them
parses; the ``decode_*`` properties take real files of the shipped models (tiny tiles), damage
their tile payloads, alpha sections or header fields, recompute every CRC (``lqz.format.pack``
or :func:`reseal`) and decode them: each must give an image of the declared size or an
LqzError. ``LQZ_FUZZ_EXAMPLES=N`` makes every property run in proportion to N cases in all
(e.g. 100000); ``pytest -m slow`` runs ``SLOW_FACTOR`` (20) times the CI counts. Any file the
readers accept must also be canonical: ``pack(*unpack(data)) == data``.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lqz
from lqz import format as fmt
from lqz.errors import LqzError

MODEL = b"fuzzmdl1"
SLOW_FACTOR = 20

#: CI examples per property (about 12,000 in all).
CI_EXAMPLES = {
    "random_bytes": 1500,
    "forged_headers": 2500,
    "mutations": 3000,
    "resealed_mutations": 2500,
    "alpha_random": 1000,
    "alpha_mutations": 1500,
    "field_mutations": 1500,
    "decode_payloads": 60,
    "decode_alpha": 20,
    "decode_fields": 40,
}
#: ``LQZ_FUZZ_EXAMPLES``: run every property in proportion, to about this many cases in all.
_TOTAL = int(os.environ.get("LQZ_FUZZ_EXAMPLES", "0") or 0)
SCALE = _TOTAL / sum(CI_EXAMPLES.values()) if _TOTAL else 1.0


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- what every case checks --------------------------------------------------------------------


def one_line(exc: LqzError) -> None:
    message = str(exc)
    assert message and "\n" not in message, repr(message)


def exercise(data: bytes) -> None:
    """Run every reader on ``data``; LqzError is fine, anything else fails the test."""
    try:
        header = fmt.read_header(data)
    except LqzError as exc:
        one_line(exc)
        header = None
    try:
        fmt.read_sections(data, known_model_ids={MODEL})
    except LqzError as exc:
        one_line(exc)
    try:
        got = fmt.unpack(data)
    except LqzError as exc:
        one_line(exc)
        return
    # Accepted: the header agrees, and the file is exactly what pack makes of its parts.
    assert got[0] == header
    assert fmt.pack(*got) == bytes(data)
    if got[0].has_alpha:
        try:
            plane = fmt.decompress_alpha(got[2], got[0].width, got[0].height)
        except LqzError as exc:
            one_line(exc)
        else:
            assert plane.shape == (got[0].height, got[0].width)


def exercise_alpha(data: bytes, width: int, height: int) -> None:
    try:
        plane = fmt.decompress_alpha(data, width, height)
    except LqzError as exc:
        one_line(exc)
    else:
        assert plane.shape == (height, width) and plane.dtype == np.uint8


# --- inputs (built from a seed: cheap enough for ~12,000 cases a minute on a busy CPU) ----------


def valid_file(r: random.Random) -> bytes:
    """A small valid file: up to 6 x 6 tiles, short payloads (often empty), optional alpha."""
    width, height = r.randint(1, 96), r.randint(1, 96)
    has_alpha = r.random() < 0.5
    version = r.choice(sorted(fmt.SUPPORTED_VERSIONS))
    header = fmt.Header(
        version=version,
        writer=None if version == 1 else r.choice(["lqz 0.1.0", "x", "a" * 16]),
        model_id=r.choice([MODEL, b"\0" * 8]),
        level=r.randrange(256),
        fine=0,
        width=width,
        height=height,
        channels=r.choice([1, 3]),
        has_alpha=has_alpha,
        tile_size=r.choice([16, 32, 48, 4096]),
    )
    tiles = [
        r.randbytes(0 if r.random() < 0.3 else r.randint(0, 12)) for _ in range(header.num_tiles)
    ]
    alpha = None
    if has_alpha:
        plane = np.frombuffer(r.randbytes(width * height), np.uint8).reshape(height, width)
        alpha = fmt.compress_alpha((plane & 3) * 85)
    return fmt.pack(header, tiles, alpha)


def mutate(r: random.Random, data: bytes, most: int = 4) -> bytes:
    """1 to ``most`` random edits: bit flips, byte sets, truncation, insertion, deletion."""
    out = bytearray(data)
    for _ in range(r.randint(1, most)):
        n = len(out)
        op = r.randrange(6)
        if op == 0 and n:
            out[r.randrange(n)] ^= 1 << r.randrange(8)
        elif op == 1 and n:
            out[r.randrange(n)] = r.randrange(256)
        elif op == 2:
            del out[r.randint(0, n) :]
        elif op == 3:
            at = r.randint(0, n)
            out[at:at] = r.randbytes(r.randint(1, 16))
        elif op == 4 and n:
            at = r.randrange(n)
            del out[at : at + r.randint(1, 8)]
        elif op == 5:
            out += r.randbytes(r.randint(1, 16))
    return bytes(out)


def reseal(data: bytes, fix_length: bool) -> bytes:
    """Recompute the CRCs (and optionally the file length) so that the deeper checks run."""
    out = bytearray(data)
    fixed = fmt.FIXED_HEADER_SIZES.get(out[8] if len(out) > 8 else 1, fmt.FIXED_HEADER_SIZE)
    if len(out) < fixed:
        return bytes(out)
    if fix_length:
        struct.pack_into("<Q", out, 32, len(out))
    struct.pack_into("<I", out, fixed - 4, zlib.crc32(out[: fixed - 4]))
    (tiles,) = struct.unpack_from("<I", out, 28)
    entries = tiles + (out[9] & 1)
    end = fixed + 8 * entries
    if end + 4 > len(out):
        return bytes(out)
    offset = end + 4
    for i in range(entries):  # section CRCs, as far as the sections lie inside the data
        at = fixed + 8 * i
        (length,) = struct.unpack_from("<I", out, at)
        if offset + length <= len(out):
            struct.pack_into("<I", out, at + 4, zlib.crc32(out[offset : offset + length]))
        offset += length
    struct.pack_into("<I", out, end, zlib.crc32(out[:end]))
    return bytes(out)


def forged_file(r: random.Random) -> bytes:
    """Right magic and version, valid CRCs; each field sane or (now and then) absurd."""

    def pick(sane: object, absurd: Callable[[], object], p: float = 0.1) -> object:
        return absurd() if r.random() < p else sane

    width = pick(r.randint(1, 80), lambda: r.choice([0, 65535, r.randint(0, 65535)]), 0.2)
    height = pick(r.randint(1, 80), lambda: r.choice([0, 65535, r.randint(0, 65535)]), 0.2)
    tile_size = pick(r.choice([16, 32]), lambda: r.choice([0, 17, 4096, 4112, r.randrange(65536)]))
    derived = -(-width // tile_size) * -(-height // tile_size) % 2**32 if tile_size else 0
    tiles = pick(derived, lambda: r.randrange(2**32))
    flags = pick(r.randint(0, 1), lambda: r.randrange(256), 0.05)
    count = pick(min(tiles + (flags & 1), 64), lambda: r.randint(0, 64))
    lengths = [pick(r.randint(0, 8), lambda: r.randrange(2**32), 0.05) for _ in range(count)]
    payload = r.randbytes(
        min(pick(sum(lengths), lambda: r.choice([0, 1, 100, sum(lengths) + 1])), 4096)
    )
    version = r.choice([1, 2])
    head_len = fmt.FIXED_HEADER_SIZES[version] + 8 * count + 4
    length = pick(
        head_len + len(payload), lambda: r.choice([head_len + sum(lengths), r.randrange(2**64)])
    )
    fixed = struct.pack(
        "<8sBB8sBBHHBBHIQ",
        fmt.MAGIC,
        version,
        flags,
        r.choice([MODEL, b"\x01" * 8]),
        r.randrange(256),
        pick(0, lambda: r.randint(1, 255), 0.05),
        width,
        height,
        pick(r.choice([1, 3]), lambda: r.choice([0, 2, 4, 255]), 0.05),
        pick(0, lambda: r.randint(1, 255), 0.05),
        tile_size,
        tiles,
        length,
    )
    if version == 2:
        writer = pick(
            b"lqz 0.1.0", lambda: r.choice([b"", b"\0a", b"a\0b", b"\xff", r.randbytes(16)])
        )
        fixed += writer.ljust(16, b"\0")[:16]
    out = bytearray(fixed + struct.pack("<I", zlib.crc32(fixed)))
    offset = 0
    for n in lengths:
        crc = zlib.crc32(payload[offset : offset + n])
        out += struct.pack("<II", n, pick(crc, lambda: r.randrange(2**32), 0.05))
        offset += n
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out + payload)


def alpha_section(r: random.Random) -> tuple[bytes, int, int]:
    """A zlib section (right or wrong size, then mutated or not) and the plane size to expect."""
    width, height = r.randint(1, 48), r.randint(1, 48)
    size = width * height if r.random() < 0.6 else r.randint(0, 3000)
    raw = bytes([r.choice([0, 1, 255])]) * size if r.random() < 0.5 else r.randbytes(size)
    stream = zlib.compress(raw, r.randint(0, 9))
    return (mutate(r, stream, 3) if r.random() < 0.8 else stream), width, height


#: (offset, struct format) of each fixed-header field after the magic (both versions).
HEADER_FIELDS = [
    (8, "<B"),  # version
    (9, "<B"),  # flags
    (10, "<Q"),  # model id
    (18, "<B"),  # level
    (19, "<B"),  # fine
    (20, "<H"),  # width
    (22, "<H"),  # height
    (24, "<B"),  # channels
    (25, "<B"),  # reserved
    (26, "<H"),  # tile size
    (28, "<I"),  # tile count
    (32, "<Q"),  # file length
]


def edge_value(r: random.Random, size: int) -> int:
    top = 2 ** (8 * size) - 1
    return r.choice([0, 1, 2, 3, 15, 16, 17, 255, 256, 4096, top, top - 1, r.randint(0, top)]) & top


def mutate_fields(r: random.Random, data: bytes) -> bytes:
    """Set 1-3 header fields, table entries or writer bytes to edge values, then reseal."""
    out = bytearray(data)
    fixed = fmt.FIXED_HEADER_SIZES.get(out[8], fmt.FIXED_HEADER_SIZE)
    (tiles,) = struct.unpack_from("<I", out, 28)
    entries = tiles + (out[9] & 1)
    for _ in range(r.randint(1, 3)):
        where = r.random()
        if where < 0.5:
            at, code = r.choice(HEADER_FIELDS)
            value = edge_value(r, struct.calcsize(code))
            if at == 8 and r.random() < 0.7:
                value = r.choice([1, 2])  # the other version's layout on this one's bytes
            struct.pack_into(code, out, at, value)
        elif where < 0.8 and entries:
            at = fixed + 8 * r.randrange(entries)  # a section length (reseal fixes the CRC)
            struct.pack_into("<I", out, at, edge_value(r, 4))
        elif fixed > fmt.FIXED_HEADER_SIZE:  # the writer field
            out[40 + r.randrange(16)] = r.choice([0, 0x20, 0x7E, 0x7F, 0xFF, r.randrange(256)])
    return reseal(bytes(out), fix_length=r.random() < 0.5)


# --- decoding: real files of the shipped models, damaged past their CRCs -----------------------


@cache
def real_files() -> tuple[bytes, ...]:
    """Tiny real files: RGB, gray, RGBA and two-tile images at the lowest qualities of both
    models (decoding each takes a few tens of milliseconds on an idle core)."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
    qualities = sorted({lqz.QUALITIES[0], *(q for run in _runs() for q in run[:1])})
    files = []
    for quality in qualities:
        files.append(lqz.encode(pixels[:16, :16, :3], quality=quality, effort=0))
        files.append(lqz.encode(pixels[:16, :16, 0], quality=quality, effort=0))
        files.append(lqz.encode(pixels[:20, :18], quality=quality, tile_size=16, effort=0))
    return tuple(files)


def _runs() -> list[tuple[int, ...]]:
    from lqz import api

    return api.model_set().runs()


def exercise_decode(data: bytes) -> None:
    """Decode ``data``: an image of the declared size, or an LqzError; nothing else."""
    try:
        image = lqz.decode(data, max_pixels=1 << 16)
    except LqzError as exc:
        one_line(exc)
        return
    header = fmt.read_header(data)
    assert image.size == (header.width, header.height)
    assert image.mode == ("L" if header.channels == 1 else "RGB") + (
        "A" if header.has_alpha else ""
    )


def damaged_payloads(r: random.Random) -> bytes:
    """A real file with 1-2 tile payloads edited (or swapped in from another file), repacked."""
    files = real_files()
    header, tiles, alpha = fmt.unpack(r.choice(files))
    tiles = [bytes(t) for t in tiles]
    for _ in range(r.randint(1, 2)):
        i = r.randrange(len(tiles))
        op = r.random()
        if op < 0.15:
            other = fmt.unpack(r.choice(files))[1]
            tiles[i] = bytes(r.choice(other))
        elif op < 0.3:
            tiles[i] = r.randbytes(r.randint(0, 2 * len(tiles[i]) + 4))
        else:
            tiles[i] = mutate(r, tiles[i], 3)
    return fmt.pack(header, tiles, None if alpha is None else bytes(alpha))


def damaged_alpha(r: random.Random) -> bytes:
    files = [f for f in real_files() if fmt.read_header(f).has_alpha]
    header, tiles, alpha = fmt.unpack(r.choice(files))
    return fmt.pack(header, [bytes(t) for t in tiles], mutate(r, bytes(alpha), 3))


def damaged_fields(r: random.Random) -> bytes:
    """A real file with header fields, section lengths or writer bytes set to edge values."""
    data = r.choice(real_files())
    if r.random() < 0.5:  # a sane but different level, size or layout, repacked
        header, tiles, alpha = fmt.unpack(data)
        changes = r.choice(
            [
                {"level": r.randint(0, 12)},
                {"width": r.randint(1, 16 * header.tiles_x)},
                {"height": r.randint(1, 16 * header.tiles_y)},
                {"channels": 4 - header.channels},
            ]
        )
        fields = {**header.__dict__, **changes}
        try:
            new = fmt.Header(**fields)
            return fmt.pack(new, [bytes(t) for t in tiles], None if alpha is None else bytes(alpha))
        except LqzError:
            pass
    return mutate_fields(r, data)


# --- properties --------------------------------------------------------------------------------

CASES: dict[str, Callable[[random.Random], None]] = {
    "forged_headers": lambda r: exercise(forged_file(r)),
    "mutations": lambda r: exercise(mutate(r, valid_file(r))),
    "resealed_mutations": lambda r: exercise(
        reseal(mutate(r, valid_file(r)), fix_length=r.random() < 0.5)
    ),
    "alpha_mutations": lambda r: exercise_alpha(*alpha_section(r)),
    "field_mutations": lambda r: exercise(mutate_fields(r, valid_file(r))),
    "decode_payloads": lambda r: exercise_decode(damaged_payloads(r)),
    "decode_alpha": lambda r: exercise_decode(damaged_alpha(r)),
    "decode_fields": lambda r: exercise_decode(damaged_fields(r)),
}


def make(name: str, factor: int) -> Callable[..., None]:
    examples = max(1, round(CI_EXAMPLES[name] * factor * SCALE))
    if name == "random_bytes":

        @fuzz_settings(examples)
        @given(
            st.one_of(
                st.binary(max_size=300),
                st.binary(max_size=120).map(lambda b: fmt.MAGIC + b),
                st.binary(max_size=120).map(lambda b: fmt.MAGIC + b"\x01" + b),
            )
        )
        def test(data: bytes) -> None:
            exercise(data)

    elif name == "alpha_random":

        @fuzz_settings(examples)
        @given(st.binary(max_size=200), st.integers(1, 64), st.integers(1, 64))
        def test(data: bytes, width: int, height: int) -> None:
            exercise_alpha(data, width, height)

    else:
        case = CASES[name]

        @fuzz_settings(examples)
        @given(st.integers(0, 2**64 - 1))
        def test(seed: int) -> None:
            case(random.Random(seed))

    test.__name__ = f"test_{name}" + ("_slow" if factor > 1 else "")
    return test


test_random_bytes = make("random_bytes", 1)
test_forged_headers = make("forged_headers", 1)
test_mutations = make("mutations", 1)
test_resealed_mutations = make("resealed_mutations", 1)
test_alpha_random = make("alpha_random", 1)
test_alpha_mutations = make("alpha_mutations", 1)
test_field_mutations = make("field_mutations", 1)
test_decode_payloads = make("decode_payloads", 1)
test_decode_alpha = make("decode_alpha", 1)
test_decode_fields = make("decode_fields", 1)

test_random_bytes_slow = pytest.mark.slow(make("random_bytes", SLOW_FACTOR))
test_forged_headers_slow = pytest.mark.slow(make("forged_headers", SLOW_FACTOR))
test_mutations_slow = pytest.mark.slow(make("mutations", SLOW_FACTOR))
test_resealed_mutations_slow = pytest.mark.slow(make("resealed_mutations", SLOW_FACTOR))
test_alpha_random_slow = pytest.mark.slow(make("alpha_random", SLOW_FACTOR))
test_alpha_mutations_slow = pytest.mark.slow(make("alpha_mutations", SLOW_FACTOR))
test_field_mutations_slow = pytest.mark.slow(make("field_mutations", SLOW_FACTOR))
test_decode_payloads_slow = pytest.mark.slow(make("decode_payloads", SLOW_FACTOR))
test_decode_alpha_slow = pytest.mark.slow(make("decode_alpha", SLOW_FACTOR))
test_decode_fields_slow = pytest.mark.slow(make("decode_fields", SLOW_FACTOR))


def test_ci_budget() -> None:
    assert sum(CI_EXAMPLES.values()) >= 10_000


def test_resealed_mutations_reach_deep_checks() -> None:
    """The resealing helper does what it is for: a resealed, unmutated file is valid."""
    rng = np.random.default_rng(0)
    header = fmt.Header(1, MODEL, 1, 0, 40, 20, 3, True, 16)
    tiles = [rng.bytes(int(n)) for n in rng.integers(0, 5, header.num_tiles)]
    data = fmt.pack(header, tiles, fmt.compress_alpha(np.zeros((20, 40), np.uint8)))
    broken = bytearray(data)
    broken[-20] ^= 1
    assert reseal(bytes(broken), True) != data
    fmt.unpack(reseal(bytes(broken), True))


def test_resealed_version_2_reaches_deep_checks() -> None:
    header = fmt.Header(2, MODEL, 1, 0, 40, 20, 3, False, 16, writer="lqz 0.1.0")
    data = bytearray(fmt.pack(header, [b"ab"] * header.num_tiles))
    data[-1] ^= 1
    assert fmt.unpack(reseal(bytes(data), False))[0] == header


def test_decode_cases_reach_the_decoder() -> None:
    """The real files decode, and a damaged payload repacked gets past every CRC to the token
    decoder (CorruptStream), so the decode properties test the codec, not the container."""
    from lqz.entropy import CorruptStream

    files = real_files()
    assert {fmt.read_header(f).channels for f in files} == {1, 3}
    assert any(fmt.read_header(f).has_alpha for f in files)
    for data in files[:3]:
        exercise_decode(data)
        lqz.decode(data)
    header, tiles, _ = fmt.unpack(files[0])
    with pytest.raises(CorruptStream):
        lqz.decode(fmt.pack(header, [bytes(tiles[0])[:-2] + b"\x01"]))
