"""The lexical reader: scikit-learn's TF-IDF + LR written out, saved without pickle, and stacked with the model on val."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.classify import ModelSpec, load_model, predict, save_model
from diagnosis.features.lexical import LEXICAL_FILES, LEXICAL_INPUT, LexicalConfig, LexicalReader, fit_lexical_reader
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.features import FeatureTable
from diagnosis.training import TrainConfig, fit

CPU = torch.device("cpu")
WORDS = {0: ["wheezing", "breathless", "chest tight"], 1: ["itchy rash", "red spots", "blisters"],
         2: ["burning urine", "frequent urination", "bladder pain"]}  # fmt: skip
FILLER = ["i have had", "for a few days", "it got worse", "since yesterday", "and i feel tired", "please help"]


def _texts(n: int, seed: int, classes: int = 3) -> tuple[list[str], np.ndarray]:
    """Notes whose diagnosis shows only in a few words among filler."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    texts = [" ".join([*rng.choice(FILLER, 3), rng.choice(WORDS[int(y)]), *rng.choice(FILLER, 2)]) for y in labels]
    return texts, labels


def _sklearn_log_proba(texts: list[str], labels: np.ndarray, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
    model = LogisticRegression(C=LexicalConfig.c, max_iter=5000).fit(vectorizer.transform(texts), labels)
    return model.predict_log_proba(vectorizer.transform(queries)), model.classes_


@pytest.mark.parametrize("classes", [2, 3])
def test_reader_gives_scikit_learns_log_probabilities_and_survives_a_save(classes: int, tmp_path: Path) -> None:
    texts, labels = _texts(60, 0, classes)
    queries = [*_texts(20, 1, classes)[0], "unseen words only", "Wheezing, WHEEZING and a rash!"]
    reader = fit_lexical_reader(texts, labels.tolist(), 4, LexicalConfig())  # 4 diagnoses: one without any text
    assert reader is not None and reader.classes == 4
    expected, present = _sklearn_log_proba(texts, labels, queries)
    got = reader.log_probabilities(queries)
    assert got.shape == (len(queries), 4) and np.allclose(got[:, present], expected, atol=1e-4)
    assert np.exp(got[:, 3]).max() < 1e-9  # the diagnosis no training text had
    reader.save(tmp_path)
    assert all((tmp_path / name).is_file() for name in LEXICAL_FILES)
    assert "pickle" not in (tmp_path / LEXICAL_FILES[0]).read_text()[:20]
    again = LexicalReader.load(tmp_path)
    assert again is not None and np.allclose(again.log_probabilities(queries), got, atol=1e-5)
    evidence = reader.evidence([queries[0], None, "  ", queries[1]])
    assert np.allclose(evidence[[0, 3]], got[:2]) and not evidence[[1, 2]].any()
    assert LexicalReader.load(tmp_path / "nothing-here") is None


def test_reader_is_not_fitted_when_off_or_without_enough_texts() -> None:
    texts, labels = _texts(30, 0)
    assert fit_lexical_reader(texts, labels.tolist(), 3, LexicalConfig(enabled=False)) is None
    assert fit_lexical_reader(texts[:5], labels[:5].tolist(), 3) is None  # fewer than 8 distinct texts
    assert fit_lexical_reader(texts, [0] * len(texts), 3) is None  # one diagnosis
    assert fit_lexical_reader(["a", "!!", "b c", "?", "1", "2 3", "x", "- -"], [0, 1] * 4, 2) is None  # no word
    assert fit_lexical_reader([None, "", *texts], [0, 1, *labels.tolist()], 3) is not None  # empty texts skipped
    bounded = fit_lexical_reader(texts, labels.tolist(), 3, LexicalConfig(max_features=5, max_texts=12))
    assert bounded is not None and len(bounded.vocabulary) == 5 and bounded.weight.shape == (3, 5)


def _table(texts: list[str], labels: np.ndarray, reader: LexicalReader | None, seed: int) -> FeatureTable:
    """Text-only rows whose embedding hardly tells the diagnoses apart: the words do."""
    rng = np.random.default_rng(seed)
    vectors = (rng.normal(size=(len(texts), 8)) + 0.25 * np.eye(8)[labels]).astype(np.float32)
    inputs = {"text": vectors} | ({LEXICAL_INPUT: reader.evidence(texts)} if reader else {})
    return FeatureTable(inputs, {"text": np.ones(len(texts), bool)}, labels.astype(np.int64))


def test_the_stacked_reader_is_weighted_on_val_kept_in_the_checkpoint_and_required_at_diagnosis(tmp_path: Path) -> None:
    (train_texts, y_train), (val_texts, y_val), (test_texts, y_test) = _texts(240, 0), _texts(150, 1), _texts(150, 2)
    reader = fit_lexical_reader(train_texts, y_train.tolist(), 3)
    spec = ModelSpec(("asthma", "eczema", "cystitis"), ModalitySpec(vectors={"text": 8}),
                     FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=1))  # fmt: skip
    config = TrainConfig(epochs=4, batch_size=32)
    model = fit(spec, _table(train_texts, y_train, reader, 0), _table(val_texts, y_val, reader, 1), config, CPU,
                lexical=reader).model  # fmt: skip
    assert model.lexical is reader and float(model.pattern_weight[1, 3]) > 0.5  # val found the words worth reading
    assert float(model.pattern_weight[1, 1:3].abs().max()) == 0.0  # no image: no image sources
    test = _table(test_texts, y_test, reader, 2)
    stacked = predict(model, test, CPU, samples=1).probabilities
    alone = fit(spec, _table(train_texts, y_train, None, 0), _table(val_texts, y_val, None, 1), config, CPU).model
    head_only = predict(alone, _table(test_texts, y_test, None, 2), CPU, samples=1).probabilities
    assert (stacked.argmax(1) == y_test).mean() > max(0.9, (head_only.argmax(1) == y_test).mean() + 0.2)
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.lexical is not None
    assert np.allclose(predict(loaded, test, CPU, samples=1).probabilities, stacked, atol=1e-5)
    with pytest.raises(ValueError, match="lexical reader"):
        predict(loaded, _table(test_texts, y_test, None, 2), CPU)
