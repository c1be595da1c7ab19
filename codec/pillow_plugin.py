"""Pillow plugin: ``Image.open`` and ``Image.save`` of ``.lqz`` files (:func:`register_pillow`).

``Image.open`` reads the header only (size, mode, ``info``) and decodes on ``load()`` with
:func:`lqz.decode`; ``Image.save`` writes a complete file with :func:`lqz.encode`. Neither
opening nor registering imports torch.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from PIL import Image, ImageFile

from . import format as fmt
from .errors import FormatError, LqzError, TrailingData, TruncatedFile

if TYPE_CHECKING:
    from .qualities import Ladder

FORMAT = "LQZ"
EXTENSION = ".lqz"
#: Name of the decoder the tiles of an opened file name.
DECODER = "lqz"
#: Options of ``Image.save(..., format="LQZ")`` passed on to :func:`lqz.encode`.
SAVE_OPTIONS = ("quality", "bpp", "effort", "tile_size")
#: First read of a header; most files' header and section table fit (8 bytes a tile).
_HEAD_CHUNK = 1 << 16

# Pillow >= 11 types tiles as ImageFile._Tile; older releases take plain tuples.
_Tile = getattr(ImageFile, "_Tile", None)


def mode_of(header: fmt.Header) -> str:
    """The mode :func:`lqz.decode` returns for a file with ``header``."""
    base = "L" if header.channels == fmt.CHANNELS_GRAY else "RGB"
    return base + "A" if header.has_alpha else base


def max_pixels() -> int:
    """The pixel limit under Pillow's decompression-bomb rule: twice ``Image.MAX_IMAGE_PIXELS``
    (what ``Image.open`` raises ``DecompressionBombError`` above); 0 (none) when it is None."""
    limit = Image.MAX_IMAGE_PIXELS
    return 0 if limit is None else 2 * int(limit)


@lru_cache(maxsize=4)
def _ladder(path: Path) -> Ladder:
    from .qualities import Ladder

    return Ladder.load(path)


def quality_of(header: fmt.Header) -> int | None:
    """The quality of the installed ladder that wrote ``header``'s (model, level), if any.

    Reads the ladder and hashes its weights once per process; needs no torch.
    """
    from .qualities import ladder_path

    try:
        return _ladder(ladder_path()).quality_of(header.model_id, header.level, header.depth_maps)
    except LqzError:
        return None


def _read_head(fp: IO[bytes]) -> tuple[fmt.Header, list[fmt.Section]]:
    """The validated header and section table, reading little more than they need."""
    data = fp.read(_HEAD_CHUNK)
    while True:
        try:
            return fmt.read_sections(data)
        except TruncatedFile:
            more = fp.read(len(data))  # only files with very many tiles get here
            if not more:
                raise
            data += more


def _file_length(fp: IO[bytes]) -> int:
    fp.seek(0, os.SEEK_END)
    return fp.tell()


def _accept(prefix: bytes) -> bool:
    return prefix[: len(fmt.MAGIC)] == fmt.MAGIC


class LqzImageFile(ImageFile.ImageFile):
    """An ``.lqz`` file opened by Pillow: header read, pixels decoded on ``load()``."""

    format = FORMAT
    format_description = "lqz learned image codec (Leech lattice)"

    def _open(self) -> None:
        assert self.fp is not None
        self.fp.seek(0)
        header, sections = _read_head(self.fp)
        declared = sections[-1].end
        actual = _file_length(self.fp)
        if actual < declared:
            raise TruncatedFile(f"truncated .lqz file: {actual:,} bytes of {declared:,}")
        if actual > declared:
            raise TrailingData(
                f"{actual - declared:,} bytes of trailing data after the .lqz file "
                f"({declared:,} bytes)"
            )
        self._size = (header.width, header.height)
        self._mode = mode_of(header)
        self.info["model"] = header.model_id.hex()
        self.info["level"] = header.level
        quality = quality_of(header)
        if quality is not None:
            self.info["quality"] = quality
        tile = (DECODER, (0, 0, header.width, header.height), 0, None)
        self.tile = [_Tile(*tile) if _Tile is not None else tile]

    def verify(self) -> None:
        """Check the whole file (every CRC, the length) without decoding it, as Pillow's
        ``verify`` does: call it right after opening; the file is closed afterwards."""
        assert self.fp is not None
        self.fp.seek(0)
        fmt.unpack(self.fp.read())
        super().verify()


class LqzDecoder(ImageFile.PyDecoder):
    """Decodes a whole ``.lqz`` file with :func:`lqz.decode` into the image Pillow allocated."""

    _pulls_fd = True

    def decode(self, buffer: bytes) -> tuple[int, int]:
        from . import api

        assert self.fd is not None
        image = api.decode(self.fd.read(), max_pixels=max_pixels())
        if image.mode != self.mode or image.size != (self.state.xsize, self.state.ysize):
            raise FormatError(
                f"the .lqz file decodes to {image.mode} {image.size[0]}x{image.size[1]}, "
                f"not the {self.mode} {self.state.xsize}x{self.state.ysize} its header declares"
            )
        self.set_as_raw(image.tobytes())
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from . import api

    options: dict[str, Any] = {
        key: im.encoderinfo[key] for key in SAVE_OPTIONS if im.encoderinfo.get(key) is not None
    }
    fp.write(api.encode(im, **options))  # encoded in full first: a failure writes nothing


def register_pillow() -> None:
    """Teach Pillow the ``.lqz`` format (open, load, save, the ``.lqz`` extension).

    ``Image.save(path, quality=Q)``, ``bpp=T``, ``effort=E`` and ``tile_size=S`` are
    :func:`lqz.encode`'s options. Calling it again changes nothing.
    """
    Image.register_open(FORMAT, LqzImageFile, _accept)
    Image.register_decoder(DECODER, LqzDecoder)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
