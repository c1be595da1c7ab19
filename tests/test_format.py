"""The .lqz container (lqz.format): layout, round trips, and one crafted input per error."""

from __future__ import annotations

import dataclasses
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lqz import format as fmt
from lqz.errors import (
    BadMagic,
    ChecksumMismatch,
    CorruptAlpha,
    FormatError,
    FormatLimitError,
    ImplausibleHeader,
    LqzError,
    TrailingData,
    TruncatedFile,
    UnknownModel,
    UnsupportedVersion,
)

MODEL = bytes(range(1, 9))
OTHER_MODEL = b"\xff" * 8

#: A 40x20 gray image with alpha, 32-pixel tiles (2 tiles: b"AB" and b""), alpha all 255.
#: Pinned so that any change to the byte layout shows up here (and in docs/FORMAT.md).
GOLDEN = bytes.fromhex(
    "894c515a0d0a1a0a"  # 0   magic
    "01"  # 8   version 1
    "01"  # 9   flags: alpha
    "0102030405060708"  # 10  model id
    "05"  # 18  level 5
    "00"  # 19  fine 0
    "2800"  # 20  width 40
    "1400"  # 22  height 20
    "01"  # 24  channels: gray
    "00"  # 25  reserved
    "2000"  # 26  tile size 32
    "02000000"  # 28  2 tiles
    "5b00000000000000"  # 32  file length 91
    "0534232a"  # 40  CRC32 of bytes 0-39
    "02000000074c6930"  # 44  tile 0: 2 bytes, CRC32
    "0000000000000000"  # 52  tile 1: 0 bytes, CRC32 0
    "11000000da1dee1e"  # 60  alpha: 17 bytes, CRC32
    "6a2100e4"  # 68  CRC32 of bytes 0-67
    "4142"  # 72  tile 0
    "78dafbff7f148c8251800b0000f8921d0e"  # 74  alpha section (zlib)
)


#: The same image as :data:`GOLDEN` in format version 2, written by "lqz 0.1.0".
GOLDEN_V2 = bytes.fromhex(
    "894c515a0d0a1a0a"  # 0   magic
    "02"  # 8   version 2
    "01"  # 9   flags: alpha
    "0102030405060708"  # 10  model id
    "05"  # 18  level 5
    "00"  # 19  fine 0
    "2800"  # 20  width 40
    "1400"  # 22  height 20
    "01"  # 24  channels: gray
    "00"  # 25  reserved
    "2000"  # 26  tile size 32
    "02000000"  # 28  2 tiles
    "6b00000000000000"  # 32  file length 107
    "6c717a20302e312e3000000000000000"  # 40  writer "lqz 0.1.0", NUL-padded to 16 bytes
    "bd9a9c0d"  # 56  CRC32 of bytes 0-55
    "02000000074c6930"  # 60  tile 0: 2 bytes, CRC32
    "0000000000000000"  # 68  tile 1: 0 bytes, CRC32 0
    "11000000da1dee1e"  # 76  alpha: 17 bytes, CRC32
    "6a2100e4"  # 84  CRC32 of bytes 0-83
    "4142"  # 88  tile 0
    "78dafbff7f148c8251800b0000f8921d0e"  # 90  alpha section (zlib)
)
WRITER = "lqz 9.8.7"


def make_header(**changes: object) -> fmt.Header:
    """A version 1 header (``version=2`` or later: with :data:`WRITER`)."""
    if changes.get("version", 1) >= 2:
        changes.setdefault("writer", WRITER)
    fields = dict(
        version=1,
        model_id=MODEL,
        level=3,
        fine=0,
        width=100,
        height=37,
        channels=3,
        has_alpha=False,
        tile_size=32,
    )
    fields.update(changes)
    return fmt.Header(**fields)  # type: ignore[arg-type]


#: What :data:`GOLDEN` and :data:`GOLDEN_V2` declare.
GOLDEN_HEADER = make_header(level=5, width=40, height=20, channels=1, has_alpha=True)
GOLDEN_V2_HEADER = dataclasses.replace(GOLDEN_HEADER, version=2, writer="lqz 0.1.0")


def small_file(has_alpha: bool = True, version: int = 1) -> bytes:
    """100x37 RGB in 32-pixel tiles (4x2 = 8 tiles of 0..7 bytes), optional alpha."""
    header = make_header(has_alpha=has_alpha, version=version)
    tiles = [bytes([65 + i]) * i for i in range(header.num_tiles)]
    alpha = np.arange(100 * 37, dtype=np.uint8).reshape(37, 100) if has_alpha else None
    return fmt.pack(header, tiles, fmt.compress_alpha(alpha) if has_alpha else None)


def forge(
    *,
    width: int = 100,
    height: int = 37,
    tile_size: int = 32,
    tiles: int | None = None,
    flags: int = 0,
    channels: int = 3,
    reserved: int = 0,
    fine: int = 0,
    version: int = 1,
    writer: bytes = WRITER.encode(),
    entries: list[tuple[int, int]] | None = None,
    file_length: int | None = None,
    payload: bytes = b"",
) -> bytes:
    """A file with valid CRCs whatever the fields say (the checks after the CRCs are reached)."""
    derived = -(-width // tile_size) * -(-height // tile_size) if tile_size else 1
    if tiles is None:
        tiles = derived
    if entries is None:
        entries = [(0, 0)] * (min(derived, 1000) + (flags & 1))
    head_len = fmt.FIXED_HEADER_SIZES.get(version, 44) + 8 * len(entries) + 4
    if file_length is None:
        file_length = head_len + len(payload)
    fixed = struct.pack(
        "<8sBB8sBBHHBBHIQ",
        fmt.MAGIC,
        version,
        flags,
        MODEL,
        3,
        fine,
        width,
        height,
        channels,
        reserved,
        tile_size,
        tiles,
        file_length,
    )
    if version >= 2:
        fixed += writer.ljust(16, b"\0")
    out = bytearray(fixed + struct.pack("<I", zlib.crc32(fixed)))
    for entry in entries:
        out += struct.pack("<II", *entry)
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out) + payload


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


# --- layout ------------------------------------------------------------------------------------


def test_golden_file() -> None:
    tiles = [b"AB", b""]
    alpha = GOLDEN[74:]
    assert fmt.pack(GOLDEN_HEADER, tiles, alpha) == GOLDEN
    assert fmt.read_header(GOLDEN) == GOLDEN_HEADER
    header, got, got_alpha = fmt.unpack(GOLDEN, known_model_ids={MODEL})
    assert header == GOLDEN_HEADER
    assert [bytes(t) for t in got] == tiles and got_alpha == alpha
    plane = fmt.decompress_alpha(got_alpha, 40, 20)
    assert plane.shape == (20, 40) and plane.dtype == np.uint8 and (plane == 255).all()


def test_golden_file_version_2() -> None:
    assert fmt.pack(GOLDEN_V2_HEADER, [b"AB", b""], GOLDEN[74:]) == GOLDEN_V2
    header, got, got_alpha = fmt.unpack(GOLDEN_V2, known_model_ids={MODEL})
    assert header == GOLDEN_V2_HEADER and header.writer == "lqz 0.1.0"
    assert [bytes(t) for t in got] == [b"AB", b""] and got_alpha == GOLDEN[74:]
    assert fmt.read_header(GOLDEN).writer is None  # version 1 does not record it
    assert fmt.describe_writer(fmt.read_header(GOLDEN)).startswith("unknown")


def test_constants() -> None:
    assert fmt.FORMAT_VERSION == 3 and fmt.MAGIC == b"\x89LQZ\r\n\x1a\n"
    assert sorted(fmt.SUPPORTED_VERSIONS) == [1, 2, 3, 4]
    assert fmt.FIXED_HEADER_SIZES == {1: 44, 2: 60, 3: 60, 4: 60}
    assert fmt.EXACT_PRIOR_VERSION == 3 and fmt.DEPTH_MAP_VERSION == 4
    assert fmt.FLAG_DEPTH_MAPS == 0x02
    assert fmt.FIXED_HEADER_SIZE == 44 and fmt.ENTRY_SIZE == 8 and fmt.CRC_SIZE == 4
    assert fmt.MAX_DIMENSION == 65535 and fmt.MAX_TILE_SIZE == 4096 and fmt.TILE_ALIGN == 16
    assert fmt.MAX_TILES == 4096 * 4096
    assert fmt.header_size(GOLDEN_HEADER) == 72


def test_errors_are_format_errors() -> None:
    for cls in (
        BadMagic,
        UnsupportedVersion,
        UnknownModel,
        TruncatedFile,
        ChecksumMismatch,
        ImplausibleHeader,
        TrailingData,
        CorruptAlpha,
    ):
        assert issubclass(cls, FormatError) and issubclass(cls, LqzError)
        assert cls.exit_code == 3
    assert issubclass(FormatLimitError, LqzError) and issubclass(FormatLimitError, ValueError)
    assert FormatLimitError.exit_code != 3


# --- tiles -------------------------------------------------------------------------------------


@st.composite
def headers(draw: st.DrawFn, max_tiles_per_side: int = 5) -> fmt.Header:
    tile_size = 16 * draw(st.one_of(st.integers(1, 8), st.integers(1, 256)))
    sides = []
    for _ in range(2):
        count = draw(st.integers(1, max_tiles_per_side))
        low = (count - 1) * tile_size + 1
        if low > fmt.MAX_DIMENSION:
            count, low = 1, 1
        sides.append(draw(st.integers(low, min(count * tile_size, fmt.MAX_DIMENSION))))
    version = draw(st.sampled_from(sorted(fmt.SUPPORTED_VERSIONS)))
    writer = None
    if version >= 2:
        alphabet = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
        writer = draw(st.text(alphabet, min_size=1, max_size=fmt.WRITER_SIZE))
    return fmt.Header(
        version=version,
        writer=writer,
        model_id=draw(st.binary(min_size=8, max_size=8)),
        level=draw(st.integers(0, 255)),
        fine=0,
        width=sides[0],
        height=sides[1],
        channels=draw(st.sampled_from([1, 3])),
        has_alpha=draw(st.booleans()),
        tile_size=tile_size,
    )


@settings(max_examples=150, deadline=None)
@given(headers())
def test_tile_boxes(header: fmt.Header) -> None:
    boxes = header.tile_boxes()
    assert len(boxes) == header.num_tiles == header.tiles_x * header.tiles_y
    assert [header.tile_box(i) for i in range(len(boxes))] == boxes
    area = 0
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        row, col = divmod(i, header.tiles_x)
        assert (x0, y0) == (col * header.tile_size, row * header.tile_size)  # row-major
        assert 0 < x1 - x0 <= header.tile_size and 0 < y1 - y0 <= header.tile_size
        # Only the last column / row is narrower; those end at the image edge.
        assert x1 == (x0 + header.tile_size if col < header.tiles_x - 1 else header.width)
        assert y1 == (y0 + header.tile_size if row < header.tiles_y - 1 else header.height)
        area += (x1 - x0) * (y1 - y0)
    assert area == header.width * header.height  # a grid of disjoint boxes covering the image
    with pytest.raises(IndexError):
        header.tile_box(header.num_tiles)


@settings(max_examples=200, deadline=None)
@given(header=headers(), data=st.data())
def test_round_trip(header: fmt.Header, data: st.DataObject) -> None:
    payload = st.one_of(st.just(b""), st.binary(max_size=40))  # empty tiles are common
    tiles = data.draw(st.lists(payload, min_size=header.num_tiles, max_size=header.num_tiles))
    alpha = data.draw(st.binary(max_size=30)) if header.has_alpha else None
    blob = fmt.pack(header, tiles, alpha)
    assert len(blob) == fmt.header_size(header) + sum(map(len, tiles)) + len(alpha or b"")
    assert fmt.read_header(blob) == header
    assert fmt.read_header(blob[: fmt.header_size(header)]) == header  # header + table suffice
    got_header, got_tiles, got_alpha = fmt.unpack(blob, known_model_ids={header.model_id})
    assert got_header == header
    assert [bytes(t) for t in got_tiles] == tiles
    assert (None if got_alpha is None else bytes(got_alpha)) == alpha
    assert fmt.unpack(bytearray(blob))[0] == header and fmt.unpack(memoryview(blob))[0] == header


def test_sections_read_independently() -> None:
    blob = small_file()
    head = blob[: fmt.header_size(make_header(has_alpha=True))]
    header, sections = fmt.read_sections(head, known_model_ids={MODEL})
    assert len(sections) == header.num_tiles + 1
    assert sections[0].offset == len(head)
    assert all(a.end == b.offset for a, b in zip(sections, sections[1:], strict=False))
    assert sections[-1].end == len(blob)
    for i in (5, 2):  # any order, each one on its own
        assert bytes(fmt.section_bytes(blob, sections[i])) == bytes([65 + i]) * i
    damaged = bytearray(blob)
    damaged[sections[5].offset] ^= 1
    with pytest.raises(ChecksumMismatch):
        fmt.section_bytes(damaged, sections[5])
    assert fmt.section_bytes(damaged, sections[2]) == bytes([67, 67])
    with pytest.raises(TruncatedFile):
        fmt.section_bytes(blob[: sections[5].end - 1], sections[5])


def test_header_and_pack_refuse_unstorable_values() -> None:
    for changes in (
        dict(version=3, writer=None),
        dict(version=4, writer=None),
        dict(version=3, depth_maps=True),
        dict(version=5),
        dict(version=2, writer=None),
        dict(version=2, writer=""),
        dict(version=2, writer="lqz é"),
        dict(version=2, writer="lqz\n0.1"),
        dict(version=2, writer="x" * 17),
        dict(version=2, writer=b"lqz"),
        dict(writer="lqz 0.1.0"),  # version 1 has no writer field
        dict(model_id=b"short"),
        dict(level=256),
        dict(level=-1),
        dict(fine=1),
        dict(width=0),
        dict(height=65536),
        dict(channels=2),
        dict(channels=4),
        dict(tile_size=0),
        dict(tile_size=24),
        dict(tile_size=4096 + 16),
        dict(width=1.5),
    ):
        with pytest.raises(FormatLimitError):
            make_header(**changes)
    assert make_header(width=np.int64(64)).width == 64
    header = make_header()
    with pytest.raises(FormatLimitError, match="tile payloads"):
        fmt.pack(header, [b""] * (header.num_tiles - 1))
    with pytest.raises(FormatLimitError, match="alpha"):
        fmt.pack(header, [b""] * header.num_tiles, b"x")
    with pytest.raises(FormatLimitError, match="alpha"):
        fmt.pack(make_header(has_alpha=True), [b""] * header.num_tiles)


# --- errors, one crafted input each ------------------------------------------------------------


def test_bad_magic() -> None:
    for data in (b"\x89PNG\r\n\x1a\n" + bytes(100), b"LQZ", b"x", small_file()[1:]):
        with pytest.raises(BadMagic) as exc:
            fmt.unpack(data)
        assert "not an .lqz file" in one_line(exc)
        with pytest.raises(BadMagic):
            fmt.read_header(data)


@pytest.mark.parametrize("version", [0, 5, 255])
def test_unsupported_version(version: int) -> None:
    for data in (forge(version=version), small_file()[:8] + bytes([version]) + small_file()[9:]):
        with pytest.raises(UnsupportedVersion) as exc:
            fmt.unpack(data)
        assert f"version {version}" in one_line(exc)


def test_unknown_model() -> None:
    blob = small_file()
    with pytest.raises(UnknownModel) as exc:
        fmt.unpack(blob, known_model_ids={OTHER_MODEL})
    assert MODEL.hex() in one_line(exc) and "format version 1" in one_line(exc)
    with pytest.raises(UnknownModel, match=f"{MODEL.hex()}.*written by {WRITER}"):
        fmt.unpack(small_file(version=2), known_model_ids={OTHER_MODEL})
    with pytest.raises(UnknownModel):
        fmt.unpack(blob, known_model_ids=[])
    with pytest.raises(UnknownModel):
        fmt.read_sections(blob, known_model_ids={OTHER_MODEL})
    assert fmt.unpack(blob, known_model_ids=None)[0].model_id == MODEL
    assert fmt.unpack(blob, known_model_ids=[OTHER_MODEL, bytearray(MODEL)])[0].model_id == MODEL


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("has_alpha", [True, False])
def test_truncation_at_every_offset(has_alpha: bool, version: int) -> None:
    blob = small_file(has_alpha, version)
    head_len = fmt.header_size(fmt.read_header(blob))
    for cut in range(len(blob)):
        with pytest.raises(TruncatedFile) as exc:
            fmt.unpack(blob[:cut])
        one_line(exc)
        if cut < head_len:
            with pytest.raises(TruncatedFile):
                fmt.read_header(blob[:cut])
        else:
            assert fmt.read_header(blob[:cut]) == make_header(has_alpha=has_alpha, version=version)


@pytest.mark.parametrize("version", [1, 2])
def test_flipped_bits(version: int) -> None:
    blob = small_file(version=version)
    for pos in range(len(blob)):
        for bit in range(8):
            damaged = bytearray(blob)
            damaged[pos] ^= 1 << bit
            if pos < 8:
                expected = BadMagic
            elif pos == 8 and damaged[8] not in fmt.SUPPORTED_VERSIONS:
                expected = UnsupportedVersion
            else:  # another known version: its header CRC does not hold (or is not there)
                expected = (ChecksumMismatch, TruncatedFile)
            with pytest.raises(expected) as exc:
                fmt.unpack(bytes(damaged))
            one_line(exc)


def test_checksum_names_the_tile() -> None:
    blob = bytearray(small_file())
    header, sections = fmt.read_sections(blob)
    blob[sections[3].offset + 1] ^= 0x10
    with pytest.raises(ChecksumMismatch, match="tile 3 of 8"):
        fmt.unpack(bytes(blob))
    blob = bytearray(small_file())
    blob[sections[-1].offset + 4] ^= 0x10
    with pytest.raises(ChecksumMismatch, match="alpha"):
        fmt.unpack(bytes(blob))


@pytest.mark.parametrize("tile_size", [16, 256, 4096])
def test_huge_image_tiny_file(tile_size: int) -> None:
    """65535 x 65535 with ~100 bytes: refused from the header alone, nothing big allocated."""
    data = forge(width=65535, height=65535, tile_size=tile_size, entries=[], payload=bytes(52))
    assert len(data) == 100
    tracemalloc.start()
    try:
        with pytest.raises(ImplausibleHeader) as exc:
            fmt.unpack(data)
        with pytest.raises(ImplausibleHeader):
            fmt.read_header(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert "shorter than its own header" in one_line(exc)
    # Declaring a matching (huge) file length instead: the data is simply too short.
    claims = fmt.FIXED_HEADER_SIZE + 8 * (-(-65535 // tile_size)) ** 2 + 4
    with pytest.raises(TruncatedFile):
        fmt.unpack(
            forge(width=65535, height=65535, tile_size=tile_size, entries=[], file_length=claims)
        )


@pytest.mark.parametrize(
    "fields",
    [
        dict(width=0),
        dict(height=0),
        dict(tile_size=0),
        dict(tile_size=24),
        dict(tile_size=4112),
        dict(channels=0),
        dict(channels=4),
        dict(flags=0x02),
        dict(version=3, flags=0x02),  # depth maps from version 4 on
        dict(version=4, flags=0x04),
        dict(flags=0x80),
        dict(reserved=1),
        dict(fine=7),
        dict(tiles=7),  # 100 x 37 in 32-pixel tiles is 8
        dict(tiles=9),
        dict(tiles=0xFFFFFFFF),
        dict(entries=[(5, 0)] + [(0, 0)] * 7),  # lengths sum past the declared file length
        dict(entries=[(0xFFFFFFFF, 0)] * 8),
        dict(entries=[(0, 0)] * 8, payload=b"xy", file_length=fmt.FIXED_HEADER_SIZE + 64 + 4 + 1),
        dict(file_length=0),
        dict(version=2, writer=b""),
        dict(version=2, writer=b"lqz\x000.1"),  # NUL inside the text
        dict(version=2, writer=b"lqz \xff"),
        dict(version=2, writer=b"lqz\t0.1"),
        dict(version=2, writer=b"\0lqz"),
    ],
)
def test_implausible_header(fields: dict) -> None:
    if fields.get("version") == 2:
        assert fmt.read_header(forge(version=2)).writer == WRITER  # only the field is wrong
    data = forge(**fields)
    with pytest.raises(ImplausibleHeader) as exc:
        fmt.unpack(data)
    assert one_line(exc).startswith("implausible .lqz header")
    with pytest.raises(ImplausibleHeader):
        fmt.read_header(data)


def test_depth_map_flag_round_trips_in_version_4() -> None:
    """Version 4 is version 3's layout; flag bit 1 says the tiles' streams open with depth maps."""
    header = make_header(version=4, depth_maps=True)
    data = fmt.pack(header, [b"x"] * header.num_tiles)
    assert data[8] == 4 and data[9] == fmt.FLAG_DEPTH_MAPS
    assert fmt.read_header(data) == header and fmt.unpack(data)[0].depth_maps
    plain = fmt.pack(make_header(version=4), [b"x"] * 8)
    assert plain[9] == 0 and not fmt.read_header(plain).depth_maps
    v3 = fmt.pack(make_header(version=3), [b"x"] * 8)
    assert data[10:40] == v3[10:40]  # the fields after the version and flags: as version 3
    with pytest.raises(FormatLimitError, match="version 4"):
        make_header(version=3, depth_maps=True)


def test_trailing_data() -> None:
    blob = small_file()
    for extra in (b"\0", b"garbage" * 10, blob):
        with pytest.raises(TrailingData) as exc:
            fmt.unpack(blob + extra)
        assert f"{len(extra):,} byte" in one_line(exc)
        assert fmt.read_header(blob + extra) == make_header(has_alpha=True)  # reads a prefix


# --- alpha -------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 70),
    st.integers(1, 70),
    st.sampled_from(["random", "flat", "mask", "ramp"]),
    st.integers(0, 2**32 - 1),
)
def test_alpha_round_trip(width: int, height: int, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    alpha = {
        "random": rng.integers(0, 256, (height, width)),
        "flat": np.full((height, width), rng.integers(256)),
        "mask": 255 * ((x - width / 2) ** 2 + (y - height / 2) ** 2 < width * height / 8),
        "ramp": x * 255 // max(width - 1, 1),
    }[kind].astype(np.uint8)
    section = fmt.compress_alpha(alpha)
    back = fmt.decompress_alpha(section, width, height)
    assert back.dtype == np.uint8 and back.shape == (height, width)
    np.testing.assert_array_equal(back, alpha)
    back[0, 0] ^= 1  # writable
    non_contiguous = np.asfortranarray(alpha)
    assert fmt.compress_alpha(non_contiguous) == section


def test_alpha_zip_bomb() -> None:
    """100 MB of zeros in ~100 kB, for a 100x100 plane: stops after at most one chunk."""
    bomb = zlib.compress(bytes(100_000_000), 9)
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(CorruptAlpha) as exc:
            fmt.decompress_alpha(bomb, 100, 100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert "more than 100x100" in one_line(exc)


def test_alpha_huge_declared_plane_small_section() -> None:
    """A 65535 x 65535 plane declared with a few bytes: no W x H allocation up front."""
    tracemalloc.start()
    try:
        with pytest.raises(CorruptAlpha):
            fmt.decompress_alpha(zlib.compress(bytes(1000)), 65535, 65535)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_alpha_corrupt_sections() -> None:
    good = fmt.compress_alpha(np.full((10, 10), 7, np.uint8))
    adler_flipped = good[:-1] + bytes([good[-1] ^ 1])
    cases = {
        "empty": b"",
        "garbage": b"not zlib at all",
        "short plane": zlib.compress(bytes(99)),
        "long plane": zlib.compress(bytes(101)),
        "truncated stream": good[:-3],
        "just the zlib header": good[:2],
        "bytes after the stream": good + b"\0",
        "two streams": good + good,
        "adler32": adler_flipped,
        "raw deflate": zlib.compress(bytes(100), wbits=-15),
        "gzip": zlib.compress(bytes(100), wbits=31),
    }
    for name, data in cases.items():
        with pytest.raises(CorruptAlpha) as exc:
            fmt.decompress_alpha(data, 10, 10)
        assert one_line(exc).startswith("corrupt alpha section"), name
    assert (fmt.decompress_alpha(good, 10, 10) == 7).all()
    assert (fmt.decompress_alpha(good, 20, 5) == 7).all()  # the plane is the caller's shape


def test_alpha_bad_arguments() -> None:
    with pytest.raises(FormatLimitError):
        fmt.compress_alpha(np.zeros((4, 4), np.uint16))
    with pytest.raises(FormatLimitError):
        fmt.compress_alpha(np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(FormatLimitError):
        fmt.compress_alpha(np.zeros((0, 4), np.uint8))
    for width, height in ((0, 5), (5, 0), (65536, 1)):
        with pytest.raises(FormatLimitError):
            fmt.decompress_alpha(zlib.compress(b""), width, height)
