"""Per-case decoded views: the reconstruction from the fused latent and the cross-modal translations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diagnosis.classify.model import DiagnosisModel
from diagnosis.features.table import FeatureTable

__all__ = ["DecodedCase", "decode_case"]


@dataclass(frozen=True)
class DecodedCase:
    """Decoded views of one case (``None`` where the case lacks the modality that view starts from).

    Attributes:
        reconstruction: ``(1, *grid)`` image decoded from the fused posterior mean, pixels in [0, 1].
        image_from_text: ``(1, *grid)`` image decoded from the text-only posterior (text -> image).
        text_from_image: ``(F,)`` text embedding decoded from the image-only posterior (image -> text), to match
            against real symptom texts.
    """

    reconstruction: np.ndarray | None
    image_from_text: np.ndarray | None
    text_from_image: np.ndarray | None


@torch.inference_mode()
def decode_case(model: DiagnosisModel, table: FeatureTable, row: int, device: torch.device) -> DecodedCase:
    """Decode the fused and single-modality latents of one row of ``table``."""
    model.eval().to(device)
    inputs, masks, _ = table.batch(slice(row, row + 1), device)
    has = {m: bool(v[0]) for m, v in masks.items()}
    vae = model.vae

    def decode_from(keep: set[str], target: str) -> np.ndarray | None:
        if target not in vae.modalities or not any(has.get(m) for m in keep):
            return None
        subset = {m: v & (m in keep) for m, v in masks.items()}
        return vae.decode(vae.posterior(inputs, subset).mu)[target][0].float().cpu().numpy()

    present = {m for m, ok in has.items() if ok}
    return DecodedCase(
        reconstruction=decode_from(present, "image") if has.get("image") else None,
        image_from_text=decode_from({"text"}, "image") if has.get("text") else None,
        text_from_image=decode_from({"image"}, "text") if has.get("image") else None,
    )
