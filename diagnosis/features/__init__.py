"""Feature stage: MONAI image preprocessing and feature network, Hugging Face text embeddings, a hash cache, the
lexical reader of the texts, and the feature tables the models read (``build_features``)."""

from __future__ import annotations

from diagnosis.features.cache import EmbeddingCache
from diagnosis.features.image import (
    ImageFeatureNet,
    ImagePreprocessing,
    load_backbone_weights,
    preprocess_image,
    read_preprocessed,
)
from diagnosis.features.table import CaseLike, FeatureTable, build_features
from diagnosis.features.text import TextEncoder, TextEncoderConfig, default_text_model_path, model_digest

__all__ = [
    "CaseLike",
    "EmbeddingCache",
    "FeatureTable",
    "ImageFeatureNet",
    "ImagePreprocessing",
    "TextEncoder",
    "TextEncoderConfig",
    "build_features",
    "default_text_model_path",
    "model_digest",
    "load_backbone_weights",
    "preprocess_image",
    "read_preprocessed",
]
