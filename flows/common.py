"""Helpers shared by the flows: building text encoders and feature tables for store cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.classify import ModelSpec
from diagnosis.features import EmbeddingCache, TextEncoder, TextEncoderConfig
from diagnosis.features.lexical import LexicalReader
from diagnosis.training import FeatureTable, build_features

__all__ = ["features_task", "text_encoder"]


def text_encoder(
    config: TextEncoderConfig | None, cache_dir: Path, device: str = "cpu", amp: bool | None = None
) -> TextEncoder | None:
    """A cached text encoder for ``config`` (None without a text modality); ``amp`` as in :class:`TextEncoder`."""
    if config is None:
        return None
    return TextEncoder(config, device=device, cache=EmbeddingCache(cache_dir / "text_embeddings.sqlite"), amp=amp)


@task(cache_policy=NO_CACHE)
def features_task(cases: Sequence[db.CaseInput], spec: ModelSpec, encoder: TextEncoder | None,
                  lexical: LexicalReader | None = None) -> FeatureTable:
    """Read images and embed texts of a batch of store cases for ``spec`` (with the model's lexical reader, if any)."""
    return build_features(cases, spec.modalities.image, encoder, [c.label for c in cases], spec.label_names,
                          lexical=lexical)
