"""Multimodal medical diagnosis library.

The stages are sub-packages, in pipeline order:

- :mod:`diagnosis.ingest` — read manifests and medical images (MONAI ``LoadImage``), validate them.
- :mod:`diagnosis.features` — image preprocessing + MONAI feature networks, Hugging Face text embeddings.
- :mod:`diagnosis.fusion` — multimodal VAEs fusing per-modality experts into one latent.
- :mod:`diagnosis.classify` — the diagnosis classifier on the latent.
- :mod:`diagnosis.training` — datasets, the trainer and checkpoints.
- :mod:`diagnosis.evaluation` — metrics.

The library imports neither Prefect, Streamlit nor SQLAlchemy: orchestration lives in ``flows/``, storage in ``db/``
and the user interface in ``dashboard/``.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
