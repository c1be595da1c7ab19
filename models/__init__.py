"""Shipped model weights (safetensors) and their model card."""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
