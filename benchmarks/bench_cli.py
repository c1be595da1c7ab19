"""Wall time of ``lqz encode`` / ``lqz decode`` on one image, as a user sees it (new process:
start-up, imports and model load included) and as a library call (model already loaded), and
the peak memory (RSS) of coding a 16-megapixel image.

    python benchmarks/bench_cli.py [--image PATH] [--weights PATH] [--repeat N] [--quality Q]
                                   [--big WxH | --no-memory | --memory-only] [--cold]

Without ``--weights`` it uses ``$LQZ_WEIGHTS`` or the shipped ladder, and when neither exists a
tiny random model (then the figures show the pipeline's overhead, not the real model's speed).
The memory figures come from ``lqz encode`` and ``lqz decode`` of the image scaled to ``--big``
(default 4896x3264, 16 MP) in new processes, read with ``os.wait4``; they take minutes, and
RSS does not depend on other load, so ``--memory-only`` runs them apart from the timings.
``--cold`` also times a first run with numba's kernel cache empty (what a fresh install pays
once). Prints the figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

DEFAULT_IMAGE = Path("/work/shared/kodak/kodim23.png")
DEFAULT_BIG = "4896x3264"


TINY = """
import sys, torch
from lqz.nn.config import ModelConfig
from lqz.nn.model import LqzModel
from lqz.nn.weights import save_weights
torch.manual_seed(0)
config = ModelConfig(channels=8, groups=3, kernel=3, prior_channels=8, mixtures=1, levels=(1, 2, 3))
save_weights(LqzModel(config).eval(), sys.argv[1])
"""


def tiny_weights(path: Path) -> Path:
    """A tiny random model, for when no trained weights exist (made in another process, so
    that this one's import and model-load figure includes importing torch)."""
    subprocess.run([sys.executable, "-c", TINY, str(path)], check=True, capture_output=True)
    return path


def pick_weights(given: Path | None, scratch: Path) -> tuple[Path, str]:
    if given is not None:
        return given, "given"
    if os.environ.get("LQZ_WEIGHTS"):
        return Path(os.environ["LQZ_WEIGHTS"]), "$LQZ_WEIGHTS"
    from lqz.qualities import DEFAULT_LADDER

    if DEFAULT_LADDER.exists():  # the qualities the CLI has, adaptive rungs included
        return DEFAULT_LADDER, "shipped"
    return tiny_weights(scratch / "tiny.safetensors"), "TINY RANDOM MODEL (no trained weights)"


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def cli(args: list[str], env: dict[str, str]) -> int:
    """Run ``lqz ARGS`` in a new process; its peak RSS in bytes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lqz", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"lqz {' '.join(args)} failed:\n{errors.decode()}")
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def memory(image_path: Path, size: str, scratch: Path, env: dict[str, str], level: list[str]):
    """Peak RSS and wall time of lqz encode and decode of the image scaled to ``size``."""
    from PIL import Image

    width, height = (int(v) for v in size.lower().split("x"))
    big = scratch / f"big-{width}x{height}.png"
    with Image.open(image_path) as image:
        image.convert("RGB").resize((width, height), Image.LANCZOS).save(big, compress_level=1)
    coded, decoded = big.with_suffix(".lqz"), big.with_name("back.png")
    print(f"peak memory, new process, {width}x{height} ({width * height / 1e6:.1f} MP):")
    for name, args in (
        ("lqz encode", ["encode", str(big), "-o", str(coded), "--force", "--quiet", *level]),
        ("lqz decode", ["decode", str(coded), "-o", str(decoded), "--force", "--quiet"]),
    ):
        start = time.perf_counter()
        rss = cli(args, env)
        seconds = time.perf_counter() - start
        print(f"{name:<34}{rss / 2**20:>9.0f} MiB peak RSS  ({seconds:.1f} s)")


def cold(image: Path, scratch: Path, env: dict[str, str], level: list[str]) -> None:
    """First encode and decode with an empty numba cache (what a fresh install pays once)."""
    cold_env = {**env, "NUMBA_CACHE_DIR": str(scratch / "numba-cache")}
    coded, decoded = scratch / "cold.lqz", scratch / "cold.png"
    print("numba kernel cache empty, then filled (new process each run):")
    for state in ("cold", "warm"):
        enc = ["encode", str(image), "-o", str(coded), "--force", "--quiet", *level]
        dec = ["decode", str(coded), "-o", str(decoded), "--force", "--quiet"]
        row(f"lqz encode ({state} cache)", timed(lambda a=enc: cli(a, cold_env), 1))
        row(f"lqz decode ({state} cache)", timed(lambda a=dec: cli(a, cold_env), 1))


def row(name: str, times: list[float], note: str = "") -> None:
    print(
        f"{name:<34}{statistics.median(times):>9.3f} s  (min {min(times):.3f}, n={len(times)})"
        f"  {note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="image to code")
    parser.add_argument("--weights", type=Path, default=None, help="model weights")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median shown)")
    parser.add_argument("--quality", type=int, default=None, help="quality (default: lqz's)")
    parser.add_argument("--big", default=DEFAULT_BIG, help="size WxH for the memory figures")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory figures")
    parser.add_argument("--memory-only", action="store_true", help="only the memory figures")
    parser.add_argument("--cold", action="store_true", help="also time an empty kernel cache")
    args = parser.parse_args()
    if not args.image.exists():
        raise SystemExit(f"no image at {args.image} (give --image)")

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        weights, origin = pick_weights(args.weights, scratch)
        env = {**os.environ, "LQZ_WEIGHTS": str(weights)}
        coded, decoded = scratch / "out.lqz", scratch / "out.png"
        level = [] if args.quality is None else ["-q", str(args.quality)]

        from PIL import Image

        with Image.open(args.image) as image:
            image.load()
        width, height = image.size
        print(f"image   {args.image} ({width}x{height})")
        print(f"model   {weights} [{origin}]")
        print(f"python  {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        print()
        if args.memory_only:
            memory(args.image, args.big, scratch, env, level)
            return
        print("new process each run (start-up, imports, model load included):")
        row("lqz --help", timed(lambda: cli(["--help"], env), args.repeat))
        row("lqz --version", timed(lambda: cli(["--version"], env), args.repeat))
        enc = [str(args.image), "-o", str(coded), "--force", "--quiet", *level]
        row("lqz encode", timed(lambda: cli(["encode", *enc], env), args.repeat))
        dec = [str(coded), "-o", str(decoded), "--force", "--quiet"]
        row("lqz decode", timed(lambda: cli(["decode", *dec], env), args.repeat))

        os.environ["LQZ_WEIGHTS"] = str(weights)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecation chatter at import
            import lqz
            from lqz import api

            api.model_set().at(args.quality or api.default_quality())
            import lqz.tiles  # noqa: F401  (what the first encode would import)
        load = time.perf_counter() - start
        print()
        print("library (in this process):")
        row("import + model load (once)", [load])
        quality = args.quality
        data = lqz.encode(image, quality=quality)  # warm-up
        bpp = 8 * len(data) / (width * height)
        megapixels = width * height / 1e6
        times = timed(lambda: lqz.encode(image, quality=quality), args.repeat)
        row("lqz.encode", times, f"{megapixels / statistics.median(times):.3f} MP/s, {bpp:.4f} bpp")
        times = timed(lambda: lqz.decode(data), args.repeat)
        row("lqz.decode", times, f"{megapixels / statistics.median(times):.3f} MP/s")
        if args.cold:
            print()
            cold(args.image, scratch, env, level)
        if not args.no_memory:
            print()
            memory(args.image, args.big, scratch, env, level)


if __name__ == "__main__":
    main()
