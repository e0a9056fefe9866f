"""Helpers shared by the flows: the model version a command names, text encoders and feature tables for store
cases, the real training texts, and the one writer of decoded images (augment and reconstruct)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prefect import task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.classify import ModelSpec
from diagnosis.features import EmbeddingCache, FeatureTable, TextEncoder, TextEncoderConfig, build_features
from diagnosis.features.lexical import LexicalReader
from diagnosis.generation.writer import write_decoded_image
from diagnosis.ingest.images import file_sha256
from diagnosis.settings import Settings

__all__ = ["features_task", "real_texts", "resolve_model", "save_decoded_image", "text_encoder"]


def text_encoder(
    config: TextEncoderConfig | None, home: str | Path, device: str = "cpu", amp: bool | None = None
) -> TextEncoder | None:
    """A text encoder for ``config`` caching in ``home``'s embedding cache (None without a text modality); ``amp``
    as in :class:`TextEncoder`."""
    if config is None:
        return None
    return TextEncoder(config, device=device, cache=EmbeddingCache(Settings(home=Path(home)).text_cache_file), amp=amp)


@task(cache_policy=NO_CACHE)
def features_task(cases: Sequence[db.CaseInput], spec: ModelSpec, encoder: TextEncoder | None,
                  lexical: LexicalReader | None = None) -> FeatureTable:
    """Read images and embed texts of a batch of store cases for ``spec`` (with the model's lexical reader, if any)."""
    return build_features(cases, spec.modalities.image, encoder, [c.label for c in cases], spec.label_names,
                          lexical=lexical)


def resolve_model(db_url: str, ref: str) -> db.ModelVersionView:
    """Look up ``latest`` or a model version id."""
    with db.session_scope(db_url) as session:
        return db.get_model_version(session, ref)


def save_decoded_image(pixels: np.ndarray, path: Path) -> db.ImageIn:
    """Write one decoded ``(1, *grid)`` image in [0, 1] (PNG for 2D, NIfTI for 3D) and describe it for the store."""
    path, fmt = write_decoded_image(pixels, path)
    return db.ImageIn(path=str(path), sha256=file_sha256(path), format=fmt, shape=tuple(pixels.shape[1:]), spacing=None)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def real_texts(db_url: str) -> tuple[list[str], list[str]]:
    """Real (non-synthetic) labelled symptom texts of the training split, with their labels."""
    texts, labels = [], []
    with db.session_scope(db_url) as session:
        for batch in db.iter_case_inputs(session, splits=["train"], labelled_only=True):
            for case in batch:
                if case.text:
                    texts.append(case.text), labels.append(case.label or "")
    return texts, labels
