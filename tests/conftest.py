"""Shared fixtures: the codebook as plain arrays and a brute-force reference (Λ24 tests); the
model that the API, CLI and Pillow plugin tests code with."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lqz.qualities import ladder_path

SHIPPED = ladder_path()  # the shipped ladder (or its one model), unless $LQZ_WEIGHTS says

#: Rows per block of the brute-force GEMM (64 x 196,560 float64 scores = 100 MB).
BRUTE_BLOCK = 64


@dataclass(frozen=True)
class BruteForce:
    """Exhaustive maximum inner product over all 196,560 codewords, in float64."""

    book: np.ndarray  # (196560, 24) float64 integer codewords (squared norm 32)
    book_t: np.ndarray  # (24, 196560) float64, contiguous

    def scores(self, x: np.ndarray) -> np.ndarray:
        """All inner products, (n, 196560); only for small n."""
        return np.asarray(x, dtype=np.float64).reshape(-1, 24) @ self.book_t

    def best(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(max score, smallest index attaining it) per row of ``x`` (n, 24)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, 24)
        top = np.empty(len(x))
        arg = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), BRUTE_BLOCK):
            s = x[start : start + BRUTE_BLOCK] @ self.book_t
            a = s.argmax(axis=1)  # first occurrence: the smallest index among exact ties
            arg[start : start + BRUTE_BLOCK] = a
            top[start : start + BRUTE_BLOCK] = s[np.arange(len(s)), a]
        return top, arg

    def score_of(self, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Inner products of each row of ``x`` with the codeword at ``indices`` (same batch)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, 24)
        return np.einsum("nd,nd->n", x, self.book[np.asarray(indices).reshape(-1)])

    def assert_nearest(self, x: np.ndarray, indices: np.ndarray, rtol: float = 1e-12) -> None:
        """``indices`` attain the brute-force maximum inner product, up to ties.

        Tolerance: ``rtol`` times the largest possible score magnitude ``4 * sum |x|``.
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1, 24)
        indices = np.asarray(indices).reshape(-1)
        assert indices.shape == (len(x),)
        assert ((indices >= 0) & (indices < len(self.book))).all()
        top, _ = self.best(x)
        got = self.score_of(x, indices)
        tol = rtol * 4.0 * np.abs(x).sum(axis=1) + 1e-300
        bad = np.nonzero(np.abs(got - top) > tol)[0]
        assert bad.size == 0, (
            f"{bad.size}/{len(x)} not nearest; first row {bad[0] if bad.size else None}: "
            f"x={x[bad[0]].tolist() if bad.size else None} got index "
            f"{indices[bad[0]] if bad.size else None} score {got[bad[:1]]} vs best {top[bad[:1]]}"
        )


@pytest.fixture(scope="session")
def int_book() -> np.ndarray:
    """The integer codebook, (196560, 24) int64, in canonical order."""
    from lqz.leech import integer_codebook

    return integer_codebook().astype(np.int64)


@pytest.fixture(scope="session")
def brute(int_book: np.ndarray) -> BruteForce:
    book = int_book.astype(np.float64)
    return BruteForce(book=book, book_t=np.ascontiguousarray(book.T))


@pytest.fixture(scope="session")
def golay_masks() -> np.ndarray:
    """The 4,096 Golay codewords as 24-bit masks (bit j = coordinate j), in Turyn order."""
    from lqz.leech.golay import golay_codewords

    return bits_to_masks(golay_codewords())


def bits_to_masks(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, dtype=np.int64) << np.arange(bits.shape[-1], dtype=np.int64)).sum(-1)


@pytest.fixture(scope="session")
def to_masks() -> Callable[[np.ndarray], np.ndarray]:
    return bits_to_masks


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible, different per test."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.name)) % 2**32
    return np.random.default_rng(seed)


@pytest.fixture
def noise_images(tmp_path: Path) -> Callable[[int, int, int], Path]:
    """``make(count, height, width)``: a folder of ``count`` uniform-noise RGB PNGs (seed 0),
    for trainer and ladder-tool runs."""
    from PIL import Image

    def make(count: int, height: int, width: int) -> Path:
        folder = tmp_path / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(count):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
        return folder

    return make


def tiny_weights(path: Path, seed: int = 0) -> Path:
    """A tiny random model saved as weights at ``path`` (stands in for the shipped one)."""
    import torch

    from lqz.nn.config import ModelConfig
    from lqz.nn.model import LqzModel
    from lqz.nn.weights import save_weights

    torch.manual_seed(seed)
    config = ModelConfig(
        channels=8, groups=3, kernel=3, prior_channels=8, mixtures=1, levels=(1, 2, 3)
    )
    save_weights(LqzModel(config).eval(), path)
    return path


@pytest.fixture(scope="session", name="tiny_weights")
def tiny_weights_fixture() -> Callable[..., Path]:
    """:func:`tiny_weights`, for tests that need a second model."""
    return tiny_weights


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped models, or a tiny random one where there are none or $LQZ_TEST_TINY is set."""
    if SHIPPED.exists() and not os.environ.get("LQZ_TEST_TINY"):
        return SHIPPED
    return tiny_weights(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture
def model(weights: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the API at the test model (and forget any other model loaded before)."""
    from lqz import api

    monkeypatch.setenv("LQZ_WEIGHTS", str(weights))
    api.clear_cache()
    yield weights
    api.clear_cache()


@pytest.fixture
def learnable_images(tmp_path: Path) -> Path:
    """A folder of ten 64x64 gradient images with a little noise (seed 0): content a tiny model
    can learn in a few steps (uniform noise would not show its loss falling)."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        yy, xx = np.mgrid[0:64, 0:64]
        base = np.stack([xx * (i + 1) % 256, yy * 3 % 256, (xx + yy) * 2 % 256], axis=-1)
        noise = rng.integers(0, 20, size=base.shape)
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder
