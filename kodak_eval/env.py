"""The environment a run measured in: library versions, CPU and threads."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata
from typing import Any

from PIL import features

DISTRIBUTIONS = (
    "lqz",
    "pillow",
    "pillow-heif",
    "pillow-jxl-plugin",
    "numpy",
    "torch",
    "pytorch-msssim",
    "compressai",
    "bjontegaard",
    "scipy",
    "matplotlib",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    for feature in ("jpg", "webp", "avif"):
        versions[f"pillow:{feature}"] = features.version(feature)
    try:
        import pillow_heif

        info = pillow_heif.libheif_info()
        versions["libheif"] = info.get("libheif")
        versions["libheif:HEIF-encoder"] = info.get("HEIF")
    except ImportError:
        pass
    return versions


def environment(threads: int, command: str) -> dict[str, Any]:
    """A JSON-ready description of this machine and run."""
    return {
        "versions": _versions(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "threads": threads,
        "command": command,
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
