"""The Python API: ``lqz.encode``, ``lqz.decode``, ``lqz.QUALITIES``.

The model is the shipped one when it exists, else a tiny random one; nothing here depends on
its quality.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lqz
from lqz import LqzError

pytestmark = pytest.mark.usefixtures("model")


def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = [x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1), (x * 5 + y) % 256]
    image = np.stack(planes, axis=-1) + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def test_qualities() -> None:
    levels = lqz.QUALITIES
    assert isinstance(levels, tuple) and len(levels) >= 1
    assert list(levels) == list(range(1, len(levels) + 1))


def test_round_trip_pil() -> None:
    image = Image.fromarray(picture(37, 21))
    data = lqz.encode(image)
    assert isinstance(data, bytes)
    back = lqz.decode(data)
    assert isinstance(back, Image.Image)
    assert back.size == (37, 21) and back.mode == "RGB"


def test_deterministic() -> None:
    image = Image.fromarray(picture(29, 18))
    data = lqz.encode(image, quality=lqz.QUALITIES[0])
    assert lqz.encode(image, quality=lqz.QUALITIES[0]) == data
    first, second = np.asarray(lqz.decode(data)), np.asarray(lqz.decode(data))
    assert np.array_equal(first, second)


def test_numpy_inputs() -> None:
    rgb = picture(15, 10)
    assert lqz.encode(rgb) == lqz.encode(Image.fromarray(rgb))
    assert lqz.decode(lqz.encode(rgb[:, :, 0])).mode == "L"
    assert lqz.decode(lqz.encode(rgb[:, :, :1])).mode == "L"
    alpha = picture(15, 10, seed=3)[:, :, 1]
    back = lqz.decode(lqz.encode(np.dstack([rgb, alpha])))
    assert back.mode == "RGBA"
    assert np.array_equal(np.asarray(back)[:, :, 3], alpha)


def test_levels_grow() -> None:
    image = picture(32, 32)
    from lqz import api

    for run in api.model_set().runs():  # nested groups: sizes grow within one model
        sizes = [len(lqz.encode(image, quality=q)) for q in run]
        assert sizes == sorted(sizes)


def test_bpp_target() -> None:
    image = picture(32, 24)
    pixels = 32 * 24
    coded = {q: lqz.encode(image, quality=q) for q in lqz.QUALITIES}
    rates = {q: 8 * len(data) / pixels for q, data in coded.items()}
    levels = sorted(rates)
    for level in {levels[0], levels[len(levels) // 2], levels[-1]}:
        data = lqz.encode(image, bpp=rates[level])
        assert 8 * len(data) / pixels <= rates[level]
        assert data == coded[max(q for q in levels if rates[q] <= rates[level])]
    assert lqz.encode(image, bpp=1e-6) == coded[levels[0]]  # unreachable: the lowest level


@pytest.mark.parametrize(
    "settings",
    [
        {"quality": 0},
        {"quality": 10_000},
        {"quality": -1},
        {"quality": 1.5},
        {"quality": "2"},
        {"quality": 2.0},
        {"quality": True},
        {"bpp": 0},
        {"bpp": -0.5},
        {"bpp": float("nan")},
        {"bpp": "0.5"},
        {"quality": 1, "bpp": 1.0},
        {"effort": -1},
        {"effort": 101},
        {"effort": 1.5},
        {"effort": True},
        {"effort": "2"},
    ],
)
def test_invalid_settings(settings: dict) -> None:
    with pytest.raises(LqzError):
        lqz.encode(picture(8, 8), **settings)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4), dtype=np.float32),
        np.zeros((4, 4, 2), dtype=np.uint8),
        np.zeros((0, 4, 3), dtype=np.uint8),
        np.zeros((1, 65536), dtype=np.uint8),
        "not an image",
    ],
    ids=["float", "two-channels", "empty", "too-wide", "string"],
)
def test_invalid_images(image: object) -> None:
    with pytest.raises(LqzError):
        lqz.encode(image)  # type: ignore[arg-type]


def test_16bit_warns() -> None:
    deep = Image.fromarray(picture(9, 9)[:, :, 0].astype(np.uint16) * 257)
    with pytest.warns(UserWarning, match="16-bit"):
        data = lqz.encode(deep)
    assert lqz.decode(data).mode == "L"


def test_no_warning_for_plain_images() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lqz.decode(lqz.encode(picture(9, 9)))


@pytest.mark.parametrize("cut", [0, 4, 10, -1])
def test_invalid_data(cut: int) -> None:
    data = lqz.encode(picture(12, 12))
    with pytest.raises(LqzError):
        lqz.decode(data[:cut])
    with pytest.raises(LqzError):
        lqz.decode(b"garbage" + data)


def test_model_loaded_once() -> None:
    from lqz import api

    assert api.model_set() is api.model_set()
    lqz.encode(picture(4, 4), quality=lqz.QUALITIES[0])
    lqz.encode(picture(4, 4), quality=lqz.QUALITIES[0])
    assert api._load.cache_info().misses == 1


def _declaring(width: int, height: int) -> bytes:
    """A valid .lqz file of a few kilobytes that declares ``width`` x ``height`` pixels."""
    from lqz import api
    from lqz import format as fmt

    header = fmt.Header(
        version=fmt.FORMAT_VERSION,
        model_id=api.model_set().at(1)[0].model_id,
        level=1,
        fine=0,
        width=width,
        height=height,
        channels=3,
        has_alpha=False,
        tile_size=fmt.MAX_TILE_SIZE,
        writer=api.writer(),
    )
    return fmt.pack(header, [b""] * header.num_tiles)


def test_decode_refuses_too_many_pixels_before_allocating() -> None:
    from lqz.api import DEFAULT_MAX_PIXELS
    from lqz.errors import ImageTooLarge

    bomb = _declaring(65535, 65535)  # 12.9 GB of RGB from a 2 kB file
    assert len(bomb) < 4096 and 65535 * 65535 > DEFAULT_MAX_PIXELS == 2**28
    with pytest.raises(ImageTooLarge, match="65535x65535") as caught:
        lqz.decode(bomb)
    assert "\n" not in str(caught.value) and isinstance(caught.value, LqzError)
    with pytest.raises(ImageTooLarge):
        lqz.decode(_declaring(2**14 + 1, 2**14))  # one row over 2^28


def test_max_pixels_override() -> None:
    from lqz.errors import ImageTooLarge

    data = lqz.encode(picture(20, 10))
    with pytest.raises(ImageTooLarge, match="200 pixels"):
        lqz.decode(data, max_pixels=199)
    assert lqz.decode(data, max_pixels=200).size == (20, 10)
    assert lqz.decode(data, max_pixels=0).size == (20, 10)  # 0: no limit
    assert lqz.decode(data, max_pixels=None).size == (20, 10)
    for bad in (-1, 1.5, "100", True):
        with pytest.raises(LqzError, match="max_pixels"):
            lqz.decode(data, max_pixels=bad)  # type: ignore[arg-type]


def test_kernels_cold_tells_an_empty_cache(tmp_path: Path) -> None:
    import subprocess
    import sys

    from lqz import api

    lqz.decode(lqz.encode(picture(8, 8)))  # compiled or loaded from the cache here
    assert api.kernels_cold("encode") is False and api.kernels_cold("decode") is False
    code = "from lqz import api; print(api.kernels_cold('encode'), api.kernels_cold('decode'))"
    for cache, expected in ((None, "False False"), (tmp_path / "empty", "True True")):
        env = dict(os.environ)
        if cache is not None:
            env["NUMBA_CACHE_DIR"] = str(cache)
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == expected, done.stderr


def test_refinement_never_decodes_worse_and_keeps_the_format() -> None:
    rgb = picture(40, 24, seed=5)
    for quality in (lqz.QUALITIES[0], lqz.QUALITIES[-1]):
        plain = np.asarray(lqz.decode(lqz.encode(rgb, quality=quality, effort=0)), np.float64)
        refined_data = lqz.encode(rgb, quality=quality, effort=4)
        refined = np.asarray(lqz.decode(refined_data), np.float64)
        assert refined.shape == plain.shape
        # the best-MSE iterate is kept; 8-bit rounding of the output may cost a hair
        assert np.mean((refined - rgb) ** 2) <= np.mean((plain - rgb) ** 2) * 1.001 + 1e-9
        assert lqz.encode(rgb, quality=quality, effort=4) == refined_data  # deterministic


def test_files_record_their_writer_and_foreign_models_name_it() -> None:
    """New files say which release wrote them; a file of a model this release does not ship
    fails with one line naming the model and the writer (version 1 files: unknown writer)."""
    from lqz import api
    from lqz import format as fmt
    from lqz.errors import UnknownModel

    data = lqz.encode(picture(16, 16), quality=lqz.QUALITIES[0], effort=0)
    header, tiles, _ = fmt.unpack(data)
    assert header.version == fmt.FORMAT_VERSION == 3 and header.writer == api.writer()
    assert api.writer() == f"lqz {lqz.__version__}"
    for version, writer, named in ((2, "lqz 9.9.9", "lqz 9.9.9"), (1, None, "format version 1")):
        fields = {**header.__dict__, "version": version, "writer": writer, "model_id": b"\x42" * 8}
        foreign = fmt.pack(fmt.Header(**fields), [bytes(t) for t in tiles])
        with pytest.raises(UnknownModel) as info:
            lqz.decode(foreign)
        message = str(info.value)
        assert "\n" not in message and "4242424242424242" in message and named in message
        assert api.writer() in message
    # The same tokens coded with the float prior in a version 1 container (no writer) decode
    # to the same pixels.
    from lqz.tiles import decode_indices, encode_indices

    loaded, groups = api.model_set().for_header(header)
    s = loaded.model.config.stride
    indices = decode_indices(loaded.model, bytes(tiles[0]), groups, -(-16 // s), -(-16 // s))
    legacy = [encode_indices(loaded.model, indices, exact=False)]
    old = fmt.pack(fmt.Header(**{**header.__dict__, "version": 1, "writer": None}), legacy)
    assert np.array_equal(np.asarray(lqz.decode(old)), np.asarray(lqz.decode(data)))


def animated(frames: int = 3) -> Image.Image:
    """A multi-frame GIF, opened as a user would open it."""
    import io

    images = [Image.fromarray(picture(16, 8, seed=i)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    buffer.seek(0)
    return Image.open(buffer)


def test_animated_image_warns_and_codes_the_first_frame() -> None:
    image = animated()
    first = np.asarray(image.convert("RGB"))
    with pytest.warns(UserWarning, match="3 frames: only the first is coded"):
        data = lqz.encode(image)
    assert lqz.decode(data).size == (16, 8)
    still = lqz.encode(Image.fromarray(first))
    assert data == still  # the first frame, as a still image


def test_errors_live_in_lqz_errors_with_their_exit_codes() -> None:
    from lqz import api, errors, images, qualities
    from lqz.entropy import coder

    assert api.InvalidSetting is errors.InvalidSetting
    assert images.UnsupportedImage is errors.UnsupportedImage
    assert qualities.WeightsError is errors.WeightsError
    assert coder.CorruptStream is errors.CorruptStream
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, LqzError)]
    for cls in classes:
        assert cls.__module__ == "lqz.errors"
        assert cls.exit_code in (
            errors.EXIT_ERROR,
            errors.EXIT_INPUT,
            errors.EXIT_CORRUPT,
            errors.EXIT_OUTPUT,
        )
    expected = {
        "InvalidSetting": 1,
        "WeightsError": 1,
        "FormatLimitError": 1,
        "UnsupportedImage": 2,
        "ImageTooLarge": 2,
        "FormatError": 3,
        "CorruptStream": 3,
        "BadMagic": 3,
    }
    assert {name: getattr(errors, name).exit_code for name in expected} == expected
    with pytest.raises(errors.InvalidSetting):
        lqz.encode(picture(8, 8), quality=10**6)


THREADS_SCRIPT = """
import os, sys
import numpy as np
import torch
if len(sys.argv) > 1:
    torch.set_num_threads(int(sys.argv[1]))
import lqz
image = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)
data = lqz.encode(image, effort=1)
after_encode = torch.get_num_threads()
lqz.decode(data)
import numba
print(after_encode, torch.get_num_threads(), numba.get_num_threads())
"""


@pytest.mark.parametrize("how", ["torch.set_num_threads", "OMP_NUM_THREADS"])
def test_thread_count_of_the_caller_is_kept(how: str, model: Path) -> None:
    """numba's OpenMP layer, on starting, sets every core for torch too; lqz puts it back."""
    import subprocess
    import sys

    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: no other thread count to fall back to")
    env = {**os.environ, "LQZ_WEIGHTS": str(model)}
    args = [sys.executable, "-c", THREADS_SCRIPT]
    if how == "OMP_NUM_THREADS":
        env["OMP_NUM_THREADS"] = "1"
    else:
        args.append("1")
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "1"]  # torch after encode, after decode; numba
