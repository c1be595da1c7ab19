"""The Pillow plugin, driven through Pillow: ``Image.open``, ``load``, ``Image.save``.

References are lqz's own API on the same bytes (``lqz.encode``, ``lqz.decode``,
``lqz.format``). The model is the shipped one when it exists, else a tiny random one.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from expected_streams import EXPECTED, load_manifest, pixels_match
from PIL import Image, UnidentifiedImageError

import lqz
from lqz import api
from lqz import format as fmt
from lqz.errors import (
    ChecksumMismatch,
    ImageTooLarge,
    LqzError,
    TrailingData,
    TruncatedFile,
)
from lqz.qualities import ladder_path

SHIPPED = ladder_path()
WIDTH, HEIGHT = 64, 48


@pytest.fixture(scope="module", autouse=True)
def registered(weights: Path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LQZ_WEIGHTS", str(weights))
        api.clear_cache()
        lqz.register_pillow()
        yield weights
        api.clear_cache()


def picture(mode: str, seed: int = 0) -> Image.Image:
    """A smooth-plus-noise test image of ``mode``; alpha is a varying ramp (not opaque)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    planes = [x * 255 / (WIDTH - 1), y * 255 / (HEIGHT - 1), (x * 5 + y) % 256]
    rgb = np.clip(np.stack(planes, -1) + rng.normal(0, 8, (HEIGHT, WIDTH, 3)), 0, 255)
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    alpha = Image.fromarray(((x + 2 * y) * 255 // (WIDTH + 2 * HEIGHT)).astype(np.uint8), "L")
    if mode in ("L", "LA"):
        image = image.convert("L")
    if mode.endswith("A"):
        image.putalpha(alpha)
    return image


@pytest.fixture(scope="module")
def quality() -> int:
    return lqz.QUALITIES[0]


@pytest.fixture(scope="module")
def coded(tmp_path_factory: pytest.TempPathFactory, quality: int) -> dict[str, Path]:
    """One .lqz file per mode, each written by ``Image.save`` at the lowest quality."""
    folder = tmp_path_factory.mktemp("coded")
    paths = {}
    for mode in ("RGB", "L", "RGBA", "LA"):
        paths[mode] = folder / f"{mode}.lqz"
        picture(mode).save(paths[mode], quality=quality, effort=0)
    return paths


def test_register_twice_is_harmless() -> None:
    before = (list(Image.ID), dict(Image.OPEN), dict(Image.SAVE), dict(Image.DECODERS))
    lqz.register_pillow()
    lqz.register_pillow()
    assert (list(Image.ID), dict(Image.OPEN), dict(Image.SAVE), dict(Image.DECODERS)) == before
    assert Image.ID.count("LQZ") == 1


def test_registered_extension() -> None:
    assert Image.registered_extensions()[".lqz"] == "LQZ"


def test_open_reads_header_only(coded: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = api.decode

    def counting(data, *args, **kwargs):
        calls.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(api, "decode", counting)
    with Image.open(coded["RGB"]) as im:
        assert (im.format, im.size, im.mode) == ("LQZ", (WIDTH, HEIGHT), "RGB")
        assert im.tile and not calls
        im.load()
        assert calls == [coded["RGB"].stat().st_size]
        assert not im.tile
        im.load()  # loaded once
        assert len(calls) == 1


def test_open_does_not_import_torch(coded: dict[str, Path], registered: Path) -> None:
    code = (
        "import sys\n"
        "import lqz\n"
        "from PIL import Image\n"
        "lqz.register_pillow()\n"
        f"im = Image.open({str(coded['LA'])!r})\n"
        "print(im.format, im.mode, *im.size, im.info.get('quality'))\n"
        "heavy = {'torch', 'numba', 'constriction'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "LQZ_WEIGHTS": str(registered)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["LQZ", "LA", str(WIDTH), str(HEIGHT), str(lqz.QUALITIES[0])]


@pytest.mark.parametrize(
    ("source", "mode"), [("RGB", "RGB"), ("L", "L"), ("RGBA", "RGBA"), ("LA", "LA")]
)
def test_round_trip_equals_lqz_decode(coded: dict[str, Path], source: str, mode: str) -> None:
    data = coded[source].read_bytes()
    reference = lqz.decode(data)
    with Image.open(coded[source]) as im:
        assert im.mode == mode == reference.mode  # known before decoding
        im.load()
        assert im.size == reference.size == (WIDTH, HEIGHT)
        assert np.array_equal(np.asarray(im), np.asarray(reference))
        if mode.endswith("A"):  # alpha is stored losslessly
            original = picture(source).getchannel("A")
            assert np.array_equal(np.asarray(im.getchannel("A")), np.asarray(original))


def test_opaque_alpha_opens_without_alpha(tmp_path: Path, quality: int) -> None:
    image = picture("RGB")
    image.putalpha(255)
    image.save(tmp_path / "opaque.lqz", quality=quality, effort=0)
    with Image.open(tmp_path / "opaque.lqz") as im:
        assert im.mode == "RGB" == lqz.decode((tmp_path / "opaque.lqz").read_bytes()).mode


@pytest.mark.parametrize(
    "name", ["q2-gray-80x50", "q3-rgba-64x40", "q4-la-45x33", "q5-rgb-6tiles-150x100"]
)
def test_frozen_files_open_as_recorded(name: str, registered: Path) -> None:
    if registered != SHIPPED:
        pytest.skip("frozen files need the shipped models")
    expected = load_manifest()[name]
    with Image.open(EXPECTED / f"{name}.lqz") as im:
        assert [im.mode, list(im.size)] == [expected["mode"], expected["size"]]
        assert im.info["quality"] == expected["quality"]
        im.load()
        with Image.open(EXPECTED / f"{name}.png") as reference:
            assert pixels_match(im, reference) is None


def test_open_file_objects(coded: dict[str, Path]) -> None:
    data = coded["RGBA"].read_bytes()
    expected = np.asarray(lqz.decode(data))
    with open(coded["RGBA"], "rb") as f, Image.open(f) as im:
        assert (im.size, im.mode) == ((WIDTH, HEIGHT), "RGBA")
        assert np.array_equal(np.asarray(im), expected)
    with Image.open(io.BytesIO(data), formats=["LQZ"]) as im:
        assert np.array_equal(np.asarray(im), expected)


def test_info_from_header(coded: dict[str, Path], quality: int) -> None:
    header = fmt.read_header(coded["L"].read_bytes())
    with Image.open(coded["L"]) as im:
        assert im.info["model"] == header.model_id.hex()
        assert im.info["level"] == header.level
        assert im.info["quality"] == quality


def test_save_at_a_quality_writes_what_lqz_encode_writes(quality: int) -> None:
    image = picture("RGB", seed=1)
    top = lqz.QUALITIES[-1]
    for q, effort in ((quality, 1), (top, 0)):
        buffer = io.BytesIO()
        image.save(buffer, format="LQZ", quality=q, effort=effort)
        assert buffer.getvalue() == lqz.encode(image, quality=q, effort=effort)
        header, tiles, _ = fmt.unpack(buffer.getvalue())  # complete and valid
        assert (header.width, header.height) == (WIDTH, HEIGHT)
        buffer.seek(0)
        with Image.open(buffer) as im:
            assert im.info["quality"] == q


def test_save_at_a_bpp_target(tmp_path: Path) -> None:
    image = picture("RGB", seed=2)
    target = 1.0
    image.save(tmp_path / "target.lqz", format="LQZ", bpp=target, effort=0)
    data = (tmp_path / "target.lqz").read_bytes()
    with Image.open(tmp_path / "target.lqz") as im:
        chosen = im.info["quality"]
    assert 8 * len(data) / (WIDTH * HEIGHT) <= target or chosen == lqz.QUALITIES[0]
    assert data == lqz.encode(image, quality=chosen, effort=0)  # lqz.encode's search chose it


def test_save_bad_settings_leave_no_file(tmp_path: Path, quality: int) -> None:
    image = picture("RGB")
    for options in ({"quality": 0}, {"quality": quality, "bpp": 0.5}, {"effort": -1}):
        target = tmp_path / "bad.lqz"
        with pytest.raises(LqzError):
            image.save(target, **options)
        assert not target.exists()


def test_non_lqz_files_are_unidentified(tmp_path: Path) -> None:
    (tmp_path / "text.lqz").write_bytes(b"not an image at all, just some text\n")
    with pytest.raises(UnidentifiedImageError):
        Image.open(tmp_path / "text.lqz")
    png = io.BytesIO()
    picture("RGB").save(png, format="PNG")
    with pytest.raises(UnidentifiedImageError):
        Image.open(png, formats=["LQZ"])


def test_truncated_file_raises_lqz_error_at_open(coded: dict[str, Path]) -> None:
    data = coded["RGB"].read_bytes()
    table_end = fmt.header_size(fmt.read_header(data))
    for cut in (9, fmt.FIXED_HEADER_SIZE - 1, table_end - 1, table_end + 1, len(data) - 1):
        with pytest.raises(TruncatedFile):
            Image.open(io.BytesIO(data[:cut]))


def test_trailing_data_raises_lqz_error_at_open(coded: dict[str, Path]) -> None:
    with pytest.raises(TrailingData):
        Image.open(io.BytesIO(coded["RGB"].read_bytes() + b"\0"))


def test_corrupt_header_raises_at_open(coded: dict[str, Path]) -> None:
    data = bytearray(coded["RGB"].read_bytes())
    data[20] ^= 0x01  # width
    with pytest.raises(ChecksumMismatch):
        Image.open(io.BytesIO(bytes(data)))


def test_corrupt_payload_raises_lqz_error_at_load(coded: dict[str, Path]) -> None:
    data = bytearray(coded["RGB"].read_bytes())
    data[-1] ^= 0x01  # last byte of the last tile
    with Image.open(io.BytesIO(bytes(data))) as im:
        assert im.size == (WIDTH, HEIGHT)
        with pytest.raises(ChecksumMismatch):
            im.load()


def test_verify_checks_the_whole_file(
    coded: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "decode", lambda *a, **k: pytest.fail("verify decoded"))
    data = bytearray(coded["RGBA"].read_bytes())
    with Image.open(io.BytesIO(bytes(data))) as im:
        im.verify()
    data[-1] ^= 0x01  # in the alpha section
    with Image.open(io.BytesIO(bytes(data))) as im, pytest.raises(ChecksumMismatch):
        im.verify()


def forged(width: int, height: int) -> bytes:
    """A valid header (empty tiles) declaring ``width`` x ``height`` pixels."""
    header = fmt.Header(
        version=fmt.FORMAT_VERSION,
        model_id=bytes(8),
        level=1,
        fine=0,
        width=width,
        height=height,
        channels=fmt.CHANNELS_RGB,
        has_alpha=False,
        tile_size=fmt.MAX_TILE_SIZE,
        writer=api.writer(),
    )
    return fmt.pack(header, [b""] * header.num_tiles)


def test_decompression_bomb_refused_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "decode", lambda *a, **k: pytest.fail("decoded a bomb"))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(forged(65535, 65535)))


def test_pillow_pixel_limit_applies(
    coded: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = WIDTH * HEIGHT
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels // 2 - 1)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(coded["RGB"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels - 1)
    with pytest.warns(Image.DecompressionBombWarning), Image.open(coded["RGB"]) as im:
        im.load()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Image.open(coded["RGB"]) as im:
            im.load()


def test_load_rechecks_the_limit(coded: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    with Image.open(coded["RGB"]) as im:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", WIDTH * HEIGHT // 2 - 1)
        with pytest.raises(ImageTooLarge):
            im.load()
