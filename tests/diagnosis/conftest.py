"""Fixtures for the library tests: a toy two-class feature table with missing modalities."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from diagnosis.features import FeatureTable

ToyTable = Callable[[int, int], FeatureTable]


def _toy_table(n: int, seed: int) -> FeatureTable:
    """Two classes: bright vs dark square in the image; text vector shifted by class; some modalities missing."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.random((n, 1, 16, 16)).astype(np.float32) * 0.3
    images[labels == 1, :, 4:10, 4:10] += 0.7
    text = (rng.normal(size=(n, 8)) * 0.5 + labels[:, None] * 0.8).astype(np.float32)
    masks = {"image": rng.random(n) > 0.2, "text": rng.random(n) > 0.2}
    masks["image"] |= ~masks["text"]
    return FeatureTable(inputs={"image": images, "text": text}, masks=masks, labels=labels.astype(np.int64))


@pytest.fixture(scope="session")
def toy_table() -> ToyTable:
    """Factory ``toy_table(n, seed)``: 16×16 images and 8-d text vectors, labels 0/1, about 20 % of each missing."""
    return _toy_table
