"""Calibration of a trained model on validation rows: the stacking weights of each pattern of present modalities,
the overall temperature, the split-conformal threshold; and the per-class latent Gaussians of generation."""

from __future__ import annotations

import torch

from diagnosis.classify.calibration import fit_combination, fit_temperature
from diagnosis.classify.model import DiagnosisModel, default_pattern_weights, withheld
from diagnosis.classify.uncertainty import conformal_threshold
from diagnosis.features.table import FeatureTable

__all__ = ["MIN_STACKING_ROWS", "calibrate", "fit_class_latents"]

MIN_STACKING_ROWS = 100  # val rows per diagnosis below which the image stage's logits are not stacked: the stage's
# epochs were chosen on the same val rows, so a small val set overrates it (measured: a 546 / 78 / 156 PneumoniaMNIST
# subset, test AUC 0.971 with the head alone, 0.930 stacked, val preferring the stage; P1, 524 val rows: 0.9707 /
# 0.9766 head alone against 0.9848 / 0.9873 stacked, image / fused)


@torch.no_grad()
def _fit_pattern(model: DiagnosisModel, table: FeatureTable, device: torch.device,
                 pattern: tuple[str, ...] | None = None) -> torch.Tensor | None:
    """The ``(4,)`` weights of :class:`DiagnosisModel` for one pattern of present modalities, fitted on the labelled
    validation rows that have every modality of ``pattern``, each with the other modalities withheld (None: fewer
    than 10 such rows). ``pattern`` None: the rows as they are, head only (the overall temperature).

    Stacking (:func:`fit_combination`) starts from Bayes' rule with the readers the model has: the head at its own
    temperature (on a bounded grid) where the pattern has no image; with an image, the image stage's logits at
    theirs, plus, when other modalities are present too, what they add to the image as the latent sees it
    (``head(mu) - head(mu_image)``, at the head's temperature). Where the pattern has a text and the model a lexical
    reader, the reader's log-probabilities enter at weight 0. Validation then moves the weights; the penalty
    towards that start matters where validation cannot tell the sources apart (a small or saturated val set).
    Without an image stage, or with fewer than :data:`MIN_STACKING_ROWS` such rows per diagnosis, the image stage is
    left out (its epochs were chosen on these rows); the lexical reader was fitted with a fixed regularisation and
    is stacked whenever there are 10 rows.
    """
    model.eval()
    inputs, masks, targets = table.batch(slice(None), device)
    keep = targets >= 0
    if pattern is not None:
        keep = keep & torch.stack([masks[m] for m in pattern]).all(0)
        masks = withheld(masks, pattern)
    if int(keep.sum()) < 10:
        return None
    evidence = model.evidence(inputs, masks)
    head, labels = model.head(evidence.posterior.mu)[keep], targets[keep]
    inverse = 1.0 / fit_temperature(head, labels)
    staged = pattern is not None and "image" in pattern and bool(model.image_weight.abs().sum() > 0) \
        and int(keep.sum()) >= MIN_STACKING_ROWS * len(model.spec.label_names)  # fmt: skip
    lexical = pattern is not None and "text" in pattern and model.lexical is not None \
        and bool(evidence.lexical[keep].abs().sum() > 0)  # fmt: skip
    if not staged and not lexical:
        return torch.tensor([inverse, 0.0, 0.0, 0.0])
    stage = evidence.image[keep]
    others = len(pattern or ()) > 1
    initial = torch.tensor([inverse if others or not staged else 0.0,
                            1.0 / fit_temperature(stage, labels) if staged else 0.0,
                            -inverse if others and staged else 0.0, 0.0])  # fmt: skip
    free = torch.tensor([True, staged, others and staged, lexical])
    parts = torch.stack([head, stage, evidence.image_latent[keep], evidence.lexical[keep]], dim=1)  # (N, 4, C)
    return fit_combination(parts, labels, initial, free).cpu()


def _calibrate_patterns(model: DiagnosisModel, table: FeatureTable, device: torch.device) -> None:
    """``temperature`` on the rows as they are, then the weights of each pattern of present modalities (in place);
    a pattern with fewer than 10 usable rows reads the head at the overall temperature."""
    overall = _fit_pattern(model, table, device)
    model.temperature.fill_(1.0 if overall is None else 1.0 / float(overall[0]))
    names = model.spec.modalities.names
    model.pattern_weight.copy_(default_pattern_weights(len(names), model.temperature.expand(2 ** len(names))))
    for index in range(1, 2 ** len(names)):
        pattern = tuple(name for bit, name in enumerate(names) if index >> bit & 1)
        fitted = _fit_pattern(model, table, device, pattern) if set(pattern) <= set(table.masks) else None
        if fitted is not None:
            model.pattern_weight[index] = fitted.to(model.pattern_weight.device)


def calibrate(model: DiagnosisModel, val: FeatureTable, device: torch.device) -> None:
    """Fit the temperatures (overall and per pattern of present modalities) and the conformal threshold on validation
    rows (in place)."""
    _calibrate_patterns(model, val, device)
    model.conformal_threshold.fill_(_conformal(model, val, device))


@torch.no_grad()
def _posterior_rows(model: DiagnosisModel, table: FeatureTable, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances ``(N, D)``, labels ``(N,)`` and calibrated probabilities ``(N, C)`` of the
    usable, labelled rows."""
    mus, logvars, labels, probabilities = [], [], [], []
    for start in range(0, len(table), 256):
        inputs, masks, targets = table.batch(slice(start, start + 256), device)
        keep = (targets >= 0) & torch.stack(list(masks.values())).any(0)
        evidence = model.evidence(inputs, masks)
        q = evidence.posterior
        mus.append(q.mu[keep]), logvars.append(q.logvar[keep]), labels.append(targets[keep])
        probabilities.append(model.probabilities(evidence)[keep])
    return torch.cat(mus), torch.cat(logvars), torch.cat(labels), torch.cat(probabilities)


@torch.no_grad()
def _conformal(model: DiagnosisModel, table: FeatureTable, device: torch.device) -> float:
    """Split-conformal threshold from the validation rows at the spec's coverage."""
    _, _, labels, probabilities = _posterior_rows(model, table, device)
    return conformal_threshold(probabilities.cpu().numpy(), labels.cpu().numpy(), model.spec.conformal_coverage)


@torch.no_grad()
def fit_class_latents(model: DiagnosisModel, table: FeatureTable, device: torch.device) -> None:
    """Per-class diagonal Gaussian of the training latents (aggregate posterior) for class-conditional sampling."""
    mu, logvar, labels, _ = _posterior_rows(model, table, device)
    for c in range(len(model.spec.label_names)):
        rows = labels == c
        if int(rows.sum()) == 0:
            continue
        mean = mu[rows].mean(0)
        var = mu[rows].var(0, unbiased=False) + logvar[rows].exp().mean(0)  # spread of means + posterior width
        model.class_mean[c], model.class_logvar[c] = mean, var.clamp(min=1e-6).log()
