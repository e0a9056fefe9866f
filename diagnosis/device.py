"""Device selection: CUDA when present, the same code path on the CPU otherwise."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` into a device.

    Args:
        name: ``auto`` picks CUDA when available, else the CPU.

    Returns:
        The torch device.

    Raises:
        ValueError: ``cuda`` was asked for but no CUDA device is visible.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA device is visible; use --device auto or cpu")
    return device
