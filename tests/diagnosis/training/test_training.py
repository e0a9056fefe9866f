"""Training stage: a short fit learns, selection and calibration run, checkpoints round-trip."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.classify import ModelSpec, load_model, predict, save_model
from diagnosis.evaluation import classification_metrics
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.training import FitResult, TrainConfig, calibrate, fit
from diagnosis.training.image_stage import ImageStageConfig
from diagnosis.training.calibrate import MIN_STACKING_ROWS

ToyTable = Callable[[int, int], FeatureTable]  # the `toy_table` fixture (tests/diagnosis/conftest.py)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    modalities = ModalitySpec(image=ImagePreprocessing(spatial_dims=2, size=16), vectors={"text": 8})
    return ModelSpec(("negative", "positive"), modalities, FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=2))


@pytest.fixture(scope="module")
def trained(spec: ModelSpec, toy_table: ToyTable) -> FitResult:
    """A short fit on the toy tables (train seed 0, val seed 1)."""
    return fit(spec, toy_table(160, 0), toy_table(400, 1), TrainConfig(epochs=8, batch_size=32, lr=3e-3, patience=8,
                                                                   image_stage=ImageStageConfig(epochs=6)))


def test_fit_learns_and_roundtrips(spec: ModelSpec, trained: FitResult, tmp_path: Path, toy_table: ToyTable) -> None:
    test, result = toy_table(80, 2), trained
    assert 1 <= result.best_epoch <= 8 and len(result.history) == 8
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    preds = predict(result.model, test, torch.device("cpu"))
    metrics = classification_metrics(test.labels, preds.probabilities, spec.label_names)
    assert metrics["accuracy"] > 0.85 and metrics["macro_auc"] > 0.9
    assert np.allclose(preds.probabilities.sum(1), 1.0, atol=1e-5) and preds.latents.shape == (80, 4)
    assert preds.uncertainty.shape == (80,) and (preds.uncertainty >= 0).all() and (preds.uncertainty <= np.log(2) + 1e-6).all()
    assert 0 <= float(result.model.conformal_threshold) < 1 and preds.sets.any(1).all()
    assert preds.sets[np.arange(80), test.labels].mean() >= 0.8  # coverage 0.9 targeted on val
    # per-class latent Gaussians were fitted and separate the classes
    assert float((result.model.class_mean[0] - result.model.class_mean[1]).norm()) > 0.1
    assert preds.modalities[int(np.argmin(test.masks["text"]))] == ["image"]
    save_model(result.model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.spec == spec and float(loaded.temperature) == pytest.approx(float(result.model.temperature))
    again = predict(loaded, test, torch.device("cpu"))
    assert np.allclose(again.probabilities, preds.probabilities, atol=1e-6)


def test_each_pattern_of_present_modalities_gets_its_own_val_fitted_combination(
    trained: FitResult, tmp_path: Path, toy_table: ToyTable
) -> None:
    import torch.nn.functional as F
    from safetensors.torch import load_file, save_file

    from diagnosis.classify.calibration import fit_temperature

    model, val, test = trained.model, toy_table(400, 1), toy_table(80, 2)  # 400 val rows: enough to stack (MIN_STACKING_ROWS)
    assert model.spec.modalities.names == ("image", "text")  # bit 0: image, bit 1: text
    masks = {"image": torch.tensor([True, False, True]), "text": torch.tensor([False, True, True])}
    assert model.patterns(masks).tolist() == [1, 2, 3]
    members = trained.image_stage.classifier.members
    assert model.image_weight.shape == (2, 16 * len(members)) and float(model.image_weight.abs().sum()) > 0

    def parts(table: FeatureTable, pattern: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """The three logit sources of the rows with every modality of ``pattern``, the others withheld, by hand."""
        inputs, present, labels = table.batch(slice(None), torch.device("cpu"))
        rows = torch.stack([present[m] for m in pattern]).all(0)
        shown = {m: v if m in pattern else torch.zeros_like(v) for m, v in present.items()}
        with torch.no_grad():
            head = model.head(model.vae.posterior(inputs, shown).mu)
            alone = {"image": shown["image"], "text": torch.zeros_like(shown["text"])}
            latent = model.head(model.vae.posterior(inputs, alone).mu) if "image" in pattern else torch.zeros_like(head)
            stage = torch.stack([F.linear(m.backbone(inputs["image"]), m.head.weight, m.head.bias) / m.temperature
                                 for m in members]).mean(0) if "image" in pattern else torch.zeros_like(head)
        return torch.stack([head, stage, latent], 1)[rows], labels[rows]

    nll = lambda sources, w, labels: float(F.cross_entropy((sources * w[None, :, None]).sum(1), labels))  # noqa: E731
    for index, pattern in ((1, ("image",)), (2, ("text",)), (3, ("image", "text"))):
        sources, labels = parts(val, pattern)
        assert len(labels) >= MIN_STACKING_ROWS * 2
        weights = model.pattern_weight[index][:3]
        assert float(model.pattern_weight[index][3]) == 0.0  # no lexical reader: its source is never read
        head, stage = (1 / fit_temperature(sources[:, k], labels) for k in (0, 1))  # each source's own temperature
        start = {("text",): [head, 0.0, 0.0], ("image",): [0.0, stage, 0.0],  # Bayes' rule: the image stage, plus
                 ("image", "text"): [head, stage, -head]}[pattern]  # what the text adds to the image in the latent
        if "image" not in pattern:
            assert weights.tolist() == pytest.approx(start)
        assert nll(sources, weights, labels) <= nll(sources, torch.tensor(start), labels) + 1e-6  # val moved it, or not
        if pattern == ("image",):
            assert float(weights[2]) == 0.0  # the head at the image-alone latent is the head itself here
    assert bool(torch.isfinite(model.pattern_weight).all()) and float(model.pattern_weight[1, 1]) > 0
    image_only = FeatureTable(test.inputs, {"image": test.masks["image"], "text": np.zeros(len(test), bool)}, test.labels)
    rows = np.flatnonzero(test.masks["image"])
    sources, _ = parts(image_only, ("image",))
    expected = torch.softmax((sources * model.pattern_weight[1][None, :3, None]).sum(1), -1)
    assert np.allclose(predict(model, image_only, torch.device("cpu")).probabilities[rows], expected.numpy(), atol=1e-5)
    small = copy.deepcopy(model)
    calibrate(small, toy_table(60, 1), torch.device("cpu"))  # too few val rows to stack: the head alone
    assert float(small.pattern_weight[:, 1:].abs().max()) == 0.0 and float(small.pattern_weight[1, 0]) > 0
    save_model(model, tmp_path / "old")  # a checkpoint written with one temperature per pattern, no image evidence
    state = load_file(str(tmp_path / "old" / "model.safetensors"))
    for name in ("pattern_weight", "image_weight", "image_bias"):
        del state[name]
    state["pattern_temperature"] = torch.tensor([1.0, 2.0, 0.5, 1.5])
    save_file(state, str(tmp_path / "old" / "model.safetensors"))
    old = load_model(tmp_path / "old")
    assert torch.allclose(old.pattern_weight, torch.tensor([[1.0, 0, 0, 0], [0.5, 0, 0, 0], [2.0, 0, 0, 0], [1 / 1.5, 0, 0, 0]]))
    with torch.no_grad():
        inputs, present, _ = image_only.batch(rows, torch.device("cpu"))
        expected = torch.softmax(old.head(old.vae.posterior(inputs, present).mu) / 2.0, -1)
    assert np.allclose(predict(old, image_only, torch.device("cpu")).probabilities[rows], expected.numpy(), atol=1e-5)
    state = load_file(str(tmp_path / "old" / "model.safetensors"))  # written before the lexical reader: 3 sources
    del state["pattern_temperature"]
    state["pattern_weight"] = model.pattern_weight[:, :3].clone()
    save_file(state, str(tmp_path / "old" / "model.safetensors"))
    three = load_model(tmp_path / "old")
    assert three.lexical is None and torch.equal(three.pattern_weight[:, :3], model.pattern_weight[:, :3])
    assert float(three.pattern_weight[:, 3].abs().max()) == 0.0


def test_fit_without_labels_is_refused(spec: ModelSpec, toy_table: ToyTable) -> None:
    table = toy_table(10, 0)
    table.labels[:] = -1
    with pytest.raises(ValueError, match="no labelled case"):
        fit(spec, table, None, TrainConfig(epochs=1))


@pytest.mark.parametrize("weighted", [False, True])
def test_objective_cross_entropy_equals_the_indexed_form(spec: ModelSpec, toy_table: ToyTable, weighted: bool) -> None:
    """The sync-free masked mean gives F.cross_entropy over the labelled, valid rows; 0 when there are none."""
    import torch.nn.functional as F

    from diagnosis.classify import DiagnosisModel

    torch.manual_seed(0)
    model, table = DiagnosisModel(spec).eval(), toy_table(24, 3)
    table.labels[:5] = -1
    inputs, masks, targets = table.batch(slice(None), torch.device("cpu"))
    weights = torch.tensor([0.3, 1.7]) if weighted else None
    with torch.no_grad():
        out = model.objective(inputs, masks, targets, beta=1.0, class_weights=weights)
        assert {t.name for t in out.terms} == {"joint", "image", "text"}
        for term in out.terms:
            keep = term.valid & (targets >= 0)
            expected = F.cross_entropy(model.head(term.posterior.mu)[keep], targets[keep], weight=weights)
            assert float(out.metrics[f"ce_{term.name}"]) == pytest.approx(float(expected), rel=1e-5)
        targets[:] = -1
        unlabelled = model.objective(inputs, masks, targets, beta=1.0, class_weights=weights)
    assert all(float(unlabelled.metrics[f"ce_{t.name}"]) == 0.0 for t in unlabelled.terms)
    assert torch.isfinite(unlabelled.loss)
