"""Non-VAE baselines used in the benchmark report: fusion rules, missing modalities, a short fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diagnosis.benchmarks import BASELINES, Baseline, fit_baseline, predict_baseline
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.fusion import ModalitySpec

SPEC = ModalitySpec(image=ImagePreprocessing(spatial_dims=2, size=16), vectors={"text": 8})


def _table(n: int, seed: int) -> FeatureTable:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = (rng.random((n, 1, 16, 16)) * 0.3).astype(np.float32)
    images[labels == 1, :, 4:10, 4:10] += 0.7
    text = (rng.normal(size=(n, 8)) * 0.5 + labels[:, None]).astype(np.float32)
    masks = {"image": rng.random(n) > 0.2, "text": rng.random(n) > 0.2}
    masks["image"] |= ~masks["text"]
    return FeatureTable(inputs={"image": images, "text": text}, masks=masks, labels=labels.astype(np.int64))


def test_late_fusion_of_one_present_modality_is_that_modality_alone() -> None:
    model = Baseline("late", SPEC, 2).eval()
    inputs = {"image": torch.rand(3, 1, 16, 16), "text": torch.randn(3, 8)}
    masks = {"image": torch.tensor([True, True, False]), "text": torch.tensor([True, False, True])}
    with torch.no_grad():
        features = model.embed(inputs)
        logits, _ = model.logits(features, masks)
        image_only = torch.softmax(model.heads["image"](features["image"]), -1)
        text_only = torch.softmax(model.heads["text"](features["text"]), -1)
    assert torch.allclose(logits.exp()[1], image_only[1], atol=1e-6) and torch.allclose(logits.exp()[2], text_only[2], atol=1e-6)
    assert torch.allclose(logits.exp()[0], (image_only[0] + text_only[0]) / 2, atol=1e-6)


@pytest.mark.parametrize("kind", BASELINES)
def test_baselines_train_and_predict(kind: str) -> None:
    train, val = _table(160, 0), _table(60, 1)
    loss = Baseline(kind, SPEC, 2).loss(*train.batch(slice(0, 32), torch.device("cpu")))
    loss.backward()
    model = fit_baseline(kind, SPEC, 2, train, val, epochs=10, batch_size=32, patience=10)  # the wider image net needs more steps
    probs = predict_baseline(model, val)
    assert probs.shape == (60, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == val.labels).mean() > 0.8


def test_unknown_baseline_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown baseline"):
        Baseline("nope", SPEC, 2)
