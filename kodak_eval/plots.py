"""Rate–distortion figures: every measured codec plus the published anchors (dashed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from .anchors import Anchor, plotted_anchors
from .metrics import ms_ssim_db
from .report import codec_order
from .store import Results, atomic_write_bytes

METRICS = {
    "psnr": ("PSNR (RGB) [dB]", "rd_psnr.png"),
    "ms_ssim": ("MS-SSIM (RGB) [dB]  = −10·log10(1 − MS-SSIM)", "rd_msssim.png"),
}


def _anchor_points(anchor: Anchor, metric: str) -> tuple[Sequence[float], Sequence[float]] | None:
    dists = anchor.psnr if metric == "psnr" else anchor.ms_ssim_db
    return None if dists is None else (anchor.bpp, dists)


def plot_rd(results: Results, metric: str, path: Path, title: str) -> None:
    """Draw bpp vs ``metric`` for every codec in ``results`` and every plotted anchor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ylabel, _ = METRICS[metric]
    fig, ax = plt.subplots(figsize=(10, 6))
    measured = codec_order(list(results["codecs"]))
    colors = plt.get_cmap("tab10").colors
    points: list[tuple[float, float]] = []
    for i, name in enumerate(measured):
        entries = sorted(results["codecs"][name], key=lambda e: e["bpp"])
        x = [e["bpp"] for e in entries]
        y = [e["psnr"] if metric == "psnr" else ms_ssim_db(e["ms_ssim"]) for e in entries]
        points += zip(x, y, strict=True)
        ax.plot(
            x,
            y,
            "-o",
            color=colors[i % len(colors)],
            lw=2.5 if name == "lqz" else 1.6,
            ms=4,
            label=f"{name} (measured)",
            zorder=3,
        )
    x_max = max((p[0] for p in points), default=2.0) * 1.1
    anchor_colors = plt.get_cmap("tab20b").colors[::2] + plt.get_cmap("tab20c").colors[::2]
    for j, anchor in enumerate(plotted_anchors()):
        pts = _anchor_points(anchor, metric)
        if pts is None:
            continue
        x, y = pts
        ax.plot(
            x,
            y,
            ls="none" if len(x) == 1 else "--",
            color=anchor_colors[(3 * j) % len(anchor_colors)],
            lw=1.1,
            ms=11 if len(x) == 1 else 3,
            marker="*" if len(x) == 1 else ".",
            label=f"{anchor.label} (published)",
            zorder=2,
        )
        points += [(a, b) for a, b in zip(x, y, strict=True) if a <= x_max]
    visible = [y for x, y in points if x <= x_max]
    if visible:
        pad = 0.03 * (max(visible) - min(visible) or 1.0)
        ax.set_ylim(min(visible) - pad, max(visible) + pad)
    ax.set_xlim(0, x_max)
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_plots(out: Path, results: Results, dataset: str) -> list[str]:
    """Both figures into ``out``; returns their file names."""
    names = []
    for metric, (_, filename) in METRICS.items():
        label = "PSNR" if metric == "psnr" else "MS-SSIM"
        plot_rd(results, metric, out / filename, f"{dataset}: rate vs {label}")
        names.append(filename)
    return names
