"""The codecs under test: lqz and classical codecs through their Pillow plugins.

Every codec maps ``(RGB image, setting)`` to the bytes of a complete file, and back. The Pillow
encoder options are fixed here and listed in ``kodak_eval/README.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import PIL
from PIL import Image, features

from . import EvalError


class Contender:
    """A codec under test: a name, its default settings, and encode/decode of whole files."""

    name: str
    label: str
    options: str

    def unavailable(self) -> str | None:
        """Why this codec cannot run here, or ``None`` when it can."""
        return None

    def default_settings(self) -> tuple[int, ...]:
        raise NotImplementedError

    def check_setting(self, setting: int) -> None:
        """Raise :class:`EvalError` if ``setting`` is not one this codec accepts."""

    def encode(self, image: Image.Image, setting: int) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Image.Image:
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        """Limit the codec's own worker threads, where its library allows it."""

    def identity(self) -> str:
        """What produces the files (library and model versions): results measured under
        another identity are stale and measured again."""
        return self.name


@dataclass
class PillowCodec(Contender):
    """A classical codec saved and opened through Pillow (``format`` is Pillow's name)."""

    name: str
    label: str
    format: str
    settings: tuple[int, ...]
    save_options: dict[str, Any]
    options: str
    setup: Callable[[], str | None] = field(default=lambda: None)
    thread_option: str | None = None
    decode_threads: Callable[[int], None] | None = None
    threads: int = 1
    library_version: Callable[[], str | None] = field(default=lambda: None)

    def unavailable(self) -> str | None:
        reason = self.setup()
        Image.init()  # load every Pillow plugin so that Image.SAVE is complete
        if reason is None and self.format not in Image.SAVE:
            reason = f"Pillow cannot write {self.format}"
        return reason

    def default_settings(self) -> tuple[int, ...]:
        return self.settings

    def identity(self) -> str:
        version = self.library_version()
        return f"Pillow {PIL.__version__}" + (f", {version}" if version else "")

    def check_setting(self, setting: int) -> None:
        if not 0 <= setting <= 100:
            raise EvalError(f"{self.name}: quality {setting} is outside 0..100")

    def set_threads(self, threads: int) -> None:
        self.threads = threads
        if self.decode_threads is not None:
            self.decode_threads(threads)

    def encode(self, image: Image.Image, setting: int) -> bytes:
        options = dict(self.save_options)
        if self.thread_option:
            options[self.thread_option] = self.threads
        buffer = io.BytesIO()
        image.save(buffer, format=self.format, quality=setting, **options)
        return buffer.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")


def _pillow_feature(feature: str, package: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if not features.check(feature):
            return f"this Pillow was built without {feature} ({package})"
        return None

    return check


def _feature_version(feature: str) -> Callable[[], str | None]:
    return lambda: f"{feature} {features.version(feature)}"


def _distribution_version(dist: str) -> Callable[[], str | None]:
    def version() -> str | None:
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            return None

    return version


def _heif_setup() -> str | None:
    try:
        import pillow_heif
    except ImportError:
        return "pillow-heif is not installed (pip install pillow-heif)"
    pillow_heif.register_heif_opener()
    return None


def _heif_decode_threads(threads: int) -> None:
    import pillow_heif

    pillow_heif.options.DECODE_THREADS = threads


def _jxl_decode_threads(threads: int) -> None:
    from pillow_jxl import JpegXLImagePlugin

    JpegXLImagePlugin.DECODE_THREADS = threads


def _jxl_setup() -> str | None:
    try:
        importlib.import_module("pillow_jxl")
    except ImportError:
        return "pillow-jxl-plugin is not installed (pip install pillow-jxl-plugin)"
    return None


class LqzCodec(Contender):
    """The lqz codec through its Python API (``lqz.QUALITIES``, ``lqz.encode``, ``lqz.decode``)."""

    name = "lqz"
    label = "lqz"

    def __init__(self, effort: int | None = None) -> None:
        self.effort = effort  # encoder refinement steps; None: lqz's default

    def resolved_effort(self) -> int | None:
        """The effort the files are made with (None: an lqz without the setting)."""
        if self.effort is not None:
            return self.effort
        try:
            return int(importlib.import_module("lqz.effort").DEFAULT_EFFORT)
        except ImportError:
            return None

    @property
    def options(self) -> str:  # type: ignore[override]
        effort = self.resolved_effort()
        call = (
            "lqz.encode(image, quality)"
            if effort is None
            else (f"lqz.encode(image, quality, effort={effort})")
        )
        return f"{call}, whole .lqz file; settings are lqz.QUALITIES levels"

    def _module(self) -> Any:
        return importlib.import_module("lqz")

    def unavailable(self) -> str | None:
        try:
            qualities = self._module().QUALITIES
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; say why
            return f"lqz is not ready ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        if not qualities:
            return "lqz.QUALITIES is empty"
        return None

    def default_settings(self) -> tuple[int, ...]:
        return tuple(int(q) for q in self._module().QUALITIES)

    def check_setting(self, setting: int) -> None:
        levels = self.default_settings()
        if setting not in levels:
            raise EvalError(f"lqz: quality {setting} is not one of lqz.QUALITIES {levels}")

    def identity(self) -> str:
        module = self._module()
        text = f"lqz {getattr(module, '__version__', '?')}"
        with contextlib.suppress(Exception):  # a stand-in lqz without a model: no model id
            text += f", model {importlib.import_module('lqz.api').model_set().identity}"
        effort = self.resolved_effort()
        return text if effort is None else f"{text}, effort {effort}"

    def set_threads(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)

    def encode(self, image: Image.Image, setting: int) -> bytes:
        if self.effort is None:  # lqz's own default
            return bytes(self._module().encode(image, setting))
        return bytes(self._module().encode(image, setting, effort=self.effort))

    def decode(self, data: bytes) -> Image.Image:
        return self._module().decode(data).convert("RGB")


def classical_codecs() -> list[PillowCodec]:
    """JPEG, WebP, AVIF, HEIC and JPEG XL with quality ladders spanning about 0.1–2 bpp on Kodak."""
    return [
        PillowCodec(
            name="jpeg",
            label="JPEG (libjpeg-turbo)",
            format="JPEG",
            settings=(3, 5, 10, 20, 35, 50, 70, 85),
            save_options={"subsampling": "4:2:0", "optimize": True},
            options="quality=Q, subsampling=4:2:0, optimize=True (Huffman), baseline",
            setup=_pillow_feature("jpg", "libjpeg"),
            library_version=_feature_version("libjpeg_turbo"),
        ),
        PillowCodec(
            name="webp",
            label="WebP (libwebp)",
            format="WEBP",
            settings=(0, 5, 15, 30, 50, 70, 80, 90),
            save_options={"method": 6, "lossless": False},
            options="quality=Q, method=6 (slowest, best), lossy, 4:2:0",
            setup=_pillow_feature("webp", "libwebp"),
            library_version=_feature_version("webp"),
        ),
        PillowCodec(
            name="avif",
            label="AVIF (libavif)",
            format="AVIF",
            settings=(10, 20, 30, 40, 50, 60, 70, 80),
            save_options={"speed": 6, "subsampling": "4:2:0"},
            options="quality=Q, speed=6 (Pillow default), subsampling=4:2:0, codec=auto, "
            "max_threads=--threads",
            setup=_pillow_feature("avif", "libavif"),
            library_version=_feature_version("avif"),
            thread_option="max_threads",
        ),
        PillowCodec(
            name="heic",
            label="HEIC (libheif/x265)",
            format="HEIF",
            settings=(10, 15, 20, 25, 30, 40, 50, 55),
            save_options={"chroma": 420},
            options="quality=Q, chroma=420, libheif's x265 defaults (preset slow, tune ssim); "
            "x265 picks its own thread count; decode threads=--threads",
            setup=_heif_setup,
            library_version=_distribution_version("pillow-heif"),
            decode_threads=_heif_decode_threads,
        ),
        PillowCodec(
            name="jxl",
            label="JPEG XL (libjxl)",
            format="JXL",
            settings=(0, 10, 20, 30, 50, 70, 80, 90),
            save_options={"effort": 7, "lossless": False},
            options="quality=Q (libjxl distance from quality), effort=7, lossy (VarDCT), "
            "num_threads=--threads, decode threads=--threads",
            setup=_jxl_setup,
            library_version=_distribution_version("pillow-jxl-plugin"),
            thread_option="num_threads",
            decode_threads=_jxl_decode_threads,
        ),
    ]


def all_codecs() -> dict[str, Contender]:
    """Every known codec by name, in report order."""
    codecs: list[Contender] = [LqzCodec(), *classical_codecs()]
    return {codec.name: codec for codec in codecs}


DEFAULT_CODECS = ("lqz", "jpeg", "webp", "avif", "heic", "jxl")
