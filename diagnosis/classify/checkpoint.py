"""Checkpoints: weights as safetensors, the model spec, label names and version as JSON beside them; the graph
classifier (if any) in files of its own over the folder's latent bank."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from diagnosis import __version__
from diagnosis.classify.bank import load_bank
from diagnosis.classify.graph import load_graph, save_graph
from diagnosis.classify.model import EVIDENCE_SOURCES, DiagnosisModel, ModelSpec, default_pattern_weights
from diagnosis.features.lexical import LexicalReader

__all__ = ["CHECKPOINT_FORMAT", "load_model", "save_model"]

CHECKPOINT_FORMAT = 1  # bump when the layout of model.json changes


def save_model(model: DiagnosisModel, directory: str | Path, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory``; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("graph.")}
    save_file(state, str(directory / "model.safetensors"))
    if model.lexical is not None:
        model.lexical.save(directory)
    if model.graph is not None:  # its nodes are the folder's latent bank, which the caller saves
        save_graph(model.graph, directory)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "diagnosis_version": __version__,
        "label_names": list(model.spec.label_names),
        "spec": model.spec.to_dict(),
        **(extra or {}),
    }
    (directory / "model.json").write_text(json.dumps(meta, indent=2))
    return directory


def load_model(directory: str | Path, device: torch.device | str = "cpu") -> DiagnosisModel:
    """Rebuild a model from a checkpoint folder.

    Raises:
        FileNotFoundError: The folder lacks ``model.json`` or ``model.safetensors``.
        ValueError: The checkpoint was written in an unknown format.
    """
    directory = Path(directory)
    meta_path, weights = directory / "model.json", directory / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{directory} is not a model checkpoint (model.json + model.safetensors expected)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {meta.get('format')} is not supported (expected {CHECKPOINT_FORMAT})")
    model = DiagnosisModel(ModelSpec.from_dict(meta["spec"]), LexicalReader.load(directory))
    state = load_file(str(weights), device=str(device))
    _upgrade(state, model)
    model.load_state_dict(state)
    bank = load_bank(directory)
    if bank is not None:
        model.graph = load_graph(directory, bank.keys, device, bank.patients)
    return model.to(device).eval()


def _upgrade(state: dict[str, torch.Tensor], model: DiagnosisModel) -> None:
    """Fill the calibration buffers that older checkpoints lack (in place), so that they predict as they did.

    Before the image stage's evidence (``image_weight`` / ``image_bias``: none) and per-pattern weights, a checkpoint
    held one temperature per pattern (``pattern_temperature``), or one for every pattern; before the lexical reader,
    ``pattern_weight`` had no column for it (weight 0).
    """
    if "pattern_weight" not in state:
        patterns = model.pattern_weight.shape[0]
        temperatures = state.pop("pattern_temperature", state["temperature"].expand(patterns))
        weights = default_pattern_weights(len(model.spec.modalities.names), temperatures.float().cpu())
        state["pattern_weight"] = weights.to(state["temperature"].device)
    weights = state["pattern_weight"]
    if weights.shape[1] < EVIDENCE_SOURCES:
        state["pattern_weight"] = torch.cat([weights, weights.new_zeros(weights.shape[0], EVIDENCE_SOURCES - weights.shape[1])], 1)
    for name in ("image_weight", "image_bias"):
        state.setdefault(name, torch.zeros_like(getattr(model, name)).to(state["temperature"].device))
