"""Feature stage: text embeddings with a hash cache, image preprocessing to the model grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.features import (
    EmbeddingCache,
    ImageFeatureNet,
    ImagePreprocessing,
    TextEncoder,
    TextEncoderConfig,
    preprocess_image,
)
from diagnosis.ingest import ImageError, LoadedImage


def test_text_encoder_mean_pools_and_caches(tiny_text_model: Path, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    encoder = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model)), cache=cache)
    texts = ["I have a cough and fever.", "No chest pain.", "I have a cough and fever."]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 32) and encoder.dim == 32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    # a fresh encoder on the same cache computes nothing: its model is never loaded
    again = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model)), cache=cache)
    assert np.allclose(again.encode(texts[:2]), vectors[:2]) and again._model is None


def test_cache_opens_while_another_connection_holds_the_new_file(tmp_path: Path, sqlite_write_held) -> None:  # noqa: ANN001
    """Switching a new file to WAL while another connection writes fails at once in SQLite; the cache waits instead."""
    import sqlite3

    path = tmp_path / "cache.sqlite"
    with sqlite_write_held(path):
        cache = EmbeddingCache(path)
    cache.put_many({"k": np.ones(3, np.float32)})
    assert np.array_equal(cache.get_many(["k"])["k"], np.ones(3, np.float32))
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_missing_text_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        TextEncoder(TextEncoderConfig(model_path=str(tmp_path)))


def test_preprocess_brings_images_to_the_grid() -> None:
    rng = np.random.default_rng(0)
    volume = LoadedImage(rng.random((1, 20, 24, 18)).astype(np.float32) * 1000, None)
    out3d = preprocess_image(volume, ImagePreprocessing(spatial_dims=3, size=16))
    assert out3d.shape == (1, 16, 16, 16) and out3d.min() >= 0 and out3d.max() <= 1
    assert preprocess_image(volume, ImagePreprocessing(spatial_dims=2, size=16)).shape == (1, 16, 16)  # middle slice
    flat = LoadedImage(rng.random((1, 30, 30)).astype(np.float32), None)
    with pytest.raises(ImageError, match="2D image cannot feed a 3D model"):
        preprocess_image(flat, ImagePreprocessing(spatial_dims=3, size=16))


@pytest.mark.parametrize("dims", [2, 3])
def test_image_feature_net_shapes(dims: int) -> None:
    net = ImageFeatureNet(ImagePreprocessing(spatial_dims=dims, size=16), feature_dim=24)
    assert net(torch.rand(2, 1, *(16,) * dims)).shape == (2, 24)
