"""Training the graph classifier on top of a trained fusion model (``--classifier graph``).

The fusion model is fixed. Its latent bank's cases are the graph's nodes (kNN edges in the latent, made
symmetric); the GCN trains on the full training graph with dropout, and each epoch is scored on the validation
cases attached inductively, exactly as diagnosis attaches a new case. The epoch with the lowest validation loss is
kept, then a temperature and the split-conformal threshold are fitted on validation.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from diagnosis.classify.bank import LatentBank, bank_rows, patient_column
from diagnosis.classify.calibration import fit_temperature
from diagnosis.classify.graph import (GraphClassifier, GraphConfig, knn, log_probabilities, normalized_adjacency,
                                     patient_edges, symmetric_edges)
from diagnosis.classify.model import DiagnosisModel
from diagnosis.classify.predict import predict
from diagnosis.classify.uncertainty import conformal_threshold
from diagnosis.features.table import FeatureTable

__all__ = ["fit_graph"]

logger = logging.getLogger(__name__)


def fit_graph(model: DiagnosisModel, train: FeatureTable, val: FeatureTable, keys: Sequence[str],
              device: torch.device | str = "cpu", config: GraphConfig = GraphConfig(), seed: int = 0,
              synthetic: Sequence[bool] | None = None, patients: Sequence[str | None] | None = None,
              val_patients: Sequence[str | None] | None = None,
              on_epoch: Callable[[dict[str, float]], None] | None = None) -> tuple[GraphClassifier, LatentBank]:
    """Train the GCN over ``train``'s labelled real cases and attach it to nothing (the caller sets ``model.graph``).

    Args:
        model: The trained fusion model (not changed).
        train: Its training rows; ``keys`` names each row's case.
        val: Validation rows (selection, temperature, conformal threshold).
        device: Where to compute the fusion model's predictions (the GCN trains on the CPU: sparse products).
        config: Graph and training settings.
        seed: Initialisation and dropout.
        synthetic: Rows to leave out of the graph (generated cases).
        patients: Each training row's patient key (None: unknown): with ``config.same_patient`` a patient's cases
            are joined by edges too.
        val_patients: Each val row's patient key, for attaching val cases as diagnosis will.
        on_epoch: Called with each epoch's losses (progress).

    Returns:
        The calibrated classifier and the latent bank whose rows are its nodes.

    Raises:
        ValueError: Fewer than two labelled training cases, or no labelled validation case.
    """
    kept, model.graph = model.graph, None  # the fusion model's own probabilities are the nodes' features
    try:
        train_preds, val_preds = predict(model, train, device, samples=1), predict(model, val, device, samples=1)
    finally:
        model.graph = kept
    rows = bank_rows(train, train_preds, synthetic)
    if len(rows) < 2:
        raise ValueError("the graph classifier needs at least two labelled training cases")
    val_rows = np.flatnonzero((val.labels >= 0) & val_preds.ok)
    if len(val_rows) == 0:
        raise ValueError("the graph classifier selects and calibrates on val: label some cases with split=val")
    torch.manual_seed(seed)
    z = torch.from_numpy(train_preds.latents[rows]).float()
    y = torch.from_numpy(train.labels[rows]).long()
    bank = LatentBank(z.numpy(), y.numpy(), tuple(keys[i] for i in rows), patient_column(patients, rows))
    raw = torch.cat([z, log_probabilities(train_preds.probabilities[rows])], 1)
    graph = GraphClassifier(raw.shape[1], len(model.spec.label_names), config, len(rows), z.shape[1])
    graph.keys, graph.patients = bank.keys, bank.patients
    graph.feature_shift.copy_(raw.mean(0)), graph.feature_scale.copy_(raw.std(0, unbiased=False).clamp(min=1e-4))
    x = graph.features(z, raw[:, z.shape[1]:])
    neighbours, _ = knn(z, z, config.k, exclude_self=True)
    same = patient_edges(bank.patients, config.k) if config.same_patient and bank.patients else None
    adjacency, degree = normalized_adjacency(symmetric_edges(neighbours, same), len(rows))
    val_keys = None if val_patients is None else [val_patients[i] for i in val_rows]
    val_z = torch.from_numpy(val_preds.latents[val_rows]).float()
    val_x = graph.features(val_z, log_probabilities(val_preds.probabilities[val_rows]))
    val_y = torch.from_numpy(val.labels[val_rows]).long()
    optimiser = torch.optim.Adam(graph.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best, best_loss, best_epoch = None, float("inf"), 0
    for epoch in range(1, config.epochs + 1):
        graph.train()
        logits, _ = graph(x, adjacency)
        loss = F.cross_entropy(logits, y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        graph.store_nodes(x, z, adjacency, degree)
        with torch.no_grad():
            val_loss = float(F.cross_entropy(graph.attach_logits(val_x, val_z, val_keys).logits, val_y))
        if val_loss < best_loss:
            best, best_loss, best_epoch = copy.deepcopy(graph.state_dict()), val_loss, epoch
        if on_epoch is not None and (epoch % 25 == 0 or epoch == 1):
            on_epoch({"epoch": epoch, "train_loss": float(loss.detach()), "val_loss": val_loss, "stage": "graph"})
        if epoch - best_epoch >= config.patience:
            break
    graph.load_state_dict(best)
    graph.trained_epochs, graph.best_epoch = epoch, best_epoch
    graph.store_nodes(x, z, adjacency, degree)
    with torch.no_grad():
        val_logits = graph.attach_logits(val_x, val_z, val_keys).logits
    graph.temperature.fill_(fit_temperature(val_logits, val_y))
    probabilities = torch.softmax(val_logits / graph.temperature, 1).numpy()
    graph.conformal_threshold.fill_(conformal_threshold(probabilities, val_y.numpy(), model.spec.conformal_coverage))
    logger.info("graph classifier: %d nodes, k=%d, best epoch %d (val loss %.4f), T=%.2f", len(rows), config.k,
                best_epoch, best_loss, float(graph.temperature))
    return graph.eval(), bank
