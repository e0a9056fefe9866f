"""Demo flow: generate a synthetic dataset, then ingest -> train -> diagnose -> evaluate."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, task

from diagnosis.synthetic import SyntheticConfig, generate_dataset
from flows.diagnose import diagnose_flow
from flows.evaluate import evaluate_flow
from flows.ingest import ingest_flow
from flows.train import train_flow

__all__ = ["demo_flow"]

logger = logging.getLogger("flows")


DEMO_IMAGE_SIZE = 32  # px of the demo's 2D images: the model grid follows the source, and 32 keeps the demo quick
DEMO_TEXT_EPOCHS = 1  # text fine-tuning epochs in the demo (train's default is 3; the generated notes are short)
DEMO_IMAGE_MEMBERS = 1  # one image network (train's default ensemble of 3 triples the stage; the shapes are easy)
DEMO_DATASET = "demo"  # the demo's cases form a data set of their own, so that real data never mixes with them
DEMO_CLASS_WEIGHTS = True  # inverse-frequency loss weights, so that the rare diagnosis (2-5 % of cases) is found


@task(retries=2, retry_delay_seconds=[1, 5])
def generate_task(out_dir: str, cases: int, dims: int, seed: int) -> str:
    """Write the synthetic dataset's files and manifest."""
    config = SyntheticConfig(cases=cases, dims=dims, seed=seed, image_size=DEMO_IMAGE_SIZE)
    return str(generate_dataset(out_dir, config))


@flow(name="demo")
def demo_flow(db_url: str, home: str, cases: int = 600, dims: int = 2, epochs: int = 30, seed: int = 0,
              device: str = "auto") -> dict:
    """Run the whole pipeline on generated data and return the test metrics."""
    out_dir = Path(home) / "demo-data" / f"{dims}d-{cases}-seed{seed}-{DEMO_IMAGE_SIZE}px"
    manifest = generate_task(str(out_dir), cases, dims, seed)
    logger.info("generated %d cases under %s", cases, out_dir)
    ingest_flow(manifest, db_url, home=home, dataset=DEMO_DATASET)
    version = train_flow(db_url, home, epochs=epochs, device=device, seed=seed, text_epochs=DEMO_TEXT_EPOCHS,
                         image_members=DEMO_IMAGE_MEMBERS, datasets=[DEMO_DATASET], class_weights=DEMO_CLASS_WEIGHTS)
    diagnose_flow(db_url, home, model=str(version), device=device)
    return evaluate_flow(db_url, model=str(version), split="test")
