"""Quality ladders: qualities mapped to (model, level) over several weights files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lqz import api
from lqz import format as fmt
from lqz.errors import ImplausibleHeader, OutputError, UnknownModel
from lqz.qualities import Ladder, WeightsError, model_id


def tiny(path: Path, seed: int, levels: tuple[int, ...], stride_log2: int = 2) -> Path:
    import torch

    from lqz.nn.config import ModelConfig
    from lqz.nn.model import LqzModel
    from lqz.nn.weights import save_weights

    torch.manual_seed(seed)
    config = ModelConfig(
        channels=8, groups=3, kernel=3, prior_channels=8, mixtures=1, levels=levels,
        stride_log2=stride_log2,
    )  # fmt: skip
    save_weights(LqzModel(config).eval(), path)
    return path


@pytest.fixture
def ladder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Qualities 1-2 from a stride-8 model, 3-4 from a stride-4 one, through $LQZ_WEIGHTS."""
    tiny(tmp_path / "low.safetensors", 1, (1, 2, 3), stride_log2=3)
    tiny(tmp_path / "high.safetensors", 2, (1, 2, 3))
    spec = {
        "qualities": [
            {"weights": "low.safetensors", "level": 1},
            {"weights": "low.safetensors", "level": 3},
            {"weights": "high.safetensors", "level": 2},
            {"weights": "high.safetensors", "level": 3},
        ]
    }
    path = tmp_path / "ladder.json"
    path.write_text(json.dumps(spec))
    monkeypatch.setenv("LQZ_WEIGHTS", str(path))
    api.clear_cache()
    yield path
    api.clear_cache()


def picture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(19, 27, 3), dtype=np.uint8)


def test_each_quality_uses_its_model_and_level(ladder: Path) -> None:
    import lqz

    assert lqz.QUALITIES == (1, 2, 3, 4)
    expected = [("low", 1), ("low", 3), ("high", 2), ("high", 3)]
    for quality, (name, level) in zip(lqz.QUALITIES, expected, strict=True):
        data = lqz.encode(picture(), quality=quality)
        header = fmt.read_header(data)
        assert header.model_id == model_id(ladder.parent / f"{name}.safetensors")
        assert header.level == level  # the model's own level
        assert api.quality_of(header) == quality
        back = np.asarray(lqz.decode(data))
        assert back.shape == (19, 27, 3)
        # An independent reference: the same model and groups through the tile coder.
        from lqz.nn.weights import load_model
        from lqz.tiles import decode_tile

        model = load_model(ladder.parent / f"{name}.safetensors")
        tiles = fmt.unpack(data)[1]
        groups = model.config.levels[level - 1]
        assert np.array_equal(back, decode_tile(model, bytes(tiles[0]), groups, 19, 27))


def test_bpp_search_walks_the_whole_ladder(ladder: Path) -> None:
    import lqz

    sizes = [len(lqz.encode(picture(1), quality=q)) for q in lqz.QUALITIES]
    big = lqz.encode(picture(1), bpp=1000.0)
    assert len(big) == sizes[-1]
    assert fmt.read_header(big).model_id == model_id(ladder.parent / "high.safetensors")


def test_files_of_a_model_outside_the_ladder_or_bad_levels_are_refused(
    ladder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lqz

    data = lqz.encode(picture(), quality=1)
    header, tiles, alpha = fmt.unpack(data)
    fields = {f: getattr(header, f) for f in header.__dataclass_fields__}
    for level in (0, 4):  # the low model has levels 1..3
        forged = fmt.pack(fmt.Header(**{**fields, "level": level}), [bytes(t) for t in tiles])
        with pytest.raises(ImplausibleHeader, match=f"level {level} is not a level"):
            lqz.decode(forged)
    other = tiny(tmp_path / "other.safetensors", 9, (1, 2, 3))
    (tmp_path / "one.json").write_text(
        json.dumps({"qualities": [{"weights": other.name, "level": 1}]})
    )
    monkeypatch.setenv("LQZ_WEIGHTS", str(tmp_path / "one.json"))
    api.clear_cache()
    with pytest.raises(UnknownModel):
        lqz.decode(data)
    assert api.quality_of(header) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("not json", "not a quality ladder"),
        ({"qualities": []}, "empty"),
        ({"qualities": [{"weights": "missing.safetensors", "level": 1}]}, "missing.safetensors"),
        ({"qualities": [{"weights": "low.safetensors", "level": 4}]}, "level 4"),
        ({"qualities": [{"weights": "low.safetensors"}]}, "not a quality ladder"),
    ],
)
def test_bad_ladders_are_one_line_errors(ladder: Path, spec: object, message: str) -> None:
    path = ladder.parent / "bad.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    with pytest.raises(WeightsError, match=message) as info:
        Ladder.load(path)
    assert "\n" not in str(info.value)


def test_a_weights_file_is_a_ladder_of_its_levels(tmp_path: Path) -> None:
    path = tiny(tmp_path / "w.safetensors", 3, (1, 3))
    ladder = Ladder.load(path)
    assert ladder.qualities == (1, 2)
    assert [r.level for r in ladder.rungs] == [1, 2]
    assert ladder.quality_of(model_id(path), 2) == 2
    assert ladder.quality_of(b"\0" * 8, 2) is None
    other = Ladder.load(tiny(tmp_path / "v.safetensors", 4, (1, 3)))
    assert other.identity != ladder.identity


def test_shipped_ladder_is_valid() -> None:
    from lqz.qualities import DEFAULT_LADDER

    if not DEFAULT_LADDER.exists():
        pytest.skip("no shipped ladder")
    ladder = Ladder.load(DEFAULT_LADDER)
    assert len(ladder.qualities) >= 6
    assert len(set(ladder.rungs)) == len(ladder.rungs)


def test_rungs_are_the_pareto_front_thinned_by_rate_and_psnr() -> None:
    from lqz.train.ladder import Point, choose_rungs

    def pt(name: str, bpp: float, psnr: float) -> Point:
        return Point(Path(name), 1, bpp, psnr)

    a, b, c, d = pt("a", 0.1, 20.0), pt("b", 0.2, 22.0), pt("c", 0.4, 23.0), pt("d", 0.8, 23.5)
    close = pt("close", 0.19, 21.8)  # on the front, but within 15 % of b's rate
    dominated = pt("dominated", 0.25, 21.0)
    same_rate = pt("same", 0.2, 21.5)
    past_peak = pt("past", 0.9, 23.4)
    points = [c, d, close, a, dominated, b, same_rate, past_peak]
    assert choose_rungs(points) == [a, b, c, d]
    assert choose_rungs(points, min_ratio=1.0, min_step=0.0) == [a, close, b, c, d]
    assert choose_rungs(points, min_ratio=1.0, min_step=0.25) == [a, b, c, d]  # close: 0.2 dB
    assert choose_rungs(points, min_ratio=1.0, min_step=0.6) == [a, b, d]  # c: 0.5 dB below d
    # brute-force check of the defining properties on random points
    rng = np.random.default_rng(0)
    cloud = [pt(str(i), float(x), float(y)) for i, (x, y) in enumerate(rng.random((60, 2)))]
    for ratio, step in ((1.0, 0.0), (1.15, 0.0), (1.5, 0.0), (1.15, 0.05), (1.0, 0.1)):
        rungs = choose_rungs(cloud, ratio, step)
        for r in rungs:  # nothing dominates a rung
            assert not any(q is not r and q.bpp <= r.bpp and q.psnr >= r.psnr for q in cloud)
        for lo, hi in zip(rungs, rungs[1:], strict=False):
            assert hi.bpp >= lo.bpp * ratio and hi.psnr >= lo.psnr + step and hi.psnr > lo.psnr
        assert rungs[-1].psnr == max(p.psnr for p in cloud)
        if step:
            continue
        front = [
            r
            for r in cloud
            if not any(q is not r and q.bpp <= r.bpp and q.psnr >= r.psnr for q in cloud)
        ]
        assert min(r.bpp for r in rungs) <= min(r.bpp for r in front) * ratio


def test_ladder_tool_writes_a_loadable_ladder(tmp_path: Path, noise_images) -> None:
    from lqz.train.ladder import main

    data = noise_images(4, 40, 48)
    models = tmp_path / "models"
    models.mkdir()
    low = tiny(models / "low.safetensors", 1, (1, 2, 3), stride_log2=3)
    high = tiny(models / "high.safetensors", 2, (1, 2, 3))
    out = models / "l.json"
    main([str(low), str(high), "--data", str(data), "--holdout", "2", "--out", str(out)])
    ladder = Ladder.load(models / "l.json")
    assert 1 <= len(ladder.qualities) <= 6
    spec = json.loads((models / "l.json").read_text())["qualities"]
    rates = [q["heldout_bpp"] for q in spec]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert {r.weights.name for r in ladder.rungs} <= {"low.safetensors", "high.safetensors"}
    assert json.loads((models / "l.json").read_text())["effort"] == 3  # the default


def test_ladder_tool_names_weights_relative_to_a_ladder_elsewhere(
    tmp_path: Path, noise_images
) -> None:
    from lqz.train.ladder import main

    data = noise_images(4, 40, 48)
    (tmp_path / "models").mkdir()
    weights = tiny(tmp_path / "models" / "m.safetensors", 1, (1, 2))
    out = tmp_path / "elsewhere" / "deep" / "l.json"
    with pytest.raises(OutputError, match="no folder"):  # checked before measuring
        main([str(weights), "--data", str(data), "--holdout", "2", "--out", str(out)])
    out.parent.mkdir(parents=True)
    main([str(weights), "--data", str(data), "--holdout", "2", "--out", str(out)])
    named = {q["weights"] for q in json.loads(out.read_text())["qualities"]}
    assert named == {"../../models/m.safetensors"}
    assert {r.weights.resolve() for r in Ladder.load(out).rungs} == {weights.resolve()}


def test_measuring_without_effort_agrees_with_the_trainers_validation(tmp_path: Path) -> None:
    import torch

    from lqz.nn.weights import load_model
    from lqz.train.heldout import validate
    from lqz.train.ladder import measure_level

    model = load_model(tiny(tmp_path / "m.safetensors", 4, (1, 2, 3)))
    crops = torch.rand(5, 3, 32, 24, generator=torch.Generator().manual_seed(1))
    metrics = validate(model, crops, with_prior=True)
    model.eval()
    for level, groups in enumerate(model.config.levels, start=1):
        bpp, psnr = measure_level(model, crops, groups, effort=0, batch=2)
        assert bpp == pytest.approx(metrics[f"bpp_q{level}"], rel=1e-4)
        assert psnr == pytest.approx(metrics[f"psnr_q{level}"], abs=1e-4)
        refined_bpp, refined_psnr = measure_level(model, crops, groups, effort=2, batch=2)
        assert refined_psnr >= psnr - 1e-9  # per image, the best iterate is kept
