"""Generation stage: class-conditional samples from the fusion model's latent space, cross-modal look-ups."""

from __future__ import annotations

from diagnosis.generation.sampling import GeneratedSamples, cross_modal_coherence, nearest_rows, sample_class
from diagnosis.generation.views import CaseViews, case_views

__all__ = ["CaseViews", "GeneratedSamples", "case_views", "cross_modal_coherence", "nearest_rows", "sample_class"]
