"""results.json: loading, merging new entries, and atomic writes of every output file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from . import EvalError

Results = dict[str, Any]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def new_results(images: list[str]) -> Results:
    return {"images": list(images), "codecs": {}, "env": {}}


def load_results(path: Path) -> Results | None:
    """The results held at ``path``, or ``None`` if there is no file."""
    if not path.exists():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalError(f"cannot read {path}: {exc}; fix or delete it, or use --force") from exc
    if not isinstance(results, dict) or not isinstance(results.get("codecs"), dict):
        raise EvalError(f"{path} is not a kodak_eval results file; delete it or use --force")
    results.setdefault("images", [])
    results.setdefault("env", {})
    return results


def merge_entry(results: Results, codec: str, entry: dict[str, Any]) -> None:
    """Put ``entry`` under ``codec``, replacing an entry of the same setting; keep them sorted."""
    entries = [e for e in results["codecs"].get(codec, []) if e["setting"] != entry["setting"]]
    entries.append(entry)
    entries.sort(key=lambda e: e["setting"])
    results["codecs"][codec] = entries


def save_results(path: Path, results: Results) -> None:
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")
