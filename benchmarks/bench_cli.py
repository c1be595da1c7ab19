"""Wall time of ``lqz encode`` / ``lqz decode`` on one image, as a user sees it (new process:
start-up, imports and model load included) and as a library call (model already loaded).

    python benchmarks/bench_cli.py [--image PATH] [--weights PATH] [--repeat N] [--quality Q]

Without ``--weights`` it uses ``$LQZ_WEIGHTS`` or the shipped model, and when neither exists a
tiny random model (then the figures show the pipeline's overhead, not the real model's speed).
Prints the figures; not a test.
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

DEFAULT_IMAGE = Path("/work/shared/kodak/kodim01.png")


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
    from lqz.models import MODELS_DIR

    shipped = MODELS_DIR / "lqz-mse.safetensors"
    if shipped.exists():
        return shipped, "shipped"
    return tiny_weights(scratch / "tiny.safetensors"), "TINY RANDOM MODEL (no trained weights)"


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def cli(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "lqz", *args], env=env, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"lqz {' '.join(args)} failed:\n{done.stderr.decode()}")


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
    parser.add_argument("--quality", type=int, default=None, help="level (default: middle)")
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
        print("new process each run (start-up, imports, model load included):")
        row("lqz --help", timed(lambda: cli(["--help"], env), args.repeat))
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

            api.loaded_model()
            import lqz.nn.coding  # noqa: F401  (what the first encode would import)
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


if __name__ == "__main__":
    main()
