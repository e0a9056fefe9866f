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
    model_digest,
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
    assert np.allclose(again.encode(texts[:2]), vectors[:2]) and not again.loaded


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


def test_cache_keys_follow_the_weights_not_only_the_config(tiny_text_model: Path, tmp_path: Path) -> None:
    """A fine-tuned copy of a model has the base's config.json; its texts must not hit the base's cached vectors."""
    import shutil

    from safetensors.torch import load_file, save_file

    tuned = tmp_path / "tuned"
    shutil.copytree(tiny_text_model, tuned)
    weights = load_file(tuned / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name] = weights[name] + 0.5 * torch.randn(weights[name].shape, generator=torch.Generator().manual_seed(0))
    save_file(weights, tuned / "model.safetensors", metadata={"format": "pt"})
    assert (tuned / "config.json").read_bytes() == (tiny_text_model / "config.json").read_bytes()

    cache, texts = EmbeddingCache(tmp_path / "cache.sqlite"), ["I have a cough and fever."]
    base = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model)), cache=cache)
    shutil.copytree(tiny_text_model, tmp_path / "copy")
    copy = TextEncoder(TextEncoderConfig(model_path=str(tmp_path / "copy")), cache=cache)
    other = TextEncoder(TextEncoderConfig(model_path=str(tuned)), cache=cache)
    assert copy.fingerprint == base.fingerprint != other.fingerprint  # the same files anywhere share the cache
    assert model_digest(tiny_text_model) == model_digest(tmp_path / "copy") != model_digest(tuned)
    cached = base.encode(texts)
    assert not np.allclose(other.encode(texts), cached) and other.loaded  # computed, not looked up


def test_reduced_precision_embeddings_are_close_and_cached_apart(tiny_text_model: Path, tmp_path: Path) -> None:
    """bfloat16 autocast (the CUDA default) gives nearly the float32 vectors, under cache keys of its own."""
    cache, config = EmbeddingCache(tmp_path / "cache.sqlite"), TextEncoderConfig(model_path=str(tiny_text_model))
    texts = ["I have a cough and fever.", "No chest pain, but my ankles are swollen and I feel tired all day."]
    full = TextEncoder(config, cache=cache)
    half = TextEncoder(config, cache=cache, amp=True)
    assert full.dtype is None and half.dtype == torch.bfloat16 and half.fingerprint != full.fingerprint
    exact, reduced = full.encode(texts), half.encode(texts)
    assert half.runtime == "torch" and half.loaded  # not served from the float32 entries
    cosine = (exact * reduced).sum(1)  # both L2-normalised
    assert np.all(cosine > 0.99) and not np.array_equal(exact, reduced)


def test_onnx_int8_embeddings_are_close_cached_apart_and_exported_once(tiny_text_model: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU the default runtime is ONNX Runtime with int8 weights: nearly the float32 vectors, under keys of
    their own, the export written once beside the cache and reused by the next encoder."""
    cache, config = EmbeddingCache(tmp_path / "cache.sqlite"), TextEncoderConfig(model_path=str(tiny_text_model))
    texts = ["I have a cough and fever.", "No chest pain, but my ankles are swollen and I feel tired all day."]
    monkeypatch.delenv("DIAGNOSIS_TEXT_RUNTIME", raising=False)
    fast, plain = TextEncoder(config, cache=cache), TextEncoder(config, cache=cache, runtime="torch")
    assert fast.runtime == "onnx-int8" and plain.runtime == "torch" and fast.fingerprint != plain.fingerprint
    exact, quantized = plain.encode(texts), fast.encode(texts)
    assert fast.loaded and fast._model is None  # computed by ONNX Runtime, not served from the float32 entries
    assert np.all((exact * quantized).sum(1) > 0.99) and not np.array_equal(exact, quantized)
    exported = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(exported) == 1 and not list((tmp_path / "onnx").glob(".export-*"))  # no half-written leftovers
    stamp = exported[0].stat().st_mtime_ns
    again = TextEncoder(config, cache=EmbeddingCache(tmp_path / "other.sqlite"), export_dir=tmp_path / "onnx")
    assert np.allclose(again.encode(texts), quantized, atol=1e-6) and exported[0].stat().st_mtime_ns == stamp
    monkeypatch.setenv("DIAGNOSIS_TEXT_RUNTIME", "torch")
    assert TextEncoder(config).runtime == "torch"
    monkeypatch.setenv("DIAGNOSIS_TEXT_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="unknown text runtime"):
        TextEncoder(config)


def test_a_model_onnx_cannot_export_is_embedded_in_pytorch(tiny_text_model: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """auto falls back to float32 PyTorch (under its keys) when the export fails; an explicit onnx-int8 says why."""
    import diagnosis.features.text as text_module

    def broken(*_args: object) -> Path:
        raise RuntimeError("unsupported operator")

    monkeypatch.delenv("DIAGNOSIS_TEXT_RUNTIME", raising=False)
    monkeypatch.setattr(text_module, "quantized_onnx", broken)
    cache, config = EmbeddingCache(tmp_path / "cache.sqlite"), TextEncoderConfig(model_path=str(tiny_text_model))
    texts = ["I have a cough and fever.", "No chest pain."]
    auto = TextEncoder(config, cache=cache)
    vectors = auto.encode(texts)
    plain = TextEncoder(config, cache=cache, runtime="torch")
    assert auto.runtime == "torch" and auto.fingerprint == plain.fingerprint
    assert np.array_equal(plain.encode(texts), vectors) and not plain.loaded  # stored under the float32 keys
    with pytest.raises(RuntimeError, match="unsupported operator"):
        TextEncoder(config, runtime="onnx-int8").encode(texts)


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
