"""Text outputs: CSV tables, BD-rate matrices, the speed summary and the markdown report."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from .anchors import Anchor, plotted_anchors
from .bdrate import Curve, bd_matrix
from .codecs import DEFAULT_CODECS
from .data import kodak_checksums
from .metrics import ms_ssim_db
from .store import Results, atomic_write_text

BD_METHOD = (
    "BD-rate: bjontegaard package, method='pchip' (log10 rate as a PCHIP function of quality, "
    "integrated over the overlapping quality range of both curves); percent rate change of the "
    "row codec against the column codec at equal quality, negative = fewer bits. MS-SSIM "
    "BD-rates use MS-SSIM in dB, -10*log10(1-MS-SSIM)."
)
AVG_COLUMNS = ("codec", "setting", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "enc_s", "dec_s")
PER_IMAGE_COLUMNS = ("codec", "setting", "image", "width", "height", "bytes", "bpp", "psnr")
PER_IMAGE_COLUMNS += ("ms_ssim", "enc_s", "dec_s")


def codec_order(names: Sequence[str]) -> list[str]:
    """Known codecs in their usual order, then any others alphabetically."""
    known = [n for n in DEFAULT_CODECS if n in names]
    return known + sorted(n for n in names if n not in DEFAULT_CODECS)


def curves(results: Results, metric: str) -> dict[str, Curve]:
    """Measured (bpp, quality) curves; ``metric`` is ``"psnr"`` or ``"ms_ssim"`` (in dB)."""
    out = {}
    for name in codec_order(list(results["codecs"])):
        entries = results["codecs"][name]
        rates = [e["bpp"] for e in entries]
        if metric == "psnr":
            out[name] = (rates, [e["psnr"] for e in entries])
        else:
            out[name] = (rates, [ms_ssim_db(e["ms_ssim"]) for e in entries])
    return out


def anchor_curves(anchors: Sequence[Anchor], metric: str) -> dict[str, Curve]:
    """Published curves with at least two points for ``metric``."""
    out: dict[str, Curve] = {}
    for a in anchors:
        dists = a.psnr if metric == "psnr" else a.ms_ssim_db
        if dists is not None and len(a.bpp) >= 2:
            out[a.name] = (a.bpp, dists)
    return out


def is_full_kodak(images: Sequence[str]) -> bool:
    """Whether the image set is exactly the 24 Kodak images (so published figures compare)."""
    return sorted(images) == sorted(Path(n).stem for n in kodak_checksums())


def bd_tables(results: Results) -> dict[str, Any]:
    """Every BD-rate matrix: measured vs measured, and measured vs published (full Kodak only)."""
    anchors = plotted_anchors()
    tables: dict[str, Any] = {"method": BD_METHOD}
    for metric in ("psnr", "ms_ssim"):
        measured = curves(results, metric)
        tables[metric] = bd_matrix(measured, measured)
        if is_full_kodak(results["images"]):
            tables[f"{metric}_vs_published"] = bd_matrix(measured, anchor_curves(anchors, metric))
    return tables


def averages_rows(results: Results) -> list[dict[str, Any]]:
    rows = []
    for name in codec_order(list(results["codecs"])):
        for e in results["codecs"][name]:
            rows.append(
                {"codec": name, **{k: e[k] for k in AVG_COLUMNS[1:] if k in e}}
                | {"ms_ssim_db": ms_ssim_db(e["ms_ssim"])}
            )
    return rows


def _csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def per_image_rows(results: Results) -> list[dict[str, Any]]:
    return [
        {"codec": name, "setting": e["setting"], **row}
        for name in codec_order(list(results["codecs"]))
        for e in results["codecs"][name]
        for row in e["per_image"]
    ]


def speed_rows(results: Results) -> list[dict[str, Any]]:
    """Per codec: encode/decode milliseconds per image, mean and range over settings."""
    rows = []
    for name in codec_order(list(results["codecs"])):
        entries = results["codecs"][name]
        enc = [1000 * e["enc_s"] for e in entries]
        dec = [1000 * e["dec_s"] for e in entries]
        mpix = fmean(r["width"] * r["height"] for e in entries for r in e["per_image"]) / 1e6
        rows.append(
            {
                "codec": name,
                "settings": len(entries),
                "enc_ms": fmean(enc),
                "enc_ms_min": min(enc),
                "enc_ms_max": max(enc),
                "dec_ms": fmean(dec),
                "dec_ms_min": min(dec),
                "dec_ms_max": max(dec),
                "enc_mpix_s": mpix / (fmean(enc) / 1000) if fmean(enc) > 0 else float("inf"),
                "dec_mpix_s": mpix / (fmean(dec) / 1000) if fmean(dec) > 0 else float("inf"),
            }
        )
    return rows


def speed_table(results: Results) -> str:
    """Markdown table of :func:`speed_rows`."""
    lines = [
        "| codec | settings | encode ms/img (mean, min–max) | decode ms/img (mean, min–max) "
        "| encode MPix/s | decode MPix/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in speed_rows(results):
        lines.append(
            f"| {r['codec']} | {r['settings']} "
            f"| {r['enc_ms']:.1f} ({r['enc_ms_min']:.1f}–{r['enc_ms_max']:.1f}) "
            f"| {r['dec_ms']:.1f} ({r['dec_ms_min']:.1f}–{r['dec_ms_max']:.1f}) "
            f"| {r['enc_mpix_s']:.2f} | {r['dec_mpix_s']:.2f} |"
        )
    return "\n".join(lines)


def averages_table(results: Results) -> str:
    """Markdown table of the per-setting means over images."""
    lines = [
        "| codec | setting | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) | encode ms | decode ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in averages_rows(results):
        lines.append(
            f"| {r['codec']} | {r['setting']} | {r['bpp']:.3f} | {r['psnr']:.2f} "
            f"| {r['ms_ssim']:.4f} | {r['ms_ssim_db']:.2f} | {1000 * r['enc_s']:.1f} "
            f"| {1000 * r['dec_s']:.1f} |"
        )
    return "\n".join(lines)


def matrix_table(
    matrix: dict[str, dict[str, float | None]], labels: dict[str, str] | None = None
) -> str:
    """Markdown table of a BD-rate matrix (rows: test, columns: anchor), in percent."""
    if not matrix:
        return "(no curves)"
    columns = list(next(iter(matrix.values())))
    labels = labels or {}
    lines = [
        "| test \\ anchor | " + " | ".join(labels.get(c, c) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for test, row in matrix.items():
        cells = ["—" if row[c] is None else f"{row[c]:+.1f} %" for c in columns]
        lines.append(f"| {test} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: Results, bd: dict[str, Any], plots: Sequence[str]) -> str:
    """The report: command, averages, BD-rates, speed, environment, plots."""
    env = results.get("env", {})
    images = results["images"]
    kodak = is_full_kodak(images)
    set_note = "the 24 Kodak images" if kodak else f"{len(images)} images ({', '.join(images)})"
    lines = [
        "# Rate–distortion on Kodak" if kodak else "# Rate–distortion",
        "",
        f"Produced by `{env.get('command', 'python -m kodak_eval')}` on {set_note}.",
        "bpp counts every byte of the encoded file (headers included); PSNR and MS-SSIM are on "
        "8-bit RGB as CompressAI computes them; every figure is a plain mean over images.",
        "",
        *[f"![{Path(p).stem}]({Path(p).name})" for p in plots],
        "",
        "## Averages per setting",
        "",
        averages_table(results),
        "",
        "## BD-rate, PSNR",
        "",
        matrix_table(bd["psnr"]),
        "",
        "## BD-rate, MS-SSIM (dB)",
        "",
        matrix_table(bd["ms_ssim"]),
        "",
    ]
    if kodak:
        short = {a.name: a.label for a in plotted_anchors()}
        lines += [
            "## BD-rate against published curves (PSNR)",
            "",
            matrix_table(bd["psnr_vs_published"], short),
            "",
            "## BD-rate against published curves (MS-SSIM dB)",
            "",
            matrix_table(bd["ms_ssim_vs_published"], short),
            "",
        ]
    lines += [
        BD_METHOD + " '—': fewer than two usable points or no overlap.",
        "",
        "## Speed",
        "",
        f"Wall-clock seconds per image, {env.get('threads', '?')} thread(s) per codec, "
        f"on {env.get('cpu', '?')} ({env.get('cpu_count', '?')} logical CPUs).",
        "",
        speed_table(results),
        "",
        "## Environment",
        "",
        "```json",
        json.dumps(env, indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_reports(out: Path, results: Results, plots: Sequence[str]) -> dict[str, Any]:
    """Write results.csv, results_per_image.csv, bd_rate.json and report.md; return BD tables."""
    bd = bd_tables(results)
    atomic_write_text(out / "results.csv", _csv(AVG_COLUMNS, averages_rows(results)))
    atomic_write_text(
        out / "results_per_image.csv", _csv(PER_IMAGE_COLUMNS, per_image_rows(results))
    )
    atomic_write_text(out / "bd_rate.json", json.dumps(bd, indent=1) + "\n")
    atomic_write_text(out / "report.md", markdown(results, bd, plots))
    return bd
