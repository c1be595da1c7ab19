"""The installed package: version, help, self-check, and no generic top-level names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import lqz
from lqz.cli.main import cli

ENV = {**os.environ, "PYTHONPATH": ""}  # only what is installed, not the checkout


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_version_in_process() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert lqz.__version__ in result.output
    assert "lqz" in result.output


def test_version_matches_distribution_metadata() -> None:
    from importlib.metadata import version

    assert lqz.__version__ == version("lqz")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_in_process(flag) -> None:
    result = CliRunner().invoke(cli, [flag])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "selfcheck" in result.output


def test_unknown_command_fails() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code != 0


def test_version_as_subprocess(tmp_path) -> None:
    result = _run([sys.executable, "-m", "lqz", "--version"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert lqz.__version__ in result.stdout


def test_console_script(tmp_path) -> None:
    script = Path(sys.executable).with_name("lqz")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    result = _run([str(script), "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "selfcheck" in result.stdout


def test_selfcheck_passes() -> None:
    result = CliRunner().invoke(cli, ["selfcheck", "--vectors", "200"])
    assert result.exit_code == 0, result.output
    assert "196,560" in result.output
    assert "200 random vectors match brute force" in result.output
    assert "self-check passed" in result.output


def test_no_generic_top_level_names(tmp_path) -> None:
    """From a folder outside the checkout only the ``lqz`` namespace resolves."""
    code = (
        "import importlib.util, json, sys;"
        "names = ['codec', 'cli', 'models', 'lqz', 'lqz.leech', 'lqz.cli', 'lqz.models'];"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))"
    )
    result = _run([sys.executable, "-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == {
        "codec": False,
        "cli": False,
        "models": False,
        "lqz": True,
        "lqz.leech": True,
        "lqz.cli": True,
        "lqz.models": True,
    }
