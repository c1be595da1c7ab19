"""The ``.lqz`` container, format versions 1 to 4: the one module that reads and writes it.

Layout (all integers little-endian; ``docs/FORMAT.md`` is the full specification)::

    fixed header   44 bytes   magic, version, flags, model id, level, fine, width, height,
                   (v1) or    channels, tile size, tile count, file length, from version 2 on
                   60 (v2+)   the writer (16 bytes), then the CRC32 of all the bytes before it
    section table  8 x E      (u32 length, u32 CRC32) per section: the tiles row-major,
                              then the alpha section if flag bit 0 is set
                              (version 4: flag bit 1, each tile's stream opens with
                              its depth map)
    index CRC      4 bytes    CRC32 of everything before it (fixed header and table)
    payload                   the sections, back to back, in table order

Every check a reader makes raises a subclass of :class:`lqz.errors.FormatError`; nothing large
is allocated before the declared sizes are known to agree with each other and with the data.
"""

from __future__ import annotations

import math
import operator
import struct
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import (
    BadMagic,
    ChecksumMismatch,
    CorruptAlpha,
    FormatLimitError,
    ImplausibleHeader,
    TrailingData,
    TruncatedFile,
    UnknownModel,
    UnsupportedVersion,
)

__all__ = [
    "DEPTH_BLOCK",
    "DEPTH_MAP_VERSION",
    "EXACT_PRIOR_VERSION",
    "FORMAT_VERSION",
    "MAGIC",
    "Header",
    "Section",
    "compress_alpha",
    "decompress_alpha",
    "describe_writer",
    "header_size",
    "pack",
    "read_header",
    "read_sections",
    "section_bytes",
    "unpack",
]

Buffer = bytes | bytearray | memoryview

# --- bitstream constants (the single source of truth) ----------------------------------------

#: PNG-style signature: a high-bit byte (catches 7-bit channels), the name, CR LF (catches
#: newline conversion), ^Z (stops ``type`` on DOS) and LF.
MAGIC = b"\x89LQZ\r\n\x1a\n"
#: The version :func:`pack` writes by default (version 2 records the writer; version 3, laid out
#: as version 2, codes its tokens with the exact prior, :mod:`lqz.nn.exact_prior`).
FORMAT_VERSION = 3
#: Versions this module reads and writes.
SUPPORTED_VERSIONS = frozenset({1, 2, 3, 4})
#: The first version whose tokens are coded with the exact prior (the same pmfs on every
#: machine); earlier files were coded with the float prior.
EXACT_PRIOR_VERSION = 3
#: The first version that may set :data:`FLAG_DEPTH_MAPS` (laid out as version 3); lqz writes
#: it only for files that set it, so files without depth maps stay readable by older readers.
DEPTH_MAP_VERSION = 4

MODEL_ID_SIZE = 8
MAX_DIMENSION = 65535
MIN_DIMENSION = 1
#: Tile sizes are multiples of this, from ``TILE_ALIGN`` to ``MAX_TILE_SIZE`` pixels.
TILE_ALIGN = 16
MAX_TILE_SIZE = 4096
#: Most tiles a header can declare (65535 x 65535 pixels in 16 x 16 tiles).
MAX_TILES = math.ceil(MAX_DIMENSION / TILE_ALIGN) ** 2
#: Largest section (tile payload or alpha section).
MAX_SECTION_LENGTH = 2**32 - 1
MAX_LEVEL = 255
#: Bytes of the version 2 writer field (printable ASCII, NUL-padded on the right).
WRITER_SIZE = 16

#: Channel layout codes (the code is the number of coded colour channels).
CHANNELS_GRAY = 1
CHANNELS_RGB = 3
CHANNEL_CODES = (CHANNELS_GRAY, CHANNELS_RGB)

#: Flag bits; every other bit must be 0.
FLAG_ALPHA = 0x01
#: Version 4 on: adaptive depth. Every tile's token stream opens with its depth map, one choice
#: per :data:`DEPTH_BLOCK` x :data:`DEPTH_BLOCK` block of latent positions among the group
#: counts of the model's levels 1..``level`` (:mod:`lqz.entropy.depthmap`), and codes at each
#: position only the groups its depth keeps.
FLAG_DEPTH_MAPS = 0x02
#: Side, in latent positions, of the square blocks that share one depth in a depth map (the
#: last row and column of blocks may be cut at the tile's edge).
DEPTH_BLOCK = 4


def known_flags(version: int) -> int:
    """The flag bits a ``version`` header may set."""
    return FLAG_ALPHA | (FLAG_DEPTH_MAPS if version >= DEPTH_MAP_VERSION else 0)


#: zlib level compress_alpha uses (any valid zlib stream decodes; the level is not format).
ALPHA_ZLIB_LEVEL = 9
#: Output chunk of the bounded alpha decompression.
_ALPHA_CHUNK = 1 << 20

# magic, version, flags, model id, level, fine, width, height, channels, reserved,
# tile size, tile count, file length (version 2 follows it with the writer field)
_FIXED = struct.Struct("<8sBB8sBBHHBBHIQ")
_WRITER = struct.Struct(f"<{WRITER_SIZE}s")
_CRC = struct.Struct("<I")
_ENTRY = struct.Struct("<II")
#: Bytes of the version 1 fixed header including its CRC32 (offsets 0-43).
FIXED_HEADER_SIZE = _FIXED.size + _CRC.size
#: Bytes of the fixed header of each version, including its CRC32.
FIXED_HEADER_SIZES = {
    1: FIXED_HEADER_SIZE,
    2: _FIXED.size + _WRITER.size + _CRC.size,
    3: _FIXED.size + _WRITER.size + _CRC.size,
    4: _FIXED.size + _WRITER.size + _CRC.size,
}
ENTRY_SIZE = _ENTRY.size
CRC_SIZE = _CRC.size
#: Bytes needed to read the version (magic plus the version byte).
_VERSION_END = len(MAGIC) + 1

assert _FIXED.size == 40 and FIXED_HEADER_SIZE == 44 and FIXED_HEADER_SIZES[2] == 60
assert set(FIXED_HEADER_SIZES) == SUPPORTED_VERSIONS
assert ENTRY_SIZE == 8


# --- header ------------------------------------------------------------------------------------


def _field_problem(
    version: int,
    model_id: bytes,
    level: int,
    fine: int,
    width: int,
    height: int,
    channels: int,
    tile_size: int,
) -> str | None:
    """What is wrong with these header values (a one-line message), or None."""
    if version not in SUPPORTED_VERSIONS:
        return f"version {version} is not one of {sorted(SUPPORTED_VERSIONS)}"
    if len(model_id) != MODEL_ID_SIZE:
        return f"model id must be {MODEL_ID_SIZE} bytes, got {len(model_id)}"
    if not 0 <= level <= MAX_LEVEL:
        return f"level {level} outside 0..{MAX_LEVEL}"
    if fine != 0:
        return f"fine setting {fine} is reserved and must be 0 in version {version}"
    for name, side in (("width", width), ("height", height)):
        if not MIN_DIMENSION <= side <= MAX_DIMENSION:
            return f"{name} {side} outside {MIN_DIMENSION}..{MAX_DIMENSION}"
    if channels not in CHANNEL_CODES:
        return f"channel code {channels} is neither {CHANNELS_GRAY} (gray) nor {CHANNELS_RGB} (RGB)"
    if not (TILE_ALIGN <= tile_size <= MAX_TILE_SIZE and tile_size % TILE_ALIGN == 0):
        return f"tile size {tile_size} is not a multiple of {TILE_ALIGN} in 16..{MAX_TILE_SIZE}"
    return None


@dataclass(frozen=True)
class Header:
    """Everything the fixed header records (the section table lives in the file only).

    ``level`` is the level of the model (1-based), ``writer`` the program that wrote the file
    (``"lqz 0.1.0"``): required from version 2 on, ``None`` in version 1, which does not record
    it. ``depth_maps``: the tiles' streams open with depth maps (version 4 on).
    Constructing one with values the format cannot store raises
    :class:`~lqz.errors.FormatLimitError`.
    """

    version: int
    model_id: bytes
    level: int
    fine: int
    width: int
    height: int
    channels: int
    has_alpha: bool
    tile_size: int
    writer: str | None = None
    depth_maps: bool = False

    def __post_init__(self) -> None:
        try:
            for name in ("version", "level", "fine", "width", "height", "channels", "tile_size"):
                object.__setattr__(self, name, operator.index(getattr(self, name)))
            object.__setattr__(self, "model_id", bytes(self.model_id))
        except TypeError as exc:
            raise FormatLimitError(f"header field of the wrong type: {exc}") from None
        object.__setattr__(self, "has_alpha", bool(self.has_alpha))
        object.__setattr__(self, "depth_maps", bool(self.depth_maps))
        if self.depth_maps and self.version < DEPTH_MAP_VERSION:
            raise FormatLimitError(
                f"cannot store in an .lqz header: depth maps need format version "
                f"{DEPTH_MAP_VERSION}, not {self.version}"
            )
        problem = _field_problem(
            self.version,
            self.model_id,
            self.level,
            self.fine,
            self.width,
            self.height,
            self.channels,
            self.tile_size,
        ) or _writer_problem(self.version, self.writer)
        if problem is not None:
            raise FormatLimitError(f"cannot store in an .lqz header: {problem}")

    @property
    def tiles_x(self) -> int:
        """Tile columns: ceil(width / tile_size)."""
        return -(-self.width // self.tile_size)

    @property
    def tiles_y(self) -> int:
        """Tile rows: ceil(height / tile_size)."""
        return -(-self.height // self.tile_size)

    @property
    def num_tiles(self) -> int:
        """Number of tiles, ``tiles_x * tiles_y``."""
        return self.tiles_x * self.tiles_y

    @property
    def num_sections(self) -> int:
        """Entries in the section table: the tiles, plus one if there is an alpha section."""
        return self.num_tiles + int(self.has_alpha)

    def tile_box(self, index: int) -> tuple[int, int, int, int]:
        """Pixel box ``(x0, y0, x1, y1)`` (end-exclusive) of tile ``index`` in row-major order."""
        if not 0 <= index < self.num_tiles:
            raise IndexError(f"tile {index} of {self.num_tiles}")
        row, col = divmod(index, self.tiles_x)
        x0, y0 = col * self.tile_size, row * self.tile_size
        return x0, y0, min(x0 + self.tile_size, self.width), min(y0 + self.tile_size, self.height)

    def tile_boxes(self) -> list[tuple[int, int, int, int]]:
        """All tile boxes ``(x0, y0, x1, y1)``, row-major; edge tiles are cut at the image edge."""
        ts, w, h = self.tile_size, self.width, self.height
        return [
            (x0, y0, min(x0 + ts, w), min(y0 + ts, h))
            for y0 in range(0, h, ts)
            for x0 in range(0, w, ts)
        ]


def _writer_problem(version: int, writer: object) -> str | None:
    """What is wrong with the writer of a ``version`` header (a one-line message), or None."""
    if version == 1:
        return None if writer is None else "format version 1 does not record the writer"
    if not isinstance(writer, str):
        return f"format version {version} records the writer: a string, not {writer!r}"
    if not 1 <= len(writer) <= WRITER_SIZE or not all(" " <= c <= "~" for c in writer):
        return f"writer {writer!r} is not 1..{WRITER_SIZE} printable ASCII characters"
    return None


def describe_writer(header: Header) -> str:
    """The writer of a file in words: ``"lqz 0.1.0"``, or why it is unknown."""
    if header.writer is None:
        return f"unknown (format version {header.version} does not record it)"
    return header.writer


def header_size(header: Header) -> int:
    """Bytes before the first payload byte: fixed header, section table and index CRC."""
    return FIXED_HEADER_SIZES[header.version] + ENTRY_SIZE * header.num_sections + CRC_SIZE


class Section(NamedTuple):
    """One payload section: where it lies in the file, its length and its CRC32."""

    offset: int
    length: int
    crc32: int

    @property
    def end(self) -> int:
        return self.offset + self.length


# --- writing -----------------------------------------------------------------------------------


def pack(header: Header, tiles: Sequence[Buffer], alpha: Buffer | None = None) -> bytes:
    """A complete ``.lqz`` file from a header, the tile payloads (row-major) and the alpha section.

    ``alpha`` is the output of :func:`compress_alpha`, given iff ``header.has_alpha``.
    """
    if not isinstance(header, Header):
        raise TypeError(f"header must be a Header, got {type(header).__name__}")
    if len(tiles) != header.num_tiles:
        raise FormatLimitError(
            f"{len(tiles)} tile payloads for {header.width}x{header.height} in "
            f"{header.tile_size}-pixel tiles (needs {header.num_tiles})"
        )
    if (alpha is not None) != header.has_alpha:
        raise FormatLimitError(
            "an alpha section is required iff header.has_alpha"
            f" (has_alpha={header.has_alpha}, alpha given: {alpha is not None})"
        )
    sections = [memoryview(t).cast("B") for t in tiles]
    if alpha is not None:
        sections.append(memoryview(alpha).cast("B"))
    for i, s in enumerate(sections):
        if s.nbytes > MAX_SECTION_LENGTH:
            raise FormatLimitError(f"section {i} has {s.nbytes} bytes (at most 2^32 - 1)")
    head_len = header_size(header)
    file_length = head_len + sum(s.nbytes for s in sections)
    flags = (FLAG_ALPHA if header.has_alpha else 0) | (FLAG_DEPTH_MAPS if header.depth_maps else 0)
    fixed = _FIXED.pack(
        MAGIC,
        header.version,
        flags,
        header.model_id,
        header.level,
        header.fine,
        header.width,
        header.height,
        header.channels,
        0,
        header.tile_size,
        header.num_tiles,
        file_length,
    )
    if header.writer is not None:
        fixed += _WRITER.pack(header.writer.encode("ascii"))
    out = bytearray(fixed)
    out += _CRC.pack(zlib.crc32(fixed))
    for s in sections:
        out += _ENTRY.pack(s.nbytes, zlib.crc32(s))
    out += _CRC.pack(zlib.crc32(out))
    for s in sections:
        out += s
    assert len(out) == file_length
    return bytes(out)


# --- reading -----------------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n:,} byte" + ("" if n == 1 else "s")


def _parse(data: Buffer) -> tuple[Header, np.ndarray, int, int]:
    """Validate everything up to the index CRC: (header, table (E, 2) u32, payload start, length).

    Only the fixed header and the section table are read; the payload may be absent.
    """
    view = memoryview(data).cast("B")
    n = view.nbytes
    # Magic, then version: both before any CRC, since another version may lay out differently.
    if n < len(MAGIC):
        if view.tobytes() == MAGIC[:n]:
            raise TruncatedFile(
                "empty file, not an .lqz file" if n == 0 else f"truncated .lqz file: {_size(n)}"
            )
        raise BadMagic("not an .lqz file (bad magic bytes)")
    if view[: len(MAGIC)] != MAGIC:
        raise BadMagic("not an .lqz file (bad magic bytes)")
    if n < _VERSION_END:
        raise TruncatedFile(f"truncated .lqz file: {_size(n)}")
    version = view[len(MAGIC)]
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            f"unsupported .lqz format version {version} (this reader knows version "
            f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})"
        )
    fixed_size = FIXED_HEADER_SIZES[version]
    if n < fixed_size:
        raise TruncatedFile(
            f"truncated .lqz file: {_size(n)}, the fixed header alone has {fixed_size}"
        )
    (
        _magic,
        version,
        flags,
        model_id,
        level,
        fine,
        width,
        height,
        channels,
        reserved,
        tile_size,
        declared_tiles,
        file_length,
    ) = _FIXED.unpack_from(view, 0)
    (stored,) = _CRC.unpack_from(view, fixed_size - CRC_SIZE)
    if zlib.crc32(view[: fixed_size - CRC_SIZE]) != stored:
        raise ChecksumMismatch("corrupt .lqz file: header CRC32 mismatch")
    writer = None
    if version >= 2:
        (raw,) = _WRITER.unpack_from(view, _FIXED.size)
        writer = raw.rstrip(b"\0").decode("latin-1")
        problem = _writer_problem(version, writer)
        if "\0" in writer:
            problem = f"writer field {writer!r} has a NUL byte before its end"
        if problem is not None:
            raise ImplausibleHeader(f"implausible .lqz header: {problem}")
    # From here the fixed fields are what the writer wrote: check they make sense.
    if flags & ~known_flags(version):
        raise ImplausibleHeader(f"implausible .lqz header: unknown flag bits 0x{flags:02x}")
    if reserved != 0:
        raise ImplausibleHeader(f"implausible .lqz header: reserved byte is {reserved}, not 0")
    problem = _field_problem(version, model_id, level, fine, width, height, channels, tile_size)
    if problem is not None:
        raise ImplausibleHeader(f"implausible .lqz header: {problem}")
    header = Header(
        version=version,
        model_id=model_id,
        level=level,
        fine=fine,
        width=width,
        height=height,
        channels=channels,
        has_alpha=bool(flags & FLAG_ALPHA),
        tile_size=tile_size,
        writer=writer,
        depth_maps=bool(flags & FLAG_DEPTH_MAPS),
    )
    if declared_tiles != header.num_tiles:
        raise ImplausibleHeader(
            f"implausible .lqz header: {declared_tiles:,} tiles declared, but "
            f"{width}x{height} in {tile_size}-pixel tiles makes {header.num_tiles:,}"
        )
    head_len = header_size(header)
    if file_length < head_len:
        raise ImplausibleHeader(
            f"implausible .lqz header: file length {_size(file_length)} is shorter than its "
            f"own header and section table ({_size(head_len)})"
        )
    if n < head_len:
        raise TruncatedFile(
            f"truncated .lqz file: {_size(n)}, header and section table need {_size(head_len)}"
        )
    (stored,) = _CRC.unpack_from(view, head_len - CRC_SIZE)
    if zlib.crc32(view[: head_len - CRC_SIZE]) != stored:
        raise ChecksumMismatch("corrupt .lqz file: section table CRC32 mismatch")
    table = np.frombuffer(view, dtype="<u4", count=2 * header.num_sections, offset=fixed_size)
    table = table.reshape(header.num_sections, 2)
    payload = int(table[:, 0].sum(dtype=np.uint64))
    if head_len + payload != file_length:
        raise ImplausibleHeader(
            f"implausible .lqz header: sections total {_size(payload)}, but the declared file "
            f"length leaves {_size(file_length - head_len)} after the header"
        )
    return header, table, head_len, file_length


def read_header(data: Buffer) -> Header:
    """The header of an ``.lqz`` file, validated as far as the header and section table go.

    ``data`` may be the whole file or just its start (the fixed header and section table:
    :func:`header_size` bytes). Checks magic, version, both header CRCs, field ranges, the tile
    count, and that the section lengths add up to the declared file length. Raises a
    :class:`~lqz.errors.FormatError` subclass.
    """
    return _parse(data)[0]


def _check_model(header: Header, known_model_ids: Collection[bytes] | None) -> None:
    if known_model_ids is not None and header.model_id not in {bytes(m) for m in known_model_ids}:
        raise UnknownModel(
            f"the .lqz file needs model {header.model_id.hex()}, which is not available here "
            f"(file written by {describe_writer(header)})"
        )


def read_sections(
    data: Buffer, known_model_ids: Collection[bytes] | None = None
) -> tuple[Header, list[Section]]:
    """Header and section table (tiles row-major, then alpha) without touching the payload.

    For readers that fetch tiles one at a time: ``data`` needs only the first
    :func:`header_size` bytes. Check each section with :func:`section_bytes`.
    """
    header, table, head_len, _ = _parse(data)
    _check_model(header, known_model_ids)
    lengths = table[:, 0].astype(np.int64)
    starts = head_len + np.cumsum(lengths) - lengths
    rows = zip(starts.tolist(), lengths.tolist(), table[:, 1].tolist(), strict=True)
    return header, [Section(offset, length, crc) for offset, length, crc in rows]


def _section_name(index: int, header: Header) -> str:
    if index < header.num_tiles:
        return f"tile {index} of {header.num_tiles}"
    return "alpha section"


def section_bytes(data: Buffer, section: Section, name: str = "section") -> memoryview:
    """The bytes of ``section`` in ``data`` (the whole file), CRC-checked."""
    view = memoryview(data).cast("B")
    if view.nbytes < section.end:
        raise TruncatedFile(f"truncated .lqz file: {name} ends at byte {section.end:,}")
    chunk = view[section.offset : section.end]
    if zlib.crc32(chunk) != section.crc32:
        raise ChecksumMismatch(f"corrupt .lqz file: {name} CRC32 mismatch")
    return chunk


def unpack(
    data: Buffer, known_model_ids: Collection[bytes] | None = None
) -> tuple[Header, list[memoryview], memoryview | None]:
    """Fully validate an ``.lqz`` file: header, tiles (row-major) and compressed alpha section.

    ``known_model_ids``: the model ids the caller can decode with (``UnknownModel`` otherwise);
    None skips the check. Tile payloads and the alpha section are zero-copy slices of ``data``.
    The alpha section is returned still compressed (see :func:`decompress_alpha`).
    """
    view = memoryview(data).cast("B")
    header, sections = read_sections(view, known_model_ids)
    file_length = header_size(header) + sum(s.length for s in sections)
    if view.nbytes < file_length:
        raise TruncatedFile(f"truncated .lqz file: {_size(view.nbytes)} of {_size(file_length)}")
    if view.nbytes > file_length:
        raise TrailingData(
            f"{_size(view.nbytes - file_length)} of trailing data after the .lqz file "
            f"({_size(file_length)})"
        )
    chunks = [section_bytes(view, s, _section_name(i, header)) for i, s in enumerate(sections)]
    alpha = chunks.pop() if header.has_alpha else None
    return header, chunks, alpha


# --- alpha -------------------------------------------------------------------------------------


def _check_dims(width: int, height: int) -> None:
    for name, side in (("width", width), ("height", height)):
        if not MIN_DIMENSION <= side <= MAX_DIMENSION:
            raise FormatLimitError(f"alpha {name} {side} outside {MIN_DIMENSION}..{MAX_DIMENSION}")


def compress_alpha(alpha: np.ndarray) -> bytes:
    """The alpha section for an 8-bit plane (H, W): one zlib stream of its bytes, row-major."""
    alpha = np.asarray(alpha)
    if alpha.ndim != 2 or alpha.dtype != np.uint8:
        raise FormatLimitError(
            f"alpha must be a uint8 (H, W) plane, got {alpha.dtype} with shape {alpha.shape}"
        )
    _check_dims(alpha.shape[1], alpha.shape[0])
    return zlib.compress(memoryview(np.ascontiguousarray(alpha)).cast("B"), ALPHA_ZLIB_LEVEL)


def decompress_alpha(data: Buffer, width: int, height: int) -> np.ndarray:
    """The uint8 (height, width) alpha plane of an alpha section.

    Decompression stops as soon as the output would pass ``width * height`` bytes (no zip
    bomb); anything but one complete zlib stream of exactly that size raises
    :class:`~lqz.errors.CorruptAlpha`.
    """
    _check_dims(width, height)
    total = width * height
    # Grown as the stream inflates, so a short bogus section cannot make us allocate W x H.
    out = bytearray()
    inflater = zlib.decompressobj()
    pending: Buffer = memoryview(data).cast("B")
    try:
        while not inflater.eof:
            chunk = inflater.decompress(pending, _ALPHA_CHUNK)
            progress = len(chunk) > 0 or len(inflater.unconsumed_tail) < len(pending)
            pending = inflater.unconsumed_tail
            if len(out) + len(chunk) > total:
                raise CorruptAlpha(
                    f"corrupt alpha section: inflates to more than {width}x{height} bytes"
                )
            out += chunk
            if not progress and not inflater.eof:
                raise CorruptAlpha("corrupt alpha section: zlib stream ends early")
    except zlib.error as exc:
        raise CorruptAlpha(f"corrupt alpha section: {exc}") from None
    if inflater.unused_data:
        raise CorruptAlpha(
            f"corrupt alpha section: {_size(len(inflater.unused_data))} after the zlib stream"
        )
    if len(out) != total:
        raise CorruptAlpha(
            f"corrupt alpha section: inflates to {_size(len(out))}, not {width}x{height}"
        )
    return np.frombuffer(out, dtype=np.uint8).reshape(height, width)
