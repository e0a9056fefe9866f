"""Deciding a model's shape from its training cases: label names, image dimensionality, modalities."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from diagnosis.classify.model import ModelSpec
from diagnosis.features.image import ImagePreprocessing
from diagnosis.features.text import TextEncoder
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.ingest.images import ImageError, load_image

__all__ = ["LabelledCase", "plan_model"]

logger = logging.getLogger(__name__)


class LabelledCase:  # documentation-only protocol; the store's CaseInput satisfies it
    """A case with ``image_path``, ``text`` and ``label`` attributes."""

    image_path: str | None
    text: str | None
    label: str | None


def plan_model(
    train: Sequence[LabelledCase],
    fusion: FusionConfig,
    text_encoder: TextEncoder | None,
    image_size: int = 32,
    probe: int = 32,
    image_options: Mapping[str, Any] | None = None,
) -> ModelSpec:
    """Build the :class:`ModelSpec` that fits the training cases.

    Labels are the sorted distinct training labels. The image modality exists when training cases have images; its
    dimensionality is the most common among the first ``probe`` readable ones; ``image_options`` (a dataset's
    preprocessing: size, intensity scaling or CT window, orientation, target spacing) override the other
    :class:`ImagePreprocessing` defaults. The text modality exists when training cases have texts and a text encoder
    is given.

    Raises:
        ValueError: Fewer than two labels, no usable modality, or unknown preprocessing options.
    """
    labels = tuple(sorted({c.label for c in train if c.label}))
    if len(labels) < 2:
        raise ValueError(f"training needs at least two diagnoses among split=train cases, found {list(labels)}")
    dims: Counter[int] = Counter()
    for case in (c for c in train if c.image_path):
        try:
            dims[load_image(case.image_path).array.ndim - 1] += 1  # type: ignore[arg-type]
        except ImageError:
            continue
        if sum(dims.values()) >= probe:
            break
    image = None
    if dims:
        options = {"size": image_size, **(image_options or {})}
        unknown = set(options) - {f.name for f in fields(ImagePreprocessing)} | ({"spatial_dims"} & set(options))
        if unknown:
            raise ValueError(f"unknown preprocessing option(s) {sorted(unknown)}; spatial_dims comes from the data")
        image = ImagePreprocessing(spatial_dims=dims.most_common(1)[0][0], **options)
    has_text = text_encoder is not None and any(c.text for c in train)
    vectors = {"text": text_encoder.dim} if has_text and text_encoder is not None else {}
    if image is None and not vectors:
        raise ValueError("training cases have neither readable images nor texts")
    spec = ModelSpec(labels, ModalitySpec(image=image, vectors=vectors), fusion, text_encoder.config if has_text and text_encoder else None)
    logger.info("model plan: %d diagnoses, modalities %s", len(labels), ", ".join(spec.modalities.names))
    return spec
