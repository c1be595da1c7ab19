"""The GPU-window path on the CPU: training pack, device-side crops and search, the bootstrap
that imports lqz without pip, and a dry run of the window command that a second run resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lqz.errors import LqzError, OutputError, TrainingDataError, TrainSettingError

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "tools" / "pythonpath"
#: What the GPU machine's image lacks: the training path must not import them (torch itself
#: tries tqdm, and does without).
ABSENT = ("constriction", "compressai", "PIL", "tqdm")
NEEDLESS = ("constriction", "compressai", "PIL")


def site_packages() -> str:
    return str(Path(torch.__file__).resolve().parents[1])


def blocker(folder: Path) -> Path:
    """A sitecustomize that makes ``ABSENT`` unimportable in the subprocesses it is given to."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "from importlib.machinery import ModuleSpec\n"
        f"ABSENT = {ABSENT!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ABSENT:\n"
        "            return ModuleSpec(name, self)\n"
        "    def create_module(self, spec):\n"
        "        raise ModuleNotFoundError(f'{spec.name} is not on the GPU machine')\n"
        "    def exec_module(self, module):\n"
        "        pass\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    return folder


def make_pack(src: Path, out: Path, **options: object) -> None:
    from lqz.train.pack import main

    args = [str(src), "--out", str(out)]
    for k, v in options.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    main(args)


def test_pack_holds_real_crops_is_capped_and_deterministic(tmp_path: Path, noise_images) -> None:
    from PIL import Image

    from lqz.train.data import list_images, load_pack

    src = noise_images(5, 40, 48)
    cap = 0.05  # MiB
    make_pack(src, tmp_path / "a.npz", max_mib=cap, crop=32, holdout=2)
    make_pack(src, tmp_path / "b.npz", max_mib=cap, crop=32, holdout=2)
    make_pack(src, tmp_path / "c.npz", max_mib=cap, crop=32, holdout=2, seed=1)
    a = (tmp_path / "a.npz").read_bytes()
    assert a == (tmp_path / "b.npz").read_bytes()
    assert len(a) <= cap * 2**20
    crops, holdout = load_pack(tmp_path / "a.npz")
    other, _ = load_pack(tmp_path / "c.npz")
    assert crops.shape[1:] == (32, 32, 3) and not np.array_equal(crops, other)
    assert len(crops) == (int(cap * 2**20) - 4096 - holdout.nbytes) // (32 * 32 * 3)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in list_images(src)]
    # every crop is a window of one of the training images (never of a held-out one)
    windows = {
        im[y : y + 32, x : x + 32].tobytes()
        for im in images[:3]
        for y in range(40 - 31)
        for x in range(48 - 31)
    }
    assert all(c.tobytes() in windows for c in crops)
    # the held-out crops: centred 32 x 32 (largest multiple of 16 that fits) of the last two
    expected = np.stack([im[4:36, 8:40] for im in images[3:]])
    np.testing.assert_array_equal(holdout, expected)


def test_pack_errors_are_one_line_with_their_exit_codes(tmp_path: Path, noise_images, capsys):
    from lqz.train.entry import run_main
    from lqz.train.pack import main

    src = noise_images(3, 40, 48)
    with pytest.raises(TrainingDataError, match="more than 8 images"):
        make_pack(src, tmp_path / "p.npz")
    with pytest.raises(TrainingDataError, match="no room"):
        make_pack(src, tmp_path / "p.npz", max_mib=0.001, crop=32, holdout=1)
    make_pack(src, tmp_path / "p.npz", max_mib=0.05, crop=32, holdout=1)
    before = (tmp_path / "p.npz").read_bytes()
    capsys.readouterr()
    argv = [str(src), "--out", str(tmp_path / "p.npz"), "--crop", "32", "--holdout", "1"]
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: main(argv), "lqz.train.pack")
    assert exit_.value.code == OutputError.exit_code == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lqz.train.pack: error: ")
    assert (tmp_path / "p.npz").read_bytes() == before
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    from lqz.train.data import load_pack

    with pytest.raises(TrainingDataError, match="not an lqz training pack"):
        load_pack(tmp_path / "bad.npz")


def test_device_crops_are_windows_of_their_images_with_flips() -> None:
    from lqz.train.data import DeviceCrops

    images = torch.randint(0, 256, (3, 12, 10, 3), dtype=torch.uint8)
    sampler = DeviceCrops(images, 6, seed=5)
    batch = sampler.batch(40)
    assert batch.shape == (40, 3, 6, 6) and batch.dtype == torch.float32
    windows = set()
    for im in images:
        for y in range(12 - 5):
            for x in range(10 - 5):
                w = im[y : y + 6, x : x + 6]
                for flip in (w, w.flip(0), w.flip(1), w.flip(0).flip(1)):
                    windows.add(flip.numpy().tobytes())
    pixels = (batch.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    assert all(p.numpy().tobytes() in windows for p in pixels)
    sampler.reseed(5)
    assert torch.equal(sampler.batch(40), batch)
    with pytest.raises(TrainingDataError):
        DeviceCrops(images, 11)


@pytest.mark.parametrize("autocast", [False, True])
def test_device_quantizer_matches_the_leech_quantizer(autocast: bool) -> None:
    from lqz.leech import LeechQuantizer
    from lqz.train.quantizer import DeviceQuantizer

    torch.manual_seed(3)
    latent = torch.randn(3, 24 * 4, 2, 3, requires_grad=True)
    needed = torch.tensor([1, 4, 2])
    reference, mine = LeechQuantizer(), DeviceQuantizer()
    for limit in (None, needed):
        cw_ref, idx_ref = reference(latent, limit)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            cw, idx = mine(latent, limit)
        assert cw.dtype == torch.float32
        assert torch.equal(idx, idx_ref) and torch.equal(cw, cw_ref)
        weights = torch.randn_like(cw)
        (g_ref,) = torch.autograd.grad((cw_ref * weights).sum(), latent)
        (g,) = torch.autograd.grad((cw * weights).sum(), latent)
        torch.testing.assert_close(g, g_ref)


def test_bootstrap_imports_lqz_from_the_checkout_with_pythonpath_only(tmp_path: Path) -> None:
    """No install, no site processing (python -S): only the shim and torch's folder."""
    code = (
        "import lqz, lqz.cli, lqz.models, lqz.train.device, sys\n"
        "print(lqz.__file__, lqz.cli.__file__, lqz.models.MODELS_DIR, lqz.__version__)\n"
        f"print(sorted(m for m in {NEEDLESS!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM), site_packages()])}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    paths, absent = out.stdout.splitlines()
    init, cli, models, version = paths.split()
    assert Path(init) == ROOT / "codec" / "__init__.py"
    assert Path(cli) == ROOT / "cli" / "__init__.py"
    assert Path(models) == ROOT / "models"
    assert version == __import__("lqz").__version__
    assert absent == "[]"


def test_gpu_window_dry_run_on_cpu_writes_loadable_artefacts_and_resumes(
    tmp_path: Path, noise_images
) -> None:
    """The window command as the GPU machine runs it (tools/gpu_window.sh, lqz through the
    bootstrap, the modules that machine lacks unimportable), then a second window resuming."""
    from lqz.nn.weights import load_model
    from lqz.train.device import LOG_NAME, SUMMARY_NAME, WEIGHTS_NAME, WindowOptions, run_window

    src = noise_images(4, 40, 40)
    pack = tmp_path / "pack.npz"
    make_pack(src, pack, max_mib=0.1, crop=32, holdout=1)
    out = tmp_path / "window"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(blocker(tmp_path / "block")),
    }
    command = [str(ROOT / "tools" / "gpu_window.sh"), str(pack), "0.25", str(out)]
    options = ["--device", "cpu", "--tiny", "--batch", "2", "--threads", "1", "--log-every", "1"]
    done = subprocess.run(command + options + ["--save-minutes", "0.05"], env=env, cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([LOG_NAME, SUMMARY_NAME, WEIGHTS_NAME])
    model = load_model(out / WEIGHTS_NAME)
    first = json.loads((out / SUMMARY_NAME).read_text())
    assert first["finished"] and first["step"] > 0 and first["device"] == "cpu"
    assert model.config.to_json() == json.dumps(first["config"], sort_keys=True)
    records = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and all(0 <= r["share_search"] <= 1 and r["images_per_s"] > 0 for r in steps)
    assert sum("validation" in r for r in records) >= 2  # the start and the end at least
    assert set(first["validation"]) == {
        f"{k}_q{q}" for k in ("psnr", "bpp", "raw_bpp") for q in (1, 2, 3)
    }
    # a second window in the same folder continues from its weights, step count and log
    second = run_window(
        WindowOptions(pack, 0.1, out, device="cpu", batch=2, threads=1, log_every=1)
    )
    assert second["step"] > first["step"]
    again = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert again[: len(records)] == records and len(again) > len(records)
    assert load_model(out / WEIGHTS_NAME).config == model.config
    with pytest.raises(TrainSettingError, match="already holds a run"):
        run_window(WindowOptions(pack, 0.1, out, device="cpu", init=out / WEIGHTS_NAME))


def test_window_errors_are_lqz_errors(tmp_path: Path) -> None:
    from lqz.train.device import WindowOptions, run_window

    with pytest.raises(TrainingDataError):
        run_window(WindowOptions(tmp_path / "none.npz", 0.1, tmp_path / "o", "cpu", tiny=True))
    with pytest.raises(LqzError):
        run_window(WindowOptions(tmp_path / "none.npz", 0.1, tmp_path / "o", device="nope"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_search_and_a_short_cuda_window(tmp_path: Path, noise_images) -> None:
    from lqz.leech import quantize
    from lqz.nn.weights import load_model
    from lqz.train.device import WEIGHTS_NAME, WindowOptions, run_window
    from lqz.train.quantizer import DeviceQuantizer

    latent = torch.randn(4, 24 * 6, 8, 8)
    cw, idx = DeviceQuantizer()(latent.cuda())
    groups = latent.reshape(4, 6, 24, 8, 8).movedim(2, -1)
    assert torch.equal(idx.cpu(), quantize(groups / groups.norm(dim=-1, keepdim=True)))
    src = noise_images(4, 64, 64)
    pack = tmp_path / "pack.npz"
    make_pack(src, pack, max_mib=0.5, crop=64, holdout=1)
    summary = run_window(WindowOptions(pack, 0.3, tmp_path / "w", device="cuda", tiny=True))
    assert summary["step"] > 0 and summary["amp"]
    load_model(tmp_path / "w" / WEIGHTS_NAME)


def test_trainer_cli_trains_tiny_on_a_pack_and_reports_errors_in_one_line(
    tmp_path: Path, noise_images, capsys
) -> None:
    from lqz.train.__main__ import main
    from lqz.train.entry import run_main
    from lqz.train.loop import TINY
    from lqz.train.state import RunState

    pack = tmp_path / "pack.npz"
    make_pack(noise_images(4, 40, 40), pack, max_mib=0.1, crop=32, holdout=1)
    common = ["--root", str(tmp_path / "runs"), "--run", "t", "--tiny", "--device", "cpu"]
    main(["--data", str(pack), *common, "--steps", "2", "--batch", "2", "--crop", "32"])
    saved = RunState(tmp_path / "runs" / "t").load()
    assert saved["step"] == 2 and saved["config"] == TINY.to_json()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: main(["--data", str(tmp_path / "missing"), *common]), "lqz.train")
    assert exit_.value.code == TrainingDataError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lqz.train: error: ")
    (tmp_path / "runs" / "t" / "state.pt").write_bytes(b"torn")
    (tmp_path / "runs" / "t" / "state.prev.pt").unlink(missing_ok=True)
    from lqz.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        main(["--data", str(pack), *common, "--steps", "3", "--crop", "32"])
