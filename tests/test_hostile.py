"""Hostile .lqz files, built with the project's own writer: every one must fail with LqzError.

The files have valid CRCs and headers and declare one tile of the largest size the format
admits (``MAX_TILE_SIZE`` squared) at a level of a shipped model, with a payload that cannot be
that tile's stream: empty, a truncated real stream, or noise. Without a bound on the decoder's
work such a file of a few bytes kept ``lqz decode`` busy for minutes. How long they take is
measured by ``benchmarks/bench_hostile.py`` (not asserted here).

The token decoder's own checks are tested on real tile streams too: appended bytes are
rejected, and a truncated stream fails long before its tokens are all decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest

import lqz
from lqz import api
from lqz import format as fmt
from lqz.entropy import CorruptStream
from lqz.errors import LqzError
from lqz.qualities import model_levels

KINDS = ("empty", "truncated", "random")


def picture(seed: int, size: int = 48) -> np.ndarray:
    """A smooth random RGB picture (codes to a real, non-trivial stream)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.float64)
    up = np.kron(coarse, np.ones((size // 4, size // 4, 1)))
    return np.clip(up + rng.normal(0, 12, up.shape), 0, 255).astype(np.uint8)


def model_points() -> list[tuple[str, bytes, int]]:
    """(weights file name, model id, level) for every level of every shipped model."""
    ladder = api.model_set().ladder
    points = []
    for path, model_id in sorted(ladder.model_ids.items()):
        points += [(path.name, model_id, level) for level in range(1, len(model_levels(path)) + 1)]
    return points


@cache
def real_tile(model_id: bytes, level: int, size: int = 48) -> bytes:
    """The payload of a real ``size``-square tile coded with ``model_id`` at ``level``."""
    from lqz.tiles import encode_tile

    header = fmt.read_header(hostile_file("empty", model_id, level))
    loaded, groups = api.model_set().for_header(header)
    return encode_tile(loaded.model, picture(level, size), groups)


def hostile_payload(kind: str, model_id: bytes, level: int) -> bytes:
    if kind == "empty":
        return b""
    if kind == "truncated":
        stream = real_tile(model_id, level)
        return stream[: len(stream) // 2].rstrip(b"\0")
    noise = np.random.default_rng(level).bytes(4096)
    return noise[:-1] + b"\x01"


def one_tile_file(
    model_id: bytes, level: int, side: int, payload: bytes, depth_maps: bool = False
) -> bytes:
    """A file of this lqz's format version (with depth maps: version 4): a ``side``-square RGB
    image in one tile."""
    header = fmt.Header(
        version=fmt.DEPTH_MAP_VERSION if depth_maps else fmt.FORMAT_VERSION,
        model_id=model_id,
        level=level,
        fine=0,
        width=side,
        height=side,
        channels=3,
        has_alpha=False,
        tile_size=side,
        writer=api.writer(),
        depth_maps=depth_maps,
    )
    return fmt.pack(header, [payload])


def hostile_file(kind: str, model_id: bytes, level: int) -> bytes:
    """One file: a MAX_TILE_SIZE-square RGB image in one tile with a hostile payload."""
    return one_tile_file(model_id, level, fmt.MAX_TILE_SIZE, hostile_payload(kind, model_id, level))


def hostile_files() -> Iterator[tuple[str, bytes]]:
    """(name, file) for every payload kind at every level of every shipped model."""
    for name, model_id, level in model_points():
        for kind in KINDS:
            yield f"{name} level {level} {kind}", hostile_file(kind, model_id, level)


def refused(data: bytes) -> LqzError:
    with pytest.raises(LqzError) as info:
        lqz.decode(data)
    message = str(info.value)
    assert message and "\n" not in message
    return info.value


# The default run covers every level of every model once (the payload kind rotating); the slow
# run, every kind at every level.
POINTS = model_points()


@pytest.mark.parametrize("index", range(len(POINTS)), ids=[f"{n}-{lv}" for n, _, lv in POINTS])
def test_hostile_tile_fails(index: int) -> None:
    _, model_id, level = POINTS[index]
    kind = KINDS[index % len(KINDS)]
    error = refused(hostile_file(kind, model_id, level))
    assert isinstance(error, CorruptStream), error


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_hostile_tile_fails(kind: str) -> None:
    for _, model_id, level in POINTS:
        assert isinstance(refused(hostile_file(kind, model_id, level)), CorruptStream)


def test_real_tiles_still_decode() -> None:
    """The streams the hostile files are cut from are valid: the checks reject only the cuts."""
    for name, model_id, level in POINTS[:: max(1, len(POINTS) // 3)]:
        data = real_tile(model_id, level)
        got = np.asarray(lqz.decode(one_tile_file(model_id, level, 48, data)))
        assert got.shape == (48, 48, 3), name


def _decode_payload(payload: bytes, level: int = 1, size: int = 48) -> np.ndarray:
    codec = api.model_set()
    model_id = sorted(codec.ladder.model_ids.items())[-1][1]
    return np.asarray(lqz.decode(one_tile_file(model_id, level, size, payload)))


@pytest.mark.parametrize("extra", [1, 2, 3, 4, 5, 8])
def test_appended_bytes_are_rejected(extra: int) -> None:
    """No slack: bytes after a tile's stream (CRCs recomputed by pack) are an error."""
    model_id = sorted(api.model_set().ladder.model_ids.items())[-1][1]
    stream = real_tile(model_id, 1)
    _decode_payload(stream)  # the stream itself is fine
    rng = np.random.default_rng(extra)
    for _ in range(3):
        tail = rng.bytes(extra - 1) + bytes([int(rng.integers(1, 256))])
        with pytest.raises(CorruptStream):
            _decode_payload(stream + tail)


def test_truncated_stream_fails_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream cut to a quarter fails after decoding few of its symbols, not at the end."""
    from lqz.entropy import coder

    model_id = sorted(api.model_set().ladder.model_ids.items())[-1][1]
    stream = real_tile(model_id, 3, 128)
    symbols = []
    real = coder.TokenDecoder._decode

    def counted(self, model, *args):  # type: ignore[no-untyped-def]
        symbols.append(len(args[0]) if isinstance(args[0], np.ndarray) else args[0])
        return real(self, model, *args)

    monkeypatch.setattr(coder.TokenDecoder, "_decode", counted)
    _decode_payload(stream, 3, 128)
    whole = sum(symbols)
    symbols.clear()
    with pytest.raises(CorruptStream, match="ends before"):
        _decode_payload(stream[: len(stream) // 4].rstrip(b"\0"), 3, 128)
    assert sum(symbols) < whole / 2, (sum(symbols), whole)


def depth_map_file(payload: bytes, side: int = fmt.MAX_TILE_SIZE) -> bytes:
    """A version 4 file with the depth-map flag: top level of the main model, one tile."""
    _, model_id, level = POINTS[-1]
    return one_tile_file(model_id, level, side, payload, depth_maps=True)


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_depth_map_tile_fails(kind: str) -> None:
    """Empty, cut and random payloads of a depth-map tile; a real tile without a map."""
    from lqz.tiles import encode_tile

    _, model_id, level = POINTS[-1]
    loaded, groups = api.model_set().for_header(
        fmt.read_header(hostile_file("empty", model_id, level))
    )
    choices = loaded.model.config.levels[:level]
    real = encode_tile(loaded.model, picture(3), groups, 0, choices, 0.002)
    assert np.asarray(lqz.decode(depth_map_file(real, 48))).shape == (48, 48, 3)
    payload = {"empty": b"", "truncated": real[: len(real) // 2].rstrip(b"\0")}.get(
        kind, hostile_payload("random", model_id, level)
    )
    assert isinstance(refused(depth_map_file(payload)), CorruptStream)
    # a stream without a map, read as one, and a map stream read as none
    plain = real_tile(model_id, level)
    assert isinstance(refused(depth_map_file(plain, 48)), CorruptStream)
    assert isinstance(refused(one_tile_file(model_id, level, 48, real)), CorruptStream)
