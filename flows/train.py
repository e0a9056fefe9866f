"""Train flow: fit the diagnosis model on split=train, select on val, register a model version with metrics."""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.classify import DiagnosisModel, predict, save_model
from diagnosis.classify.bank import LatentBank, latent_bank
from diagnosis.classify.graph import GraphClassifier
from diagnosis.device import resolve_device
from diagnosis.evaluation import classification_metrics
from diagnosis.features import FeatureTable, TextEncoderConfig
from diagnosis.features.lexical import LexicalConfig, LexicalReader, fit_lexical_reader
from diagnosis.fusion import FusionConfig
from diagnosis.settings import Settings
from diagnosis.training import FitResult, TrainConfig, fit, plan_model
from diagnosis.training.graph_stage import fit_graph
from diagnosis.training.image_stage import ImageStageConfig
from diagnosis.training.stage_result import epoch_figures
from diagnosis.training.text_stage import TextStage, TextStageConfig, finetune_text_encoder
from flows.common import features_task, text_encoder
from flows.tracking import recorded_run

__all__ = ["CANDIDATE_REASON", "CLASSIFIERS", "TRAINED_REASON", "stage_epochs", "table_metrics", "train_flow"]

logger = logging.getLogger("flows")

CLASSIFIERS = ("head", "graph")  # what diagnoses from the fused latent (--classifier)


NO_DATASET = db.NO_DATASET  # how cases stored before data sets existed are named in messages and in --dataset


def choose_datasets(db_url: str, datasets: list[str] | None) -> list[str | None] | None:
    """The data sets a training run uses: the named ones, or the store's only one; never a silent mix.

    Args:
        db_url: Store URL.
        datasets: Names to train on (:data:`NO_DATASET` for cases stored without one); ``None``: the store's only one.

    Returns:
        The data sets to filter on (the store's only one when none is named), or ``None`` for an empty store.

    Raises:
        ValueError: A named data set has no labelled case, or ``datasets`` is None and the store holds several; the
            message lists every data set with its labelled cases.
    """
    with db.session_scope(db_url) as session:
        counts = db.labelled_datasets(session)
    listing = ", ".join(f"{NO_DATASET if name is None else name} ({n} labelled cases)"
                        for name, n in sorted(counts.items(), key=lambda item: str(item[0])))  # fmt: skip
    if datasets:
        chosen = [None if name == NO_DATASET else name for name in datasets]
        if missing := [name for name, key in zip(datasets, chosen, strict=True) if key not in counts]:
            raise ValueError(f"no labelled cases in data set(s) {', '.join(missing)}; the store holds: {listing or 'none'}")
        return chosen
    if len(counts) > 1:
        names = [NO_DATASET if name is None else name for name in counts]
        raise ValueError(f"the store holds {len(counts)} data sets: {listing}. Train on one with --dataset NAME, or "
                         f"mix them deliberately with --dataset {','.join(sorted(names))}")
    return list(counts) or None


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def load_labelled_cases(db_url: str, augment: bool = False,
                        datasets: list[str | None] | None = None) -> dict[str, list[db.CaseInput]]:
    """Labelled, non-rejected cases per split (of ``datasets`` when given); synthetic (augmented) cases join the
    training split with ``augment``."""
    splits: dict[str, list[db.CaseInput]] = {"train": [], "val": [], "test": []}
    with db.session_scope(db_url) as session:
        for batch in db.iter_case_inputs(session, splits=list(splits), labelled_only=True, datasets=datasets):
            for case in batch:
                splits[case.split or "train"].append(case)
        if augment:
            real = {c.id for c in splits["train"]}
            for batch in db.iter_case_inputs(session, splits=["train"], labelled_only=True, include_synthetic=True,
                                             datasets=datasets):
                splits["train"] += [c for c in batch if c.id not in real]
    return splits


def _log_epoch(record: dict) -> None:
    """One log line per epoch of any stage."""
    logger.info("%s stage, %s", record.get("stage", "fusion"), epoch_figures(record))


def _label_ids(names: tuple[str, ...], cases: list[db.CaseInput]) -> list[int]:
    """Each case's class id among ``names`` (``-1``: unlabelled or another label)."""
    index = {name: i for i, name in enumerate(names)}
    return [index.get(c.label or "", -1) for c in cases]


@task(cache_policy=NO_CACHE)
def text_stage_task(spec, splits: dict[str, list[db.CaseInput]], config: TrainConfig, out_dir: Path,  # noqa: ANN001
                    device: str) -> TextStage | None:
    """Fine-tune the text encoder on the labelled training texts (selected on val)."""

    def texts(cases: list[db.CaseInput]) -> tuple[list[str], list[int]]:
        kept = [c for c in cases if c.text and c.text.strip()]
        return [c.text for c in kept], _label_ids(spec.label_names, kept)  # type: ignore[misc]

    (train_texts, train_labels), (val_texts, val_labels) = texts(splits["train"]), texts(splits.get("val", []))
    return finetune_text_encoder(spec.text, train_texts, train_labels, len(spec.label_names), out_dir, config.text_stage,
                                 val_texts=val_texts, val_labels=val_labels, seed=config.seed,
                                 device=resolve_device(device), on_epoch=lambda r: _log_epoch({**r, "stage": "text"}))


@task(cache_policy=NO_CACHE)
def lexical_task(spec, train: list[db.CaseInput], config: TrainConfig) -> LexicalReader | None:  # noqa: ANN001
    """Fit the lexical reader on the labelled training texts (None when off or too few texts)."""
    return fit_lexical_reader([c.text for c in train], _label_ids(spec.label_names, train), len(spec.label_names),
                              config.lexical)


@task(cache_policy=NO_CACHE)
def fit_task(spec, train: FeatureTable, val: FeatureTable | None, config: TrainConfig, device: str,  # noqa: ANN001
             lexical: LexicalReader | None = None) -> FitResult:
    """Train the image stage and the fusion model, select on val (stacking the lexical reader there)."""
    return fit(spec, train, val, config, resolve_device(device), on_epoch=_log_epoch, lexical=lexical)


def table_metrics(model: DiagnosisModel, table: FeatureTable, device: str) -> dict:
    """Metrics of fresh predictions on the labelled, usable rows of a table."""
    preds = predict(model, table, resolve_device(device))
    keep = (table.labels >= 0) & preds.ok
    return classification_metrics(table.labels[keep], preds.probabilities[keep], model.spec.label_names)


TRAINED_REASON = "trained with `diagnosis train`"
"""Promotion reason of a version that ``diagnosis train`` made current."""
CANDIDATE_REASON = "candidate: awaiting comparison with the current model"
"""Promotion reason recorded for a version trained with ``promote=False`` (not served until promoted)."""


def model_directory(models_dir: Path, fusion: str) -> tuple[str, Path]:
    """A fresh model version's time stamp and checkpoint folder (``<stamp>-<fusion>-<id>``)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return stamp, models_dir / f"{stamp}-{fusion}-{uuid.uuid4().hex[:6]}"


def stage_summaries(result: FitResult, text: TextStage | None) -> dict:
    """What each training stage did, for the model version's record."""
    stages = {"text": text.summary() if text else None,
              "image": result.image_stage.summary() if result.image_stage else None,
              "fusion": {"best_epoch": result.best_epoch, "epochs": len(result.history), "seconds": round(result.seconds, 1)}}
    if result.layerwise:  # the stacked autoencoder's greedy stage: each layer's last reconstruction error
        last = {int(r["layer"]): round(float(r["loss"]), 5) for r in result.layerwise}
        stages["layerwise"] = {"layers": len(last), "epochs_per_layer": len(result.layerwise) // len(last),
                               "final_loss": [last[k] for k in sorted(last)]}  # fmt: skip
    return stages


@task(cache_policy=NO_CACHE)
def graph_task(model: DiagnosisModel, train: FeatureTable, val: FeatureTable, splits: dict[str, list[db.CaseInput]],
               device: str, seed: int) -> tuple[GraphClassifier, LatentBank]:
    """Train the graph classifier over the fitted model's training cases (``--classifier graph``)."""
    cases = splits["train"]
    return fit_graph(model, train, val, [c.case_key for c in cases], resolve_device(device), seed=seed,
                     synthetic=[c.is_synthetic for c in cases], patients=[c.patient_key for c in cases],
                     val_patients=[c.patient_key for c in splits["val"]], on_epoch=_log_epoch)


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def recorded_datasets(chosen: list[str | None] | None) -> list[str] | None:
    """The data-set names a model version records (``None`` entries named :data:`NO_DATASET`)."""
    return None if chosen is None else [NO_DATASET if name is None else name for name in chosen]


def register_task(result: FitResult, metrics: dict, config: TrainConfig, directory: Path, stamp: str, db_url: str,
                  promote: bool = True, stages: dict | None = None, datasets: list[str] | None = None,
                  bank: LatentBank | None = None) -> int:
    """Save the checkpoint (with the latent bank of its training cases), register the model version (with the data
    sets it was trained on) and record whether it becomes current."""
    fusion = result.model.spec.fusion.fusion
    classifier = "graph" if result.model.graph is not None else "head"
    directory = save_model(result.model, directory, extra={"train": config.to_dict(), "best_epoch": result.best_epoch,
                                                           "metrics": metrics, "stages": stages, "datasets": datasets})
    if bank is not None:
        bank.save(directory)
    with db.session_scope(db_url) as session:
        version = db.register_model_version(
            session, name=f"{fusion}+graph-{stamp}" if classifier == "graph" else f"{fusion}-{stamp}", fusion=fusion,
            config={"spec": result.model.spec.to_dict(), "train": config.to_dict(), "best_epoch": result.best_epoch,
                    "train_seconds": round(result.seconds, 1), "history": result.history, "stages": stages,
                    "datasets": datasets, "generative": result.model.vae.generative,  # False: augment refuses it
                    "classifier": classifier},
            label_names=list(result.model.spec.label_names), metrics=metrics, checkpoint_path=str(directory),
        )
        db.record_promotion(session, candidate_id=version, promoted=promote,
                            reason=TRAINED_REASON if promote else CANDIDATE_REASON)
        return version


def stage_epochs(epochs: int) -> dict[str, int]:
    """``train_flow``'s stage arguments that cap the image and text stages at ``epochs`` (their defaults when lower),
    for callers whose one epoch budget applies to every stage (the scheduled retrain, the perf benchmarks)."""
    return {"image_epochs": min(epochs, ImageStageConfig.epochs), "text_epochs": min(epochs, TextStageConfig.epochs)}


@flow(name="train")
def train_flow(db_url: str, home: str, fusion: str = "poe", epochs: int = 30, device: str = "auto",
               image_weights: str | None = None, text_model: str | None = None, seed: int = 0,
               augment: bool = False, preprocessing: dict | None = None, promote: bool = True,
               batch_size: int = TrainConfig.batch_size, lr: float = TrainConfig.lr,
               image_epochs: int = ImageStageConfig.epochs, text_epochs: int = TextStageConfig.epochs,
               augmentation: dict | None = None, image_members: int = FusionConfig.image_members,
               datasets: list[str] | None = None, class_weights: bool = False, subset_sampling: bool = True,
               lexical: bool = True, classifier: str = "head") -> int:
    """Train on the store's labelled cases and register a model version.

    Args:
        db_url: Store URL.
        home: Diagnosis home (models and caches live there).
        fusion: Fusion variant.
        epochs: Maximum epochs.
        device: ``auto``, ``cpu`` or ``cuda``.
        image_weights: Optional weights for the image feature network.
        text_model: Local Hugging Face model folder (default: packaged all-MiniLM-L6-v2).
        seed: Random seed.
        augment: Add the stored synthetic cases (``diagnosis augment``) to the training split.
        preprocessing: The dataset's image preprocessing options (see ``ImagePreprocessing``), recorded with the model.
        promote: Make the new version current (``latest``); ``False`` registers a candidate that is not served
            until a promotion decision promotes it (see ``flows.retrain``).
        batch_size: Cases per optimisation step (on a GPU, large batches are what make it pay: see the README).
        lr: Peak AdamW learning rate of the one-cycle schedule.
        image_epochs: Epochs of the supervised image stage (0: the image network trains inside the fusion model).
        text_epochs: Epochs of text fine-tuning (0: frozen text embeddings).
        augmentation: Image augmentation options (see ``ImageAugmentation``), e.g. ``{"flip_axes": [0]}``.
        image_members: Image networks the image stage trains (an ensemble whose features the fusion model reads).
        datasets: Data sets to train on (see :func:`choose_datasets`); ``None``: the store's only one.
        class_weights: Weight the diagnosis losses by inverse class frequency (helps a rare diagnosis be found).
        subset_sampling: moe / mopoe: decode one sampled mixture component per case and step (False: every one).
        lexical: Fit the bag-of-words reader of the texts (TF-IDF + logistic regression) and stack it with the model
            on val (see ``diagnosis.features.lexical``); False: the transformer path alone.
        classifier: ``head`` (the diagnosis head on each case's fused latent) or ``graph`` (a graph network over the
            kNN graph of the training cases' latents on top of it, :mod:`diagnosis.classify.graph`).

    Returns:
        The new model version id.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {classifier!r}; choose one of {', '.join(CLASSIFIERS)}")
    home_path = Path(home)
    with recorded_run(db_url, "train") as run:
        chosen = choose_datasets(db_url, datasets)
        splits = load_labelled_cases(db_url, augment, chosen)
        if classifier == "graph" and not splits["val"]:
            raise ValueError("the graph classifier selects and calibrates on val: label some cases with split=val")
        on = str(resolve_device(device))
        encoder = text_encoder(TextEncoderConfig(model_path=text_model), home_path, device=on)
        spec = plan_model(splits["train"], FusionConfig(fusion=fusion, image_members=image_members,
                                                        subset_sampling=subset_sampling), encoder,
                          image_options=preprocessing)
        image_stage = ImageStageConfig(epochs=image_epochs, **({"augmentation": augmentation} if augmentation else {}))
        config = TrainConfig(epochs=epochs, seed=seed, image_weights=image_weights, batch_size=batch_size, lr=lr,
                             class_weights=class_weights, image_stage=image_stage,
                             text_stage=TextStageConfig(epochs=text_epochs), lexical=LexicalConfig(enabled=lexical))
        stamp, directory = model_directory(Settings(home=home_path).models_dir, fusion)
        try:
            text = text_stage_task(spec, splits, config, directory / "text-encoder", device) if spec.text else None
            if text is not None:  # the fine-tuned encoder embeds every split, and diagnosis later
                spec, encoder = replace(spec, text=text.encoder), text_encoder(text.encoder, home_path, device=on)
            reader = lexical_task(spec, splits["train"], config) if spec.text else None
            tables = {s: features_task(cases, spec, encoder, reader) for s, cases in splits.items() if cases}
            result = fit_task(spec, tables["train"], tables.get("val"), config, device, reader)
            if classifier == "graph":
                result.model.graph, bank = graph_task(result.model, tables["train"], tables["val"], splits, device, seed)
            else:
                cases = splits["train"]
                bank = latent_bank(result.model, tables["train"], [c.case_key for c in cases], resolve_device(device),
                                   synthetic=[c.is_synthetic for c in cases], patients=[c.patient_key for c in cases])
            metrics = {s: table_metrics(result.model, tables[s], device) for s in ("val", "test") if s in tables}
            run.model_version_id = register_task(result, metrics, config, directory, stamp, db_url, promote,
                                                 stage_summaries(result, text), datasets=recorded_datasets(chosen),
                                                 bank=bank)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)  # no half-written model folder (a fine-tuned encoder) left
            raise
        run.add(train=len(splits["train"]), synthetic=sum(c.is_synthetic for c in splits["train"]), val=len(splits["val"]), test=len(splits["test"]), epochs=len(result.history))
        logger.info("registered model version %d (val accuracy %.3f)", run.model_version_id,
                    metrics.get("val", {}).get("accuracy", np.nan))
        return run.model_version_id
