"""The latent bank: the fused posterior means of a model's labelled training cases, saved beside its weights.

The bank is what the model knows about its training cases after training: the latent GAN learns from it
(:mod:`diagnosis.generation.gan`) and the graph classifier's nodes are its rows (:mod:`diagnosis.classify.graph`).
It holds real cases only (never generated ones) and is small: ``N × D`` float32 plus one key per case (32 000
cases of a 32-d latent take 4 MB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diagnosis.classify.model import DiagnosisModel
from diagnosis.classify.predict import Predictions, predict
from diagnosis.features.table import FeatureTable

__all__ = ["BANK_FILE", "LatentBank", "bank_rows", "latent_bank", "load_bank", "patient_column"]

BANK_FILE = "latents.npz"  # inside a model's checkpoint folder


@dataclass(frozen=True)
class LatentBank:
    """Training latents of one model version.

    Attributes:
        latents: ``(N, D)`` float32 fused posterior means.
        labels: ``(N,)`` class ids (the model's label order).
        keys: ``N`` case keys (the manifest's ``case_id``).
        patients: ``N`` (pseudonymised) patient keys, ``""`` where unknown; empty when none was given.
    """

    latents: np.ndarray
    labels: np.ndarray
    keys: tuple[str, ...]
    patients: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, directory: str | Path) -> Path:
        """Write :data:`BANK_FILE` into ``directory``; returns its path."""
        path = Path(directory) / BANK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, latents=self.latents.astype(np.float32), labels=self.labels.astype(np.int64),
                 keys=np.array(self.keys, dtype=np.str_), patients=np.array(self.patients, dtype=np.str_))
        return path


def load_bank(directory: str | Path) -> LatentBank | None:
    """The bank saved in a checkpoint folder, or None (versions trained before banks were stored)."""
    path = Path(directory) / BANK_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        patients = tuple(str(p) for p in data["patients"]) if "patients" in data else ()
        return LatentBank(data["latents"], data["labels"], tuple(str(k) for k in data["keys"]), patients)


def patient_column(patients: Sequence[str | None] | None, rows: np.ndarray) -> tuple[str, ...]:
    """The bank's patient keys of ``rows`` (``""`` where unknown; empty without ``patients``)."""
    return () if patients is None else tuple(patients[i] or "" for i in rows)


def bank_rows(table: FeatureTable, preds: Predictions, synthetic: Sequence[bool] | None = None) -> np.ndarray:
    """Indices of the rows a bank keeps: labelled, readable and real."""
    keep = (table.labels >= 0) & preds.ok
    if synthetic is not None:
        keep &= ~np.asarray(synthetic, dtype=bool)
    return np.flatnonzero(keep)


def latent_bank(model: DiagnosisModel, table: FeatureTable, keys: Sequence[str], device: torch.device | str,
                synthetic: Sequence[bool] | None = None, patients: Sequence[str | None] | None = None) -> LatentBank:
    """The fused posterior means of ``table``'s labelled, readable, real rows (``synthetic`` marks rows to leave out;
    ``patients`` gives each row's patient key, None where unknown).

    Raises:
        ValueError: ``keys`` (or ``synthetic``) do not match the table's rows.
    """
    if len(keys) != len(table) or (synthetic is not None and len(synthetic) != len(table)):
        raise ValueError(f"{len(keys)} keys for {len(table)} rows: give one case key per row of the table")
    preds = predict(model, table, device, samples=1)
    rows = bank_rows(table, preds, synthetic)
    return LatentBank(preds.latents[rows].astype(np.float32), table.labels[rows].astype(np.int64),
                      tuple(keys[i] for i in rows), patient_column(patients, rows))
