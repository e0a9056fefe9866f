"""Device selection: CUDA when present, the same code path on the CPU otherwise; mixed-precision choices."""

from __future__ import annotations

import torch

__all__ = ["amp_dtype", "autocast_dtype", "resolve_device"]


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


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The reduced precision for ``torch.autocast`` on ``device``: bfloat16 where supported, else float16 (CUDA).

    bfloat16 keeps float32's exponent range, so the product of experts' precisions cannot overflow; float16 can,
    which is why :func:`amp_dtype` only picks it when asked to explicitly.
    """
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def amp_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """Autocast dtype to run with, or None for full float32.

    Args:
        device: Where the model runs.
        amp: True forces mixed precision (bfloat16, or float16 on CUDA devices without bfloat16), False disables it,
            None decides: on for CUDA devices with bfloat16 (Ampere and newer), off elsewhere (the CPU and older
            GPUs gain little or risk float16 overflow).
    """
    if amp is None:
        amp = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return autocast_dtype(device) if amp else None
