"""Generation stage: class-conditional samples from the fusion model's latent space, cross-modal look-ups."""

from __future__ import annotations

from diagnosis.generation.decoded import DecodedCase, decode_case
from diagnosis.generation.sampling import GeneratedSamples, cross_modal_coherence, nearest_rows, sample_class
from diagnosis.generation.writer import write_decoded_image

__all__ = ["DecodedCase", "GeneratedSamples", "cross_modal_coherence", "decode_case", "nearest_rows", "sample_class",
           "write_decoded_image"]
