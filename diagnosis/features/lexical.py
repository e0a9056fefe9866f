"""A bag-of-words reader of the texts: TF-IDF + logistic regression, a second source of text evidence.

The fine-tuned transformer reads what a sentence means; a lexical reader reads which words it uses. On short
clinical notes the two make different mistakes (P3: the transformer path 0.947–0.963 test accuracy over seeds,
TF-IDF + LR 0.934; their log-probabilities summed, 0.955–0.967), so the diagnosis stacks both (see
:class:`~diagnosis.classify.model.DiagnosisModel`). The reader is fitted on the labelled training texts with a fixed
regularisation (no choice on validation, where the stacking weight is fitted) and saved beside the model version:
the vocabulary as JSON, the IDF and the regression weights as safetensors. Its transform is the one of scikit-learn's
``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)``, written out so that a saved reader needs no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["LEXICAL_FILES", "LEXICAL_INPUT", "LexicalConfig", "LexicalReader", "fit_lexical_reader"]

LEXICAL_INPUT = "lexical"  # the feature table's key of the reader's (N, C) log-probabilities (not a modality)
LEXICAL_FILES = ("lexical.json", "lexical.safetensors")  # what a saved reader writes into a model folder
MIN_TEXTS = 8  # fewer distinct labelled training texts than this (or one class): no reader
FLOOR = -30.0  # log-probability of a diagnosis that no training text had


@dataclass(frozen=True)
class LexicalConfig:
    """Settings of the lexical reader (part of ``TrainConfig``, stored with the model version)."""

    enabled: bool = True  # fit a reader when the model has a text modality
    ngram_max: int = 2  # word n-grams 1..ngram_max
    c: float = 10.0  # inverse L2 regularisation of the logistic regression (P3: 0.934 test accuracy at 10, 30 and
    # 100; 0.922 at 1)
    max_features: int = 100_000  # most frequent n-grams kept (P3 has 7.9k): bounds the saved weights (C x V floats)
    max_texts: int = 50_000  # labelled training texts fitted at most (a seeded sample): bounds the fitting time

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


class LexicalReader:
    """Per-diagnosis log-probabilities of texts from their TF-IDF vector.

    Args:
        vocabulary: n-gram -> column.
        idf: ``(V,)`` inverse document frequencies.
        weight: ``(C, V)`` regression weights, one row per diagnosis of the model.
        bias: ``(C,)`` intercepts (:data:`FLOOR` for a diagnosis without training texts).
        ngram_max: Longest word n-gram.
    """

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                 ngram_max: int = 2) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self.vocabulary, self.ngram_max = vocabulary, ngram_max
        self.idf, self.weight, self.bias = (np.asarray(a, dtype=np.float64) for a in (idf, weight, bias))
        self._counts = CountVectorizer(ngram_range=(1, ngram_max), vocabulary=vocabulary)

    @property
    def classes(self) -> int:
        """Diagnoses the reader scores."""
        return len(self.bias)

    def log_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """``(N, C)`` float32 log-probabilities of each diagnosis given each text's words."""
        if not len(texts):
            return np.zeros((0, self.classes), dtype=np.float32)
        counts = self._counts.transform(list(texts)).astype(np.float64).tocsr()
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf
        tfidf = counts.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(1))).ravel()
        tfidf = tfidf.multiply(1.0 / np.maximum(norms, 1e-12)[:, None]).tocsr()
        logits = np.asarray(tfidf @ self.weight.T) + self.bias[None, :]
        logits -= logits.max(1, keepdims=True)
        return (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)

    def evidence(self, texts: Sequence[str | None]) -> np.ndarray:
        """``(N, C)`` log-probabilities of ``texts``, zeros for a missing or empty text (the feature table's
        :data:`LEXICAL_INPUT`)."""
        out = np.zeros((len(texts), self.classes), dtype=np.float32)
        rows = [i for i, t in enumerate(texts) if t and t.strip()]
        if rows:
            out[rows] = self.log_probabilities([texts[i] for i in rows])  # type: ignore[misc]
        return out

    def save(self, directory: str | Path) -> None:
        """Write :data:`LEXICAL_FILES` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / LEXICAL_FILES[0]).write_text(json.dumps({"ngram_max": self.ngram_max, "vocabulary": self.vocabulary}))
        tensors = {"idf": self.idf, "weight": self.weight, "bias": self.bias}
        save_file({k: torch.from_numpy(v.astype(np.float32)).contiguous() for k, v in tensors.items()},
                  str(directory / LEXICAL_FILES[1]))  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path) -> LexicalReader | None:
        """The reader saved in ``directory``; None when there is none."""
        directory = Path(directory)
        meta, arrays = directory / LEXICAL_FILES[0], directory / LEXICAL_FILES[1]
        if not meta.is_file() or not arrays.is_file():
            return None
        settings, tensors = json.loads(meta.read_text()), load_file(str(arrays))
        return cls(settings["vocabulary"], tensors["idf"].numpy(), tensors["weight"].numpy(), tensors["bias"].numpy(),
                   int(settings["ngram_max"]))  # fmt: skip


def fit_lexical_reader(texts: Sequence[str | None], labels: Sequence[int], n_classes: int,
                       config: LexicalConfig = LexicalConfig()) -> LexicalReader | None:
    """Fit the reader on the labelled training texts (labels ``-1`` and empty texts ignored).

    Returns:
        The reader; None when it is off, or with fewer than :data:`MIN_TEXTS` distinct labelled texts or one class.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if not config.enabled:
        return None
    kept = [(t, int(y)) for t, y in zip(texts, labels, strict=True) if y >= 0 and t and t.strip()]
    if len(kept) > config.max_texts:
        kept = [kept[i] for i in np.sort(np.random.default_rng(0).choice(len(kept), config.max_texts, replace=False))]
    if len({t for t, _ in kept}) < MIN_TEXTS or len({y for _, y in kept}) < 2:
        return None
    vectorizer = TfidfVectorizer(ngram_range=(1, config.ngram_max), sublinear_tf=True, max_features=config.max_features)
    try:
        x = vectorizer.fit_transform([t for t, _ in kept])
    except ValueError:  # no word survives tokenisation (e.g. texts of digits and punctuation only)
        return None
    y = np.array([y for _, y in kept])
    regression = LogisticRegression(C=config.c, max_iter=5000).fit(x, y)
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, FLOOR)
    coef, intercept = regression.coef_, regression.intercept_
    if len(regression.classes_) == 2:  # scikit-learn's binary form: one row, the second class's log-odds
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    weight[regression.classes_], bias[regression.classes_] = coef, intercept
    vocabulary = {term: int(column) for term, column in vectorizer.vocabulary_.items()}
    return LexicalReader(vocabulary, vectorizer.idf_, weight, bias, config.ngram_max)
