"""The ``lqz`` command line, driven through click's CliRunner and as a real process.

The model is the shipped one when it exists, else a tiny random one: the tests check shapes,
modes, exact alpha, file handling and exit codes, never image quality.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import lqz
from lqz import api
from lqz.cli.main import cli

# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


pytestmark = pytest.mark.usefixtures("model")


def run(*args: object, input: bytes | None = None) -> Result:
    """``lqz ARGS`` in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def failed(result: Result, code: int, *fragments: str) -> Result:
    """Exit ``code``, and the failure told as ``lqz: error: ...`` lines without a traceback."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("lqz: error: ")]
    assert errors, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result


def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 RGB test picture: gradients and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = [x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1), (x * 7 + y * 3) % 256]
    image = np.stack(planes, axis=-1) + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def save(path: Path, image: Image.Image | np.ndarray, **options: object) -> Path:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, **options)
    return path


def header(path: Path):
    from lqz import format as fmt

    return fmt.read_header(path.read_bytes())


def no_leftovers(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part"]


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return save(tmp_path / "photo.png", picture(40, 24))


@pytest.fixture
def coded(photo: Path) -> Path:
    ok(run("encode", photo, "--quiet"))
    return photo.with_suffix(".lqz")


# ---------------------------------------------------------------------------------------------
# Help and start-up


@pytest.mark.parametrize("command", [[], ["encode"], ["decode"], ["info"]])
def test_help_with_examples(command: list[str]) -> None:
    result = ok(run(*command, "--help"))
    assert "Examples:" in result.stdout
    assert "Usage: lqz" in result.stdout


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["encode", "--help"], ["decode", "--help"], ["info", "-h"]]
)
def test_help_and_version_do_not_import_torch(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from lqz.cli.main import main\n"
        f"sys.argv = ['lqz', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = {'torch', 'PIL', 'numpy', 'numba', 'tqdm', 'compressai'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_coding_does_not_import_compressai(photo: Path) -> None:
    """compressai's package import pulls in torch_geometric (10 s and more); lqz has its own GDN."""
    code = (
        "import sys\n"
        "import lqz\n"
        "from PIL import Image\n"
        f"image = Image.open({str(photo)!r})\n"
        "assert lqz.decode(lqz.encode(image)).size == image.size\n"
        "slow = {'compressai', 'torch_geometric'} & set(sys.modules)\n"
        "assert not slow, slow\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_no_arguments_shows_help() -> None:
    assert "Commands:" in ok(run()).stdout


# ---------------------------------------------------------------------------------------------
# Round trips


def test_encode_decode_default_names(photo: Path) -> None:
    result = ok(run("encode", photo))
    coded = photo.with_suffix(".lqz")
    assert coded.exists()
    assert "bpp" in result.stderr and "photo.lqz" in result.stderr
    assert header(coded).width == 40 and header(coded).height == 24
    photo.rename(photo.with_name("original.png"))
    ok(run("decode", coded))
    with Image.open(photo) as back:
        assert back.size == (40, 24) and back.mode == "RGB"
    no_leftovers(photo.parent)


def test_effort_reaches_the_encoder(photo: Path, tmp_path: Path) -> None:
    import lqz

    with Image.open(photo) as image:
        for effort in (0, 2):
            out = tmp_path / f"e{effort}.lqz"
            ok(run("encode", photo, "-e", str(effort), "-o", out))
            assert out.read_bytes() == lqz.encode(image, effort=effort)


@pytest.mark.parametrize("size", [(1, 1), (13, 17), (17, 13), (1, 40), (1030, 3)])
def test_odd_sizes(tmp_path: Path, size: tuple[int, int]) -> None:
    width, height = size
    source = save(tmp_path / "odd.png", picture(width, height))
    ok(run("encode", source, "-o", tmp_path / "odd.lqz"))
    ok(run("decode", tmp_path / "odd.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.size == size and back.mode == "RGB"
    facts = json.loads(ok(run("info", tmp_path / "odd.lqz", "--json")).stdout)
    tile = facts["tile_size"]
    assert facts["tiles"] == -(-width // tile) * -(-height // tile)


def test_gray_stays_gray(tmp_path: Path) -> None:
    gray = Image.fromarray(picture(21, 11)[:, :, 0], "L")
    ok(run("encode", save(tmp_path / "g.png", gray)))
    assert header(tmp_path / "g.lqz").channels == 1
    ok(run("decode", tmp_path / "g.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "L" and back.size == (21, 11)


def test_gray_alpha_exact(tmp_path: Path) -> None:
    pixels = picture(19, 9)
    gray = Image.merge("LA", [Image.fromarray(pixels[:, :, 0]), Image.fromarray(pixels[:, :, 1])])
    ok(run("encode", save(tmp_path / "ga.png", gray)))
    ok(run("decode", tmp_path / "ga.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "LA"
        assert np.array_equal(np.asarray(back.getchannel("A")), pixels[:, :, 1])


def test_rgba_alpha_exact(tmp_path: Path) -> None:
    rgb = picture(33, 20)
    alpha = picture(33, 20, seed=1)[:, :, 2]
    rgba = np.dstack([rgb, alpha])
    ok(run("encode", save(tmp_path / "a.png", rgba)))
    assert header(tmp_path / "a.lqz").has_alpha
    ok(run("decode", tmp_path / "a.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "RGBA"
        assert np.array_equal(np.asarray(back)[:, :, 3], alpha)


def test_opaque_alpha_is_dropped(tmp_path: Path) -> None:
    rgba = np.dstack([picture(10, 10), np.full((10, 10), 255, np.uint8)])
    ok(run("encode", save(tmp_path / "o.png", rgba)))
    assert not header(tmp_path / "o.lqz").has_alpha


def test_palette(tmp_path: Path) -> None:
    pal = Image.fromarray(picture(25, 14)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    ok(run("encode", save(tmp_path / "p.png", pal)))
    ok(run("decode", tmp_path / "p.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "RGB" and back.size == (25, 14)


def test_palette_transparency_exact(tmp_path: Path) -> None:
    pal = Image.fromarray(picture(25, 14)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    source = save(tmp_path / "pt.png", pal, transparency=3)
    with Image.open(source) as reread:
        expected = np.asarray(reread.convert("RGBA").getchannel("A"))
    assert (expected == 0).any()
    ok(run("encode", source))
    ok(run("decode", tmp_path / "pt.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "RGBA"
        assert np.array_equal(np.asarray(back.getchannel("A")), expected)


@pytest.mark.parametrize("kind", ["JPEG", "TIFF"])
def test_cmyk(tmp_path: Path, kind: str) -> None:
    cmyk = Image.fromarray(picture(18, 12)).convert("CMYK")
    source = save(tmp_path / f"c.{kind.lower()}", cmyk, format=kind)
    ok(run("encode", source))
    ok(run("decode", tmp_path / "c.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "RGB" and back.size == (18, 12)


def test_16bit_gray_warns(tmp_path: Path) -> None:
    deep = (picture(16, 9)[:, :, 0].astype(np.uint16) * 257).astype(np.uint16)
    source = save(tmp_path / "d.png", Image.fromarray(deep))
    with Image.open(source) as reread:
        assert reread.mode.startswith("I")
    result = ok(run("encode", source))
    assert "lqz: warning:" in result.stderr and "16-bit" in result.stderr
    ok(run("decode", tmp_path / "d.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "L"


def test_16bit_rgb_warns(tmp_path: Path) -> None:
    source = tmp_path / "d.png"
    source.write_bytes(png16(picture(12, 7).astype(np.uint16) * 257))
    result = ok(run("encode", source))
    assert "16-bit" in result.stderr
    assert result.stderr.count("16-bit") == 1
    ok(run("decode", tmp_path / "d.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.mode == "RGB" and back.size == (12, 7)


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_exif_orientation_applied(tmp_path: Path, kind: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    source = save(tmp_path / f"r.{kind.lower()}", picture(20, 10), format=kind, exif=exif)
    ok(run("encode", source))
    assert (header(tmp_path / "r.lqz").width, header(tmp_path / "r.lqz").height) == (10, 20)
    ok(run("decode", tmp_path / "r.lqz", "-o", tmp_path / "back.png"))
    with Image.open(tmp_path / "back.png") as back:
        assert back.size == (10, 20)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pnm"])
def test_decode_lossless_formats(coded: Path, suffix: str) -> None:
    reference = coded.with_name("ref.png")
    ok(run("decode", coded, "-o", reference))
    out = coded.with_name("out" + suffix)
    ok(run("decode", coded, "-o", out))
    with Image.open(out) as back, Image.open(reference) as ref:
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(ref))


def test_decode_gray_to_pgm(tmp_path: Path) -> None:
    ok(run("encode", save(tmp_path / "g.png", Image.fromarray(picture(9, 5)[:, :, 1], "L"))))
    ok(run("decode", tmp_path / "g.lqz", "-o", tmp_path / "g.pgm"))
    with Image.open(tmp_path / "g.pgm") as back:
        assert back.mode == "L"


# ---------------------------------------------------------------------------------------------
# stdin / stdout, batches


def test_stdin_stdout(photo: Path) -> None:
    encoded = ok(run("encode", "-", input=photo.read_bytes())).stdout_bytes
    assert encoded == ok(run("encode", photo, "-o", "-")).stdout_bytes
    decoded = ok(run("decode", "-", input=encoded)).stdout_bytes
    with Image.open(io.BytesIO(decoded)) as back:
        assert back.format == "PNG" and back.size == (40, 24)
    facts = json.loads(ok(run("info", "-", "--json", input=encoded)).stdout)
    assert facts["bytes"] == len(encoded)


def test_stdin_with_other_inputs_is_usage_error(photo: Path) -> None:
    failed(run("encode", "-", photo), 1)


def test_batch_folder_with_bad_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        save(src / f"im{i}.png", picture(12 + i, 8, seed=i))
    (src / "broken.png").write_bytes(b"this is not a png")
    (src / "notes.txt").write_text("ignored: not an image suffix")
    result = failed(run("encode", src, "-o", tmp_path / "out"), 5, "broken.png")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.lqz", "im1.lqz"]
    assert "encoded 2 files, 1 failed" in result.stderr and "mean" in result.stderr
    no_leftovers(tmp_path)

    result = failed(run("decode", tmp_path / "out", src / "broken.png", "-o", tmp_path / "back"), 5)
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["im0.png", "im1.png"]
    assert "decoded 2 files, 1 failed" in result.stderr


def test_batch_next_to_inputs_and_glob(tmp_path: Path) -> None:
    for name in ("a", "b"):
        save(tmp_path / f"{name}.png", picture(9, 9))
    result = ok(run("encode", str(tmp_path / "*.png")))
    assert "encoded 2 files" in result.stderr
    assert (tmp_path / "a.lqz").exists() and (tmp_path / "b.lqz").exists()
    failed(run("encode", str(tmp_path / "*.gif")), 2, "no files match")


def test_batch_quiet(tmp_path: Path) -> None:
    for name in ("a", "b"):
        save(tmp_path / f"{name}.png", picture(9, 9))
    result = ok(run("encode", tmp_path / "a.png", tmp_path / "b.png", "--quiet"))
    assert result.stderr == "" and result.stdout == ""


def test_batch_name_clash(tmp_path: Path) -> None:
    save(tmp_path / "x.png", picture(9, 9))
    save(tmp_path / "x.bmp", picture(9, 9, seed=2))
    failed(run("encode", tmp_path / "x.bmp", tmp_path / "x.png"), 5, "also the output of")
    assert header(tmp_path / "x.lqz").width == 9


def test_batch_output_must_be_folder(tmp_path: Path, photo: Path) -> None:
    other = save(tmp_path / "other.png", picture(5, 5))
    failed(run("encode", photo, other, "-o", "-"), 1)
    (tmp_path / "file").write_text("x")
    failed(run("encode", photo, other, "-o", tmp_path / "file"), 4)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    failed(run("decode", tmp_path / "empty"), 2, "no input files")


# ---------------------------------------------------------------------------------------------
# --force and safe writing


def test_existing_output_untouched_without_force(photo: Path) -> None:
    target = photo.with_suffix(".lqz")
    target.write_bytes(b"precious")
    failed(run("encode", photo), 4, "already exists", "--force")
    assert target.read_bytes() == b"precious"
    ok(run("encode", photo, "--force"))
    assert target.read_bytes() != b"precious"
    no_leftovers(photo.parent)


def test_decode_existing_output_untouched(coded: Path) -> None:
    target = coded.with_name("out.png")
    target.write_bytes(b"precious")
    failed(run("decode", coded, "-o", target), 4)
    assert target.read_bytes() == b"precious"
    ok(run("decode", coded, "-o", target, "-f"))
    assert target.read_bytes()[:4] == b"\x89PNG"


def test_interrupt_leaves_nothing_behind(photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = photo.with_suffix(".lqz")
    target.write_bytes(b"precious")

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("lqz.cli.outputs.os.fsync", interrupt)
    failed(run("encode", photo, "--force"), 130, "interrupted")
    assert target.read_bytes() == b"precious"
    no_leftovers(photo.parent)


def test_unwritable_destination(tmp_path: Path, photo: Path) -> None:
    failed(run("encode", photo, "-o", tmp_path / "missing" / "x.lqz"), 4, "does not exist")
    (tmp_path / "plain").write_text("x")
    failed(run("encode", photo, "-o", tmp_path / "plain" / "x.lqz"), 4)
    no_leftovers(tmp_path)


def test_output_is_input(coded: Path) -> None:
    failed(run("decode", coded, "-o", coded, "--force"), 4, "overwrite the input")


# ---------------------------------------------------------------------------------------------
# Bad inputs and options


def test_missing_input(tmp_path: Path) -> None:
    failed(run("encode", tmp_path / "nope.png"), 2, "no such file")
    failed(run("decode", tmp_path / "nope.lqz"), 2, "no such file")
    failed(run("info", tmp_path / "nope.lqz"), 2, "no such file")


def test_not_an_image(tmp_path: Path, coded: Path) -> None:
    (tmp_path / "text.png").write_text("hello")
    failed(run("encode", tmp_path / "text.png"), 2, "not an image")
    failed(run("encode", coded, "-o", tmp_path / "x.lqz"), 2, "lqz decode")
    assert not (tmp_path / "x.lqz").exists()


def test_truncated_image(tmp_path: Path, photo: Path) -> None:
    data = photo.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    failed(run("encode", tmp_path / "cut.png"), 2)
    assert not (tmp_path / "cut.lqz").exists()


def test_not_an_lqz(tmp_path: Path, photo: Path) -> None:
    failed(run("decode", photo, "-o", tmp_path / "x.png"), 3)
    failed(run("decode", photo), 3, "not an .lqz")  # default output photo.png.png, not the input
    (tmp_path / "empty.lqz").write_bytes(b"")
    failed(run("decode", tmp_path / "empty.lqz"), 3)
    failed(run("info", tmp_path / "empty.lqz"), 3)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "empty.png").exists()


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_lqz(coded: Path, keep: float) -> None:
    data = coded.read_bytes()
    coded.write_bytes(data[: int(len(data) * keep)])
    failed(run("decode", coded, "-o", coded.with_name("out.png")), 3)
    failed(run("info", coded), 3)
    assert not coded.with_name("out.png").exists()
    no_leftovers(coded.parent)


def test_corrupt_lqz(coded: Path) -> None:
    data = bytearray(coded.read_bytes())
    data[len(data) // 2] ^= 0x55
    coded.write_bytes(bytes(data))
    failed(run("decode", coded, "-o", coded.with_name("out.png")), 3)
    assert not coded.with_name("out.png").exists()


def test_other_model(
    coded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_weights: Callable[..., Path]
) -> None:
    from lqz import api

    monkeypatch.setenv("LQZ_WEIGHTS", str(tiny_weights(tmp_path / "other.safetensors", seed=7)))
    api.clear_cache()
    failed(run("decode", coded, "-o", coded.with_name("out.png")), 3)
    facts = json.loads(ok(run("info", coded, "--json")).stdout)  # info needs no model
    assert facts["model"] == header(coded).model_id.hex()


def test_missing_model(photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lqz import api

    monkeypatch.setenv("LQZ_WEIGHTS", str(tmp_path / "none.safetensors"))
    api.clear_cache()
    failed(run("encode", photo), 1, "none.safetensors")


def test_max_pixels(coded: Path) -> None:
    out = coded.with_name("out.png")
    failed(run("decode", coded, "-o", out, "--max-pixels", 959), 2, "40x24", "--max-pixels")
    assert not out.exists()
    ok(run("decode", coded, "-o", out, "--max-pixels", 960))
    ok(run("decode", coded, "-o", out, "--max-pixels", 0, "--force"))  # 0: no limit
    failed(run("decode", coded, "-o", out, "--max-pixels", -1, "--force"), 1)


def test_pixel_bomb_refused(tmp_path: Path) -> None:
    """A 2 kB file declaring 65535 x 65535 pixels fails at once (exit 2), nothing allocated."""
    from lqz import api
    from lqz import format as fmt

    bomb = fmt.Header(
        version=fmt.FORMAT_VERSION,
        model_id=api.model_set().at(1)[0].model_id,
        level=1,
        fine=0,
        width=65535,
        height=65535,
        channels=3,
        has_alpha=False,
        tile_size=fmt.MAX_TILE_SIZE,
        writer=api.writer(),
    )
    path = tmp_path / "bomb.lqz"
    path.write_bytes(fmt.pack(bomb, [b""] * bomb.num_tiles))
    failed(run("decode", path), 2, "65535x65535", "268,435,456")
    assert not path.with_suffix(".png").exists()
    no_leftovers(tmp_path)


def test_max_pixels_help_matches_api() -> None:
    from lqz.api import DEFAULT_MAX_PIXELS

    help_text = " ".join(ok(run("decode", "--help")).stdout.split())
    assert f"(default {DEFAULT_MAX_PIXELS:,}; 0 = no limit)" in help_text


def test_cold_kernels_note(photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lqz import api
    from lqz.cli.runtime import COLD_KERNELS_NOTE

    monkeypatch.setattr(api, "kernels_cold", lambda operation: True)
    result = ok(run("encode", photo))
    assert result.stderr.count(COLD_KERNELS_NOTE) == 1
    assert COLD_KERNELS_NOTE not in ok(run("encode", photo, "--force", "--quiet")).stderr
    monkeypatch.setattr(api, "kernels_cold", lambda operation: False)
    back = photo.with_name("back.png")
    assert COLD_KERNELS_NOTE not in ok(run("decode", photo.with_suffix(".lqz"), "-o", back)).stderr


def test_lossy_output_refused(coded: Path) -> None:
    for name in ("out.jpg", "out.JPEG", "out.gif", "out.xyz"):
        failed(run("decode", coded, "-o", coded.with_name(name)), 1, ".png")
        assert not coded.with_name(name).exists()


def test_outputs_that_would_lose_data_refused(tmp_path: Path) -> None:
    rgba = np.dstack([picture(6, 6), picture(6, 6)[:, :, 0]])
    ok(run("encode", save(tmp_path / "a.png", rgba)))
    failed(run("decode", tmp_path / "a.lqz", "-o", tmp_path / "a.bmp"), 1, "alpha")
    failed(run("decode", tmp_path / "a.lqz", "-o", tmp_path / "a.ppm"), 1, "alpha")
    ok(run("encode", save(tmp_path / "c.png", picture(6, 6))))
    failed(run("decode", tmp_path / "c.lqz", "-o", tmp_path / "c.pgm"), 1, "gray")
    assert not list(tmp_path.glob("*.bmp")) + list(tmp_path.glob("*.p?m"))


@pytest.mark.parametrize(
    "options",
    [
        ["-q", "0"],
        ["-q", "99"],
        ["-q", "x"],
        ["--bpp", "0"],
        ["--bpp", "-1"],
        ["--bpp", "abc"],
        ["-q", "1", "--bpp", "1"],
        ["--effort", "-1"],
        ["-e", "101"],
        ["--effort", "fast"],
        ["--threads", "0"],
        ["--bogus"],
    ],
)
def test_bad_options(photo: Path, options: list[str]) -> None:
    failed(run("encode", photo, *options), 1)
    assert not photo.with_suffix(".lqz").exists()


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = save(tmp_path / "big.png", picture(30, 30))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 900 pixels: warning level
    failed(run("encode", source), 2, "decompression bomb")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # over twice the limit: Pillow's error
    failed(run("encode", source), 2, "decompression bomb")


def test_too_wide(tmp_path: Path) -> None:
    source = save(tmp_path / "wide.png", Image.new("L", (65536, 1)))
    failed(run("encode", source), 2, "65535")


def test_debug_shows_traceback(coded: Path) -> None:
    coded.write_bytes(coded.read_bytes()[:10])
    result = run("decode", coded, "-o", coded.with_name("out.png"), "--debug")
    assert result.exit_code == 3 and "Traceback" in result.stderr


# ---------------------------------------------------------------------------------------------
# Rate targets, levels, threads


def test_bpp_target(tmp_path: Path) -> None:
    source = save(tmp_path / "t.png", picture(48, 32))
    pixels = 48 * 32
    rates = {}
    for level in lqz.QUALITIES:
        out = tmp_path / f"q{level}.lqz"
        ok(run("encode", source, "-q", level, "-o", out))
        assert api.quality_of(header(out)) == level
        rates[level] = 8 * out.stat().st_size / pixels
    levels = sorted(rates)
    for run_ in api.model_set().runs():  # nested groups: sizes grow within one model
        assert all(rates[a] <= rates[b] for a, b in zip(run_, run_[1:], strict=False))
    for level in {levels[len(levels) // 2], levels[-1]}:
        target = rates[level] + 1e-9
        out = tmp_path / f"t{level}.lqz"
        result = ok(run("encode", source, "--bpp", target, "-o", out))
        reached = 8 * out.stat().st_size / pixels
        assert reached <= target
        assert api.quality_of(header(out)) == max(q for q in levels if rates[q] <= target)
        assert f"{reached:.4f} bpp" in result.stderr and "target" in result.stderr


def test_bpp_target_unreachable(tmp_path: Path) -> None:
    source = save(tmp_path / "t.png", picture(16, 16))
    result = ok(run("encode", source, "--bpp", "0.0001"))
    assert "lqz: warning:" in result.stderr and "smallest" in result.stderr
    assert api.quality_of(header(tmp_path / "t.lqz")) == min(lqz.QUALITIES)


def test_threads(photo: Path) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        ok(run("encode", photo, "--threads", "1"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_info(coded: Path) -> None:
    text = ok(run("info", coded)).stdout
    for key in ("format", "model", "level", "size", "bytes", "bpp", "tiles", "40x24"):
        assert key in text
    facts = json.loads(ok(run("info", coded, "--json")).stdout)
    assert facts["bytes"] == coded.stat().st_size
    assert (facts["width"], facts["height"]) == (40, 24)
    assert facts["bpp"] == pytest.approx(8 * facts["bytes"] / (40 * 24))
    assert facts["level"] in lqz.QUALITIES and facts["tiles"] == 1
    assert facts["writer"] == f"lqz {lqz.__version__}" and f"writer  lqz {lqz.__version__}" in text


def test_info_of_a_version_1_file() -> None:
    """Files written before the writer field: format version 1, writer unknown (JSON null)."""
    frozen = Path(__file__).parent / "legacy" / "q1-rgb-97x61-v1.lqz"
    text = ok(run("info", frozen)).stdout
    assert "lqz version 1" in text and "writer  unknown (format version 1" in text
    facts = json.loads(ok(run("info", frozen, "--json")).stdout)
    assert facts["version"] == 1 and facts["writer"] is None


# ---------------------------------------------------------------------------------------------
# A real process


def test_real_process(photo: Path, model: Path) -> None:
    env = {**os.environ, "LQZ_WEIGHTS": str(model)}
    lqz_cmd = [sys.executable, "-m", "lqz"]
    done = subprocess.run(
        [*lqz_cmd, "encode", "-", "-o", "-"],
        input=photo.read_bytes(),
        capture_output=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "Warning" not in done.stderr.decode()  # no library chatter for users
    assert done.stdout == ok(run("encode", photo, "-o", "-")).stdout_bytes
    missing = subprocess.run(
        [*lqz_cmd, "decode", str(photo.with_name("missing.lqz"))],
        capture_output=True,
        env=env,
        timeout=600,
    )
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith("lqz: error: ")
    assert "Traceback" not in missing.stderr.decode()


# ---------------------------------------------------------------------------------------------
# Exit codes, signals, threads


def test_exit_codes_follow_the_errors_and_the_docs() -> None:
    """Each LqzError's own exit code is the command's; docs/CLI.md's table lists every code."""
    from lqz import errors
    from lqz.cli.exits import MEANINGS, CliError, ExitCode, classify

    for cls in vars(errors).values():
        if (
            isinstance(cls, type)
            and issubclass(cls, errors.LqzError)
            and cls is not errors.LqzError
        ):
            assert classify(cls("x"), ExitCode.OUTPUT) == ("x", ExitCode(cls.exit_code))
    assert classify(errors.LqzError("x"), ExitCode.INPUT)[1] == ExitCode.INPUT
    assert classify(CliError("x", ExitCode.OUTPUT), ExitCode.INPUT)[1] == ExitCode.OUTPUT
    assert classify(RuntimeError("boom"), ExitCode.INPUT)[1] == ExitCode.ERROR
    docs = (Path(__file__).parents[1] / "docs" / "CLI.md").read_text()
    table = docs[docs.index("## Exit codes") :].split("\n## ")[0]
    documented = {int(m[1]) for m in re.finditer(r"^\|\s*(\d+)\s*\|", table, re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}
    top_help = " ".join(ok(run("--help")).stdout.split())
    assert all(f"{int(code)} {meaning}" in top_help for code, meaning in MEANINGS.items())


def _pause_env(tmp_path: Path, model: Path) -> tuple[dict[str, str], Path]:
    from lqz.cli.outputs import PAUSE_BEFORE_RENAME

    flag = tmp_path / "paused"
    return {**os.environ, "LQZ_WEIGHTS": str(model), PAUSE_BEFORE_RENAME: str(flag)}, flag


@pytest.mark.parametrize(
    ("command", "signal_name", "code", "jobs"),
    [
        ("encode", "SIGTERM", 143, 1),
        ("decode", "SIGTERM", 143, 1),
        ("encode", "SIGINT", 130, 1),
        pytest.param("encode", "SIGTERM", 143, 2, marks=pytest.mark.slow),
    ],
)
def test_signal_while_writing_leaves_nothing_behind(
    tmp_path: Path, model: Path, command: str, signal_name: str, code: int, jobs: int
) -> None:
    """Killed between writing the temporary file and renaming it: no temporary file, no
    partial output, and the existing output (--force) untouched; with -j, the workers stop."""
    import signal
    import time

    work = tmp_path / "work"
    work.mkdir()
    sources = [save(work / f"photo{i}.png", picture(24, 16, seed=i)) for i in range(jobs)]
    if command == "decode":
        ok(run("encode", *sources, "--quiet"))
        sources = [source.with_suffix(".lqz") for source in sources]
    if jobs == 1:
        target = work / ("back.png" if command == "decode" else "out.lqz")
        output = target
    else:
        output = work / "out"
        output.mkdir()
        target = output / "photo0.lqz"  # the first to be written
    target.write_bytes(b"precious")
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    env, flag = _pause_env(tmp_path, model)
    command_line = [sys.executable, "-m", "lqz", command, *map(str, sources), "-o", str(output)]
    process = subprocess.Popen(
        [*command_line, "--force", "-j", str(jobs)],
        stderr=subprocess.PIPE,
        env=env,
        # a test run started in the background inherits an ignored SIGINT, which Python keeps
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 600
        while not flag.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flag.exists(), process.stderr.read().decode() if process.poll() is not None else ""
        temporary = Path(flag.read_text())
        assert temporary.exists() and temporary.parent == target.parent  # paused mid-write
        process.send_signal(getattr(signal, signal_name))
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr.decode()
    assert stderr.decode().splitlines()[-1].startswith("lqz: error: "), stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert target.read_bytes() == b"precious"
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before
    no_leftovers(work)


def test_cli_threads_are_honoured(photo: Path, model: Path) -> None:
    """``--threads 1``: torch and numba's kernels run on one thread after coding."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: no other thread count to fall back to")
    code = (
        "import sys, torch, numba\n"
        "from lqz.cli.main import cli\n"
        f"cli.main(['encode', {str(photo)!r}, '--threads', '1', '--quiet'],"
        " standalone_mode=False)\n"
        "print(torch.get_num_threads(), numba.get_num_threads(), file=sys.stderr)\n"
    )
    env = {**os.environ, "LQZ_WEIGHTS": str(model)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.split() == ["1", "1"]


# ---------------------------------------------------------------------------------------------
# Warnings, outputs that must be folders


def test_animated_image_warns_once(tmp_path: Path) -> None:
    frames = [Image.fromarray(picture(16, 8, seed=i)) for i in range(3)]
    source = tmp_path / "anim.gif"
    frames[0].save(source, save_all=True, append_images=frames[1:])
    result = ok(run("encode", source))
    warnings_shown = [line for line in result.stderr.splitlines() if "frames" in line]
    assert warnings_shown == [f"lqz: warning: {source}: 3 frames: only the first is coded"]


def test_stdin_with_output_folder(tmp_path: Path, photo: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    failed(run("encode", "-", "-o", folder, input=photo.read_bytes()), 1, "-o FILE")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(("command", "name"), [("decode", "out.png"), ("encode", "out.lqz")])
def test_several_inputs_need_an_output_folder(tmp_path: Path, command: str, name: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        save(src / f"im{i}.png", picture(9, 9, seed=i))
    if command == "decode":
        ok(run("encode", src, "--quiet"))
    failed(run(command, src, "-o", tmp_path / name), 1, "output folder", name)
    assert not (tmp_path / name).exists()
    ok(run(command, src, "-o", f"{tmp_path / name}/", "--quiet"))  # a trailing / says: folder
    assert len(list((tmp_path / name).iterdir())) == 2


# ---------------------------------------------------------------------------------------------
# Parallel batches (-j)


def _pictures(folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir()
    sizes = [(24, 16), (17, 31), (40, 8), (12, 12)]
    return [save(folder / f"im{i}.png", picture(*sizes[i % 4], seed=i)) for i in range(count)]


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_parallel_batch_is_the_serial_batch(tmp_path: Path) -> None:
    _pictures(tmp_path / "src")
    serial = ok(run("encode", tmp_path / "src", "-o", tmp_path / "one"))
    parallel = ok(run("encode", tmp_path / "src", "-o", tmp_path / "two", "-j", "2"))
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")
    assert len(_contents(tmp_path / "one")) == 3

    def order(result: Result) -> list[str]:
        lines = result.stderr.splitlines()
        return [line.split(" -> ")[0] for line in lines if line.startswith(str(tmp_path))]

    assert (
        order(parallel) == order(serial) == [str(tmp_path / "src" / f"im{i}.png") for i in range(3)]
    )
    ok(run("decode", tmp_path / "two", "-o", tmp_path / "back1"))
    ok(run("decode", tmp_path / "two", "-o", tmp_path / "back2", "-j", "2", "--threads", "1"))
    assert _contents(tmp_path / "back1") == _contents(tmp_path / "back2")
    no_leftovers(tmp_path)


def test_parallel_batch_with_a_failing_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _pictures(src, 2)
    (src / "im0b.png").write_bytes(b"not a png")  # sorts between the good ones
    result = failed(run("encode", src, "-o", tmp_path / "out", "-j", "2"), 5, "im0b.png")
    assert "encoded 2 files, 1 failed" in result.stderr
    ok(run("encode", src / "im0.png", src / "im1.png", "-o", tmp_path / "ref"))
    assert _contents(tmp_path / "out") == _contents(tmp_path / "ref")
    lines = [line for line in result.stderr.splitlines() if str(src) in line]
    assert len(lines) == 3
    assert lines[0].startswith(f"{src / 'im0.png'} -> ")
    assert lines[1] == f"lqz: error: {src / 'im0b.png'}: not an image Pillow can read"
    assert lines[2].startswith(f"{src / 'im1.png'} -> ")
    no_leftovers(tmp_path)


@pytest.mark.parametrize("command", ["encode", "decode"])
@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_jobs_must_be_positive(photo: Path, command: str, jobs: str) -> None:
    failed(run(command, photo, "-j", jobs), 1, "--jobs")
