"""Distortion metrics, computed as CompressAI's ``eval_model`` computes them.

CompressAI (``compressai/utils/eval_model/__main__.py``, ``compute_metrics``) scales both images
to 0..255, clamps and rounds them, then takes ``psnr-rgb`` = 20·log10(255) − 10·log10(MSE) with
the MSE over all pixels and all three channels at once, and ``ms-ssim-rgb`` =
``pytorch_msssim.ms_ssim(org, rec, data_range=255)`` with the library defaults (5 scales,
Gaussian window 11, σ 1.5, K = (0.01, 0.03)). Here both images are 8-bit RGB already, so the
same float tensors are formed straight from the uint8 pixels. (Equivalently: ``data_range=1`` on
RGB in [0, 1]; SSIM's constants scale with the range.)
"""

from __future__ import annotations

import math

import numpy as np

PSNR_CAP_DB = 100.0  # reported for an exact (lossless) reconstruction instead of +inf


def psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    """RGB PSNR in dB of two uint8 arrays of equal shape, MSE over all channels together."""
    if original.shape != decoded.shape:
        raise ValueError(f"shape mismatch: {original.shape} vs {decoded.shape}")
    diff = original.astype(np.float64) - decoded.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 20.0 * math.log10(255.0) - 10.0 * math.log10(mse))


def ms_ssim(original: np.ndarray, decoded: np.ndarray) -> float:
    """RGB MS-SSIM of two H x W x 3 uint8 arrays (pytorch-msssim, data_range=255)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    if original.shape != decoded.shape:
        raise ValueError(f"shape mismatch: {original.shape} vs {decoded.shape}")

    def tensor(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(pixels, dtype=np.float32)).permute(2, 0, 1)[None]

    with torch.no_grad():
        return float(_ms_ssim(tensor(original), tensor(decoded), data_range=255).item())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, −10·log10(1 − MS-SSIM), capped like PSNR for a perfect score."""
    if value >= 1.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, -10.0 * math.log10(1.0 - value))


def bits_per_pixel(num_bytes: int, num_pixels: int) -> float:
    """Rate of a whole file in bits per pixel."""
    return 8.0 * num_bytes / num_pixels
