"""Augment flow: class-conditional synthetic cases (latent -> decoded image + nearest real symptom text).

The latents come from the model's per-class Gaussians (``generator="vae"``) or from a conditional GAN trained on its
latent bank (``generator="gan"``), trained on first use and kept in the checkpoint folder for the next call.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from pathlib import Path

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import db
from diagnosis.device import resolve_device
from diagnosis.classify import DiagnosisModel, load_model
from diagnosis.classify.bank import load_bank
from diagnosis.generation import (GANConfig, GANReport, GeneratedSamples, LatentGAN, cross_modal_coherence, load_gan, nearest_rows,
                                  sample_class, save_gan, train_latent_gan)
from flows.common import real_texts, resolve_model, save_decoded_image, text_encoder
from flows.tracking import recorded_run

__all__ = ["GENERATORS", "SYNTHETIC_PREFIX", "augment_flow", "latent_gan"]

SYNTHETIC_PREFIX = "AUG-"  # case ids of generated cases start with this
GENERATORS = ("vae", "gan")  # where the latents of generated cases come from

logger = logging.getLogger("flows")


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def store_samples(samples: GeneratedSamples, texts: list[str | None], label: str, version: int, out_dir: Path, db_url: str,
                  generator: str = "vae") -> int:
    """Write images and store the samples as synthetic training cases (their source names the generator)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(len(samples.latents)):
        key = f"{SYNTHETIC_PREFIX}v{version}-{label}-{uuid.uuid4().hex[:10]}"
        image = save_decoded_image(samples.outputs["image"][i], out_dir / key) if "image" in samples.outputs else None
        cases.append(db.CaseIn(case_key=key, patient_key=None, label=label, split="train", text=texts[i], image=image,
                               source=f"augment ({generator}): model version {version}", is_synthetic=True))
    with db.session_scope(db_url) as session:
        return db.upsert_cases(session, cases).created


@task(cache_policy=NO_CACHE)
def latent_gan(net: DiagnosisModel, checkpoint: str, version: int, steps: int = GANConfig.steps) -> tuple[LatentGAN, GANReport]:
    """The model version's latent GAN: the one kept in its checkpoint folder, else one trained on its latent bank
    and kept there.

    Raises:
        ValueError: The version has no latent bank (trained before banks were stored).
    """
    device = net.class_mean.device
    kept = load_gan(checkpoint, device)
    if kept is not None:
        return kept
    bank = load_bank(checkpoint)
    if bank is None:
        raise ValueError(f"model version {version} has no latent bank of its training cases (it was trained before "
                         "banks were stored): train a new version (diagnosis train) to generate with a GAN")
    gan, report = train_latent_gan(bank.latents, bank.labels, net.spec.label_names, GANConfig(steps=steps), device=device)
    save_gan(gan, report, checkpoint)
    logger.info("augment: latent GAN trained in %.0f s (sample diversity %s)", report.seconds, report.diversity)
    return gan, report


@flow(name="augment")
def augment_flow(db_url: str, home: str, label: str, n: int, model: str = "latest", seed: int | None = None,
                 device: str = "auto", generator: str = "vae", gan_steps: int = GANConfig.steps) -> dict:
    """Generate ``n`` synthetic cases of ``label`` and store them flagged synthetic (never evaluated).

    Each call draws fresh samples unless ``seed`` is given, so "generate more" adds new cases.

    Args:
        generator: ``vae`` (the model's per-class latent Gaussians) or ``gan`` (its conditional latent GAN).
        gan_steps: Training steps of the GAN when the version has none yet.

    Returns:
        ``created``, the share of samples the model itself diagnoses as ``label`` (``in_class``), the cross-modal
        coherence (share whose nearest real text carries ``label``; NaN without texts) and, for the GAN, its sample
        diversity for ``label`` and whether it collapsed.

    Raises:
        ValueError: An unknown generator, label, or a model that cannot generate with it.
    """
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")
    with recorded_run(db_url, "augment") as run:
        version = resolve_model(db_url, model)
        run.model_version_id = version.id
        net = load_model(version.checkpoint_path, resolve_device(device))
        extra: dict = {}
        gan = None
        if generator == "gan":
            if label not in net.spec.label_names:
                raise ValueError(f"unknown diagnosis {label!r}; the model knows {', '.join(net.spec.label_names)}")
            gan, report = latent_gan(net, version.checkpoint_path, version.id, gan_steps)
            extra = {"diversity": report.diversity.get(label, float("nan")), "collapsed": label in report.collapsed}
        samples = sample_class(net, label, n, seed=secrets.randbits(31) if seed is None else seed, gan=gan)
        texts: list[str | None] = [None] * n
        coherence = float("nan")
        encoder = text_encoder(net.spec.text, home)
        if "text" in samples.outputs and encoder is not None:
            bank, bank_labels = real_texts(db_url)
            if bank:
                neighbours = nearest_rows(samples.outputs["text"], encoder.encode(bank), k=3)
                texts = [bank[row[0]] for row in neighbours]
                coherence = cross_modal_coherence([label] * n, np.array(bank_labels), neighbours)
        out_dir = Path(home) / "augment" / f"v{version.id}" / label
        created = store_samples(samples, texts, label, version.id, out_dir, db_url, generator)
        in_class = float((samples.probabilities.argmax(1) == version.label_names.index(label)).mean())
        run.add(created=created)
        logger.info("augment: %d synthetic %s cases from the %s (%.0f%% diagnosed in class)", created, label,
                    generator, 100 * in_class)
        return {"created": created, "label": label, "generator": generator, "in_class": in_class,
                "text_coherence": coherence, **extra}
