"""kodak_eval: the whole command on two small images, metrics, BD-rate, data and bad input."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kodak_eval import EvalError
from kodak_eval import data as kdata
from kodak_eval.__main__ import main
from kodak_eval.bdrate import bd_matrix, bd_rate, monotone_curve
from kodak_eval.codecs import all_codecs
from kodak_eval.metrics import ms_ssim, ms_ssim_db, psnr

KODAK = Path(__file__).resolve().parents[2] / "shared" / "kodak"
REPO = Path(__file__).resolve().parents[1]
CLASSICAL = ("jpeg", "webp", "avif", "heic", "jxl")
TWO_SETTINGS = {"jpeg": "10,60", "webp": "10,60", "avif": "30,60", "heic": "20,40", "jxl": "10,60"}


# --- fixtures -------------------------------------------------------------------------------


def _small_images(folder: Path) -> Path:
    """Two 256x192 images: crops of two Kodak images, or synthetic when Kodak is absent."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(("kodim01", "kodim23")):
        source = KODAK / f"{name}.png"
        if source.exists():
            with Image.open(source) as im:
                crop = im.convert("RGB").crop((200, 150, 456, 342))
        else:
            y, x = np.mgrid[0:192, 0:256]
            base = np.stack([x, y, (x + y) // 2], axis=-1) * (1 + i)
            noisy = base + rng.normal(0, 12, base.shape)
            crop = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
        crop.save(folder / f"{name}.png")
    return folder


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return _small_images(tmp_path / "images")


def _fake_lqz(qualities: tuple[int, ...] | None = (1, 2)) -> types.ModuleType:
    """An lqz stand-in: a PNG of the image quantized more coarsely at lower quality."""
    fake = types.ModuleType("lqz")
    if qualities is not None:
        fake.QUALITIES = qualities

    def encode(image: Image.Image, quality: int) -> bytes:
        step = 64 >> quality
        pixels = np.asarray(image.convert("RGB")).astype(np.int32)
        quantized = ((pixels // step) * step + step // 2).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(quantized, "RGB").save(buffer, format="PNG")
        return b"LQZ\x00" + buffer.getvalue()

    def decode(data: bytes) -> Image.Image:
        assert data[:4] == b"LQZ\x00"
        with Image.open(io.BytesIO(data[4:])) as im:
            return im.convert("RGB")

    fake.encode = encode
    fake.decode = decode
    return fake


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _settings_args(codecs: list[str]) -> list[str]:
    args = []
    for name in codecs:
        args += ["--settings", f"{name}={TWO_SETTINGS.get(name, '1,2')}"]
    return args


# --- the whole command ------------------------------------------------------------------------


def test_whole_run_two_images(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "lqz", _fake_lqz())
    out = tmp_path / "out"
    codecs = ["lqz", *CLASSICAL]
    runnable = [n for n in codecs if all_codecs()[n].unavailable() is None]
    assert "lqz" in runnable and "jpeg" in runnable
    argv = ["--images", str(images), "--codecs", ",".join(codecs), "--out", str(out)]
    argv += [*_settings_args(codecs), "--no-progress", "--speed"]

    code, stdout, stderr = _run(argv, capsys)
    assert code == 0, stderr
    for name in ("results.json", "results.csv", "results_per_image.csv", "bd_rate.json"):
        assert (out / name).is_file(), name
    for name in ("rd_psnr.png", "rd_msssim.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp")), "atomic writes leave no temporary files"

    results = json.loads((out / "results.json").read_text())
    assert results["images"] == ["kodim01", "kodim23"]
    assert set(results["codecs"]) == set(runnable)
    assert {"versions", "cpu", "threads"} <= set(results["env"])
    assert results["env"]["threads"] == 1
    for name, entries in results["codecs"].items():
        assert len(entries) == 2
        assert [e["setting"] for e in entries] == sorted(e["setting"] for e in entries)
        for entry in entries:
            keys = {"setting", "bpp", "psnr", "ms_ssim", "enc_s", "dec_s", "per_image"}
            assert keys <= set(entry)
            assert [row["image"] for row in entry["per_image"]] == results["images"]
            for row in entry["per_image"]:
                assert row["bpp"] == pytest.approx(8 * row["bytes"] / (256 * 192))
                assert 0 < row["ms_ssim"] <= 1 and row["psnr"] > 10
                assert row["enc_s"] >= 0 and row["dec_s"] >= 0
            for key in ("bpp", "psnr", "ms_ssim", "enc_s", "dec_s"):
                mean = sum(row[key] for row in entry["per_image"]) / 2
                assert entry[key] == pytest.approx(mean)
        low, high = entries
        assert low["bpp"] < high["bpp"] and low["psnr"] < high["psnr"], name

    # The fake lqz file is 4 header bytes + a PNG: bpp counts the whole file.
    lqz_row = results["codecs"]["lqz"][0]["per_image"][0]
    with Image.open(images / "kodim01.png") as im:
        expected = len(_fake_lqz().encode(im, 1))
    assert lqz_row["bytes"] == expected

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(runnable)
    report = (out / "report.md").read_text()
    assert "| lqz | 1 |" in report and "BD-rate, PSNR" in report and "rd_psnr.png" in report
    assert "published curves" not in report  # only on the full Kodak set
    bd = json.loads((out / "bd_rate.json").read_text())
    assert bd["psnr"]["jpeg"]["jpeg"] == pytest.approx(0.0, abs=1e-9)
    assert "encode ms/img" in stdout  # --speed

    # Re-running measures nothing new; --force measures again.
    code, _, stderr = _run(argv, capsys)
    assert code == 0 and "measured 0 codec settings" in stderr
    assert json.loads((out / "results.json").read_text())["codecs"] == results["codecs"]
    forced = ["--images", str(images), "--codecs", "jpeg", "--out", str(out), "--force"]
    code, _, stderr = _run([*forced, "--settings", "jpeg=10,60", "--no-progress"], capsys)
    assert code == 0 and "measured 2 codec settings" in stderr
    again = json.loads((out / "results.json").read_text())
    assert set(again["codecs"]) == set(runnable)  # the other codecs are kept
    assert again["codecs"]["jpeg"][0]["bpp"] == results["codecs"]["jpeg"][0]["bpp"]


def test_lqz_not_ready_is_skipped_with_a_note(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "lqz", _fake_lqz(qualities=None))
    argv = ["--images", str(images), "--codecs", "lqz,jpeg", "--settings", "jpeg=20,50"]
    code, _, stderr = _run([*argv, "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert code == 0
    assert "note: skipping lqz: lqz is not ready (AttributeError" in stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert list(results["codecs"]) == ["jpeg"]


def test_lqz_setting_must_be_a_quality_level(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "lqz", _fake_lqz())
    argv = ["--images", str(images), "--codecs", "lqz", "--settings", "lqz=7"]
    code, _, stderr = _run([*argv, "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "not one of lqz.QUALITIES" in stderr


def test_other_image_set_is_refused_without_force(images: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    base = ["--images", str(images), "--codecs", "jpeg", "--settings", "jpeg=30,60"]
    base += ["--out", str(out), "--no-progress"]
    assert _run(base, capsys)[0] == 0
    code, _, stderr = _run([*base, "--limit", "1"], capsys)
    assert code == 1 and "holds results for other images" in stderr
    code, _, _ = _run([*base, "--limit", "1", "--force"], capsys)
    assert code == 0
    assert json.loads((out / "results.json").read_text())["images"] == ["kodim01"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--images", "/nonexistent/folder"], "image folder not found"),
        (["--images", "EMPTY"], "no images"),
        (["--images", "IMAGES", "--codecs", "jpeg,nope"], "unknown codec 'nope'"),
        (["--images", "IMAGES", "--codecs", "jpeg", "--settings", "webp=5"], "not in --codecs"),
        (["--images", "IMAGES", "--codecs", "jpeg", "--settings", "jpeg=a"], "integers"),
        (["--images", "IMAGES", "--codecs", "jpeg", "--settings", "jpeg=101"], "outside 0..100"),
        (["--images", "IMAGES", "--limit", "0"], "--limit"),
    ],
)
def test_bad_input_is_one_line_without_traceback(
    args: list[str], message: str, images: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "empty").mkdir()
    swap = {"EMPTY": str(tmp_path / "empty"), "IMAGES": str(images)}
    argv = [swap.get(a, a) for a in args] + ["--out", str(tmp_path / "o")]
    code, _, stderr = _run(argv, capsys)
    assert code != 0
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr


def test_module_entry_point_errors_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kodak_eval", "--images", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"kodak_eval: error: image folder not found: {tmp_path / 'missing'}"
    ]


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_match_compressai_eval(images: Path) -> None:
    torch = pytest.importorskip("torch")
    eval_model = pytest.importorskip("compressai.utils.eval_model.__main__")
    with Image.open(images / "kodim01.png") as im:
        original = np.asarray(im.convert("RGB"))
    rng = np.random.default_rng(1)
    decoded = np.clip(original + rng.normal(0, 6, original.shape), 0, 255).astype(np.uint8)

    def to_unit(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]

    reference = eval_model.compute_metrics(to_unit(original), to_unit(decoded))
    assert psnr(original, decoded) == pytest.approx(reference["psnr-rgb"], abs=1e-4)
    assert ms_ssim(original, decoded) == pytest.approx(reference["ms-ssim-rgb"], abs=1e-6)
    assert psnr(original, original) == 100.0
    assert ms_ssim_db(0.99) == pytest.approx(20.0)


# --- BD-rate ----------------------------------------------------------------------------------


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch–Carlson / Fritsch–Butland slopes as in scipy's PchipInterpolator."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        return np.full(2, delta[0])
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] <= 0:
            d[k] = 0.0
        else:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def edge(h0: float, h1: float, m0: float, m1: float) -> float:
        value = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(value) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(value) > abs(3 * m0):
            return 3 * m0
        return value

    d[0] = edge(h[0], h[1], delta[0], delta[1])
    d[-1] = edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, steps: int = 4000) -> float:
    """Integral of the PCHIP interpolant over [lo, hi] by Simpson's rule on Hermite cubics."""
    d = _pchip_slopes(x, y)
    t = np.linspace(lo, hi, 2 * steps + 1)
    k = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    s = (t - x[k]) / h
    value = (
        (2 * s**3 - 3 * s**2 + 1) * y[k]
        + (s**3 - 2 * s**2 + s) * h * d[k]
        + (-2 * s**3 + 3 * s**2) * y[k + 1]
        + (s**3 - s**2) * h * d[k + 1]
    )
    weights = np.ones_like(t)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return float(np.sum(weights * value) * (t[1] - t[0]) / 3)


def _bd_rate_by_hand(anchor: tuple, test: tuple) -> float:
    ra, da = np.log10(np.asarray(anchor[0])), np.asarray(anchor[1], dtype=float)
    rt, dt = np.log10(np.asarray(test[0])), np.asarray(test[1], dtype=float)
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    mean_diff = (_pchip_integral(dt, rt, lo, hi) - _pchip_integral(da, ra, lo, hi)) / (hi - lo)
    return (10**mean_diff - 1) * 100


ANCHOR = ([0.12, 0.25, 0.5, 0.9, 1.6], [26.0, 28.4, 31.1, 33.9, 36.8])


@pytest.mark.parametrize("scale", [0.8, 1.0, 1.25])
def test_bd_rate_of_scaled_rates_is_that_percentage(scale: float) -> None:
    test = ([r * scale for r in ANCHOR[0]], ANCHOR[1])
    assert bd_rate(ANCHOR, test) == pytest.approx((scale - 1) * 100, abs=1e-9)


def test_bd_rate_matches_an_independent_pchip_integration() -> None:
    test = ([0.1, 0.3, 0.45, 0.8, 1.2, 2.0], [25.5, 28.9, 30.2, 33.0, 34.9, 37.5])
    expected = _bd_rate_by_hand(ANCHOR, test)
    assert bd_rate(ANCHOR, test) == pytest.approx(expected, abs=1e-6)
    assert -40 < expected < 40  # a real, non-trivial difference
    reverse = bd_rate(test, ANCHOR)
    assert reverse == pytest.approx(_bd_rate_by_hand(test, ANCHOR), abs=1e-6)


def test_bd_rate_edge_cases() -> None:
    assert bd_rate(ANCHOR, ([0.3], [29.0])) is None  # one point
    assert bd_rate(ANCHOR, ([3.0, 4.0], [40.0, 42.0])) is None  # no overlap in quality
    rates, dists = monotone_curve([0.5, 0.2, 0.9, 1.0], [30.0, 27.0, 33.0, 32.5])
    assert list(rates) == [0.2, 0.5, 0.9] and list(dists) == [27.0, 30.0, 33.0]
    matrix = bd_matrix({"a": ANCHOR}, {"a": ANCHOR, "b": ([0.2, 0.4], [30.0, 31.0])})
    assert matrix["a"]["a"] == pytest.approx(0.0, abs=1e-12) and matrix["a"]["b"] is not None


# --- data ---------------------------------------------------------------------------------------


def test_shipped_checksums_cover_kodak() -> None:
    sums = kdata.kodak_checksums()
    assert sorted(sums) == [f"kodim{i:02d}.png" for i in range(1, 25)]
    if (KODAK / "SHA256SUMS").exists():
        for name in ("kodim01.png", "kodim24.png"):
            assert kdata.sha256_file(KODAK / name) == sums[name]


def test_download_verifies_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = {name: f"image {name}".encode() for name in kdata.kodak_checksums()}
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in payloads.items()}
    monkeypatch.setattr(kdata, "kodak_checksums", lambda: sums)
    fetched: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        name = url.rsplit("/", 1)[1]
        fetched.append(url)
        return io.BytesIO(payloads[name])

    monkeypatch.setattr(kdata.urllib.request, "urlopen", fake_urlopen)
    cache = kdata.download_kodak(tmp_path / "cache", limit=2)
    assert sorted(p.name for p in cache.iterdir()) == ["kodim01.png", "kodim02.png"]
    assert fetched[0] == "http://r0k.us/graphics/kodak/kodak/kodim01.png"
    kdata.download_kodak(tmp_path / "cache", limit=2)
    assert len(fetched) == 2  # verified cache hits are not fetched again

    payloads["kodim03.png"] = b"tampered"
    with pytest.raises(EvalError, match="checksum mismatch"):
        kdata.download_kodak(tmp_path / "cache", limit=3)
    assert not (tmp_path / "cache" / "kodim03.png").exists()


def test_published_anchors_are_shipped() -> None:
    from kodak_eval.anchors import load_published, plotted_anchors

    source, anchors = load_published()
    assert "CompressAI" in source
    names = {a.name for a in plotted_anchors()}
    assert {"vtm", "bpg_444_x265_ycbcr", "paper-elic2022_mse", "paper-l24sq-vit"} <= names
    assert all(len(a.bpp) == len(a.psnr) for a in anchors)
    assert math.isclose(next(a for a in anchors if a.name == "paper-l24sq-vit").bpp[0], 0.2747)


def test_results_of_another_codec_version_are_measured_again(
    images: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "o"
    argv = ["--images", str(images), "--codecs", "jpeg", "--settings", "jpeg=30"]
    argv += ["--out", str(out), "--no-progress"]
    assert _run(argv, capsys)[0] == 0
    path = out / "results.json"
    results = json.loads(path.read_text())
    (entry,) = results["codecs"]["jpeg"]
    assert entry["codec_id"] == all_codecs()["jpeg"].identity()
    assert entry["codec_id"].startswith("Pillow ")

    marked = dict(entry, bpp=-1.0)  # a marker: survives only if the entry is (wrongly) kept
    results["codecs"]["jpeg"] = [marked]
    path.write_text(json.dumps(results))
    assert _run(argv, capsys)[0] == 0
    assert json.loads(path.read_text())["codecs"]["jpeg"][0]["bpp"] == -1.0  # same version: kept

    results["codecs"]["jpeg"] = [dict(marked, codec_id="Pillow 0.0 (another build)")]
    path.write_text(json.dumps(results))
    assert _run(argv, capsys)[0] == 0
    remeasured = json.loads(path.read_text())["codecs"]["jpeg"][0]
    assert remeasured["bpp"] == entry["bpp"] and remeasured["codec_id"] == entry["codec_id"]

    # a setting of another version that the current ladder lacks is dropped, not reported
    stale = dict(entry, setting=50, bpp=-2.0, codec_id="Pillow 0.0 (another build)")
    results["codecs"]["jpeg"] = [entry, stale]
    path.write_text(json.dumps(results))
    assert _run(argv, capsys)[0] == 0
    assert [e["setting"] for e in json.loads(path.read_text())["codecs"]["jpeg"]] == [30]
    assert "-2.0" not in (out / "results.csv").read_text()


def test_lqz_effort_reaches_the_encoder_and_the_identity(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    fake = _fake_lqz()
    plain_encode = fake.encode
    efforts: list[object] = []

    def encode(image: Image.Image, quality: int, effort: object = "unset") -> bytes:
        efforts.append(effort)
        return plain_encode(image, quality)

    fake.encode = encode
    monkeypatch.setitem(sys.modules, "lqz", fake)
    argv = ["--images", str(images), "--codecs", "lqz", "--settings", "lqz=1"]
    argv += ["--out", str(tmp_path / "o"), "--no-progress"]
    assert _run([*argv, "--lqz-effort", "2"], capsys)[0] == 0
    assert efforts and set(efforts) == {2}
    efforts.clear()
    assert _run(argv, capsys)[0] == 0  # lqz's own default: no effort passed
    assert efforts and set(efforts) == {"unset"}
    code, _, stderr = _run([*argv, "--lqz-effort", "-1"], capsys)
    assert code == 2 and "Traceback" not in stderr
