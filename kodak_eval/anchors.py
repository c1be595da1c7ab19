"""Published Kodak rate–distortion figures shipped in ``kodak_eval/data/kodak_published.json``.

Copied from the project's ``shared/anchors/kodak_published.json``; its ``source`` field is the
provenance note (CompressAI's ``results/image/kodak/*.json`` and the papers named per entry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from .metrics import ms_ssim_db

# Published curves of codecs this tool measures itself (old Pillow builds): not drawn.
REMEASURED = frozenset({"jpeg", "webp"})

SHORT_LABELS = {
    "vtm": "VTM (H.266 intra)",
    "bpg_444_x265_ycbcr": "BPG 4:4:4 (x265)",
    "av1": "AV1 intra",
    "hm": "HM (H.265)",
    "jpeg2000": "JPEG 2000",
    "webp": "WebP (Pillow 7)",
    "jpeg": "JPEG (Pillow 7)",
    "compressai-bmshj2018-factorized_mse_cuda": "Ballé 2017 factorized",
    "compressai-bmshj2018-hyperprior_mse_cuda": "Ballé 2018 hyperprior",
    "compressai-mbt2018-mean_mse_cuda": "Minnen 2018 mean-scale",
    "compressai-mbt2018_mse_cuda": "Minnen 2018 joint AR",
    "compressai-cheng2020-anchor_mse_cuda": "Cheng 2020 anchor",
    "paper-elic2022_mse": "ELIC 2022",
    "paper-minnen2020-cc10_mse": "Minnen 2020 ch.-conditional",
    "paper-l24sq-vit": "Seed paper Λ24-SQ ViT",
    "paper-bsq-vit": "Seed paper BSQ-ViT",
}


@dataclass(frozen=True)
class Anchor:
    """One published curve (or single point): rates in bpp, PSNR in dB, MS-SSIM linear."""

    name: str
    description: str
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    ms_ssim: tuple[float, ...] | None

    @property
    def label(self) -> str:
        """A short name for legends and table headers."""
        return SHORT_LABELS.get(self.name, self.name)

    @property
    def ms_ssim_db(self) -> tuple[float, ...] | None:
        return None if self.ms_ssim is None else tuple(ms_ssim_db(v) for v in self.ms_ssim)


def load_published() -> tuple[str, list[Anchor]]:
    """The source note and every published anchor, in file order."""
    text = resources.files("kodak_eval").joinpath("data/kodak_published.json").read_text()
    raw = json.loads(text)
    anchors = [
        Anchor(
            name=name,
            description=entry.get("description", name),
            bpp=tuple(entry["bpp"]),
            psnr=tuple(entry["psnr_rgb"]),
            ms_ssim=tuple(entry["ms_ssim_rgb"]) if "ms_ssim_rgb" in entry else None,
        )
        for name, entry in raw["codecs"].items()
    ]
    return raw.get("source", ""), anchors


def plotted_anchors() -> list[Anchor]:
    """The published anchors drawn on the plots (all but those re-measured here)."""
    return [a for a in load_published()[1] if a.name not in REMEASURED]
