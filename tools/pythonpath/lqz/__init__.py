"""``lqz`` without pip: put ``tools/pythonpath`` on PYTHONPATH (a machine with torch and no
network, e.g. the GPU window; see ``tools/gpu_window.sh``).

The installed package maps ``lqz`` to ``codec/``, ``lqz.cli`` to ``cli/`` and ``lqz.models`` to
``models/`` (pyproject.toml). This stand-in package searches ``codec/`` first and then the
repository root for ``lqz``'s submodules (only ``cli`` and ``models`` are packages there that
``codec`` lacks) and runs ``codec/__init__.py`` as its own body.
"""

from pathlib import Path

_ROOT = Path(__file__).resolve().parents[3]
__path__ = [str(_ROOT / "codec"), str(_ROOT)]
__file__ = str(_ROOT / "codec" / "__init__.py")
exec(compile(Path(__file__).read_text(), __file__, "exec"))
