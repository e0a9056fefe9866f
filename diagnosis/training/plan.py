"""Deciding a model's shape from its training cases: label names, image dimensionality, modalities."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from diagnosis.classify.model import ModelSpec
from diagnosis.features.image import ImagePreprocessing
from diagnosis.features.text import TextEncoder
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.ingest.images import ImageError, load_image

__all__ = ["LabelledCase", "grid_size", "plan_model"]

GRID_LIMITS = {2: (16, 64), 3: (16, 32)}  # smallest and largest default grid side per dimensionality (CPU budget)

logger = logging.getLogger(__name__)


class LabelledCase:  # documentation-only protocol; the store's CaseInput satisfies it
    """A case with ``image_path``, ``text`` and ``label`` attributes."""

    image_path: str | None
    text: str | None
    label: str | None


def grid_size(sides: Sequence[int], spatial_dims: int) -> int:
    """The default grid side for images whose largest sides are ``sides``: their median, rounded up to a multiple of 8
    (the decoder halves the grid three times), within :data:`GRID_LIMITS`.

    A 28-px MedMNIST image gets 32 (no detail is thrown away), a 64-px one 64, a 512-px radiograph 64 in 2D.

    Examples:
        >>> grid_size([28, 28, 28], 2), grid_size([64], 2), grid_size([512], 2), grid_size([28], 3)
        (32, 64, 64, 32)
    """
    low, high = GRID_LIMITS.get(spatial_dims, (16, 32))
    median = int(np.median(sides)) if len(sides) else low
    return int(min(high, max(low, -(-median // 8) * 8)))


def plan_model(
    train: Sequence[LabelledCase],
    fusion: FusionConfig,
    text_encoder: TextEncoder | None,
    image_size: int | None = None,
    probe: int = 32,
    image_options: Mapping[str, Any] | None = None,
) -> ModelSpec:
    """Build the :class:`ModelSpec` that fits the training cases.

    Labels are the sorted distinct training labels. The image modality exists when training cases have images; its
    dimensionality is the most common among the first ``probe`` readable ones, and its grid (unless ``image_size``
    or ``image_options`` set one) suits their resolution: see :func:`grid_size`. ``image_options`` (a dataset's
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
    sides: dict[int, list[int]] = {}
    for case in (c for c in train if c.image_path):
        try:
            shape = load_image(case.image_path).array.shape[1:]  # type: ignore[arg-type]
        except ImageError:
            continue
        dims[len(shape)] += 1
        sides.setdefault(len(shape), []).append(max(shape))
        if sum(dims.values()) >= probe:
            break
    image = None
    if dims:
        spatial = dims.most_common(1)[0][0]
        options = {"size": image_size or grid_size(sides[spatial], spatial), **(image_options or {})}
        unknown = set(options) - {f.name for f in fields(ImagePreprocessing)} | ({"spatial_dims"} & set(options))
        if unknown:
            raise ValueError(f"unknown preprocessing option(s) {sorted(unknown)}; spatial_dims comes from the data")
        image = ImagePreprocessing(spatial_dims=spatial, **options)
    has_text = text_encoder is not None and any(c.text for c in train)
    vectors = {"text": text_encoder.dim} if has_text and text_encoder is not None else {}
    if image is None and not vectors:
        raise ValueError("training cases have neither readable images nor texts")
    spec = ModelSpec(labels, ModalitySpec(image=image, vectors=vectors), fusion, text_encoder.config if has_text and text_encoder else None)
    logger.info("model plan: %d diagnoses, modalities %s", len(labels), ", ".join(spec.modalities.names))
    return spec
