"""Synthetic multimodal chest dataset: radiographs / CT-like volumes, symptom texts and labels as real files.

Examples:
    >>> import tempfile
    >>> from diagnosis.synthetic import DIAGNOSES, SyntheticConfig, generate_dataset
    >>> manifest = generate_dataset(tempfile.mkdtemp(), SyntheticConfig(cases=12, image_size=32))
    >>> len(DIAGNOSES)
    6
"""

from __future__ import annotations

from diagnosis.synthetic.classes import DIAGNOSES, RARE_DIAGNOSIS
from diagnosis.synthetic.dataset import MANIFEST_COLUMNS, SPLITS, SyntheticConfig, generate_dataset
from diagnosis.synthetic.images import render_image, write_image
from diagnosis.synthetic.texts import generate_text

__all__ = [
    "DIAGNOSES",
    "MANIFEST_COLUMNS",
    "RARE_DIAGNOSIS",
    "SPLITS",
    "SyntheticConfig",
    "generate_dataset",
    "generate_text",
    "render_image",
    "write_image",
]
