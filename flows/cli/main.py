"""The ``diagnosis`` root command and the pipeline commands: generate, ingest, import-npz, train, diagnose, evaluate,
cases; ``dashboard`` and ``demo`` (:mod:`flows.cli.start`), the groups ``users`` and ``bench`` and ``serve`` are added
from their modules."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from diagnosis.settings import DATABASE_URL_ENV, HOME_ENV, Settings
from flows.cli import bench, serve, start, users
from flows.cli.common import command_settings, json_file, manifest_rows, migrated_store, user_errors

__all__ = ["app", "main"]

app = typer.Typer(help="Multimodal medical diagnosis workflows.", no_args_is_help=True, add_completion=False)
app.add_typer(users.app, name="users")
app.add_typer(bench.app, name="bench")


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", envvar=HOME_ENV, help="Folder for the SQLite store, models, caches and Prefect state.")] = None,
    db_url: Annotated[str | None, typer.Option("--db", envvar=DATABASE_URL_ENV, help="SQLAlchemy URL of the store (PostgreSQL works); default SQLite under --home.")] = None,
) -> None:
    """Multimodal medical diagnosis workflows."""
    ctx.obj = Settings.from_env(home, db_url)


@app.command()
def generate(
    out_dir: Path,
    cases: Annotated[int, typer.Option(min=20, help="Number of cases.")] = 600,
    dims: Annotated[int, typer.Option(min=2, max=3, help="2: PNG images, 3: NIfTI volumes.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write a synthetic multimodal dataset (images + symptom texts + manifest.csv)."""
    from diagnosis.synthetic import SyntheticConfig, generate_dataset

    manifest = generate_dataset(out_dir, SyntheticConfig(cases=cases, dims=dims, seed=seed))
    typer.echo(f"wrote {cases} cases; manifest: {manifest}")


@app.command()
def ingest(
    ctx: typer.Context,
    manifest: Path,
    labels: Annotated[str | None, typer.Option(help="Comma-separated allowed labels; default: any label.")] = None,
    labels_file: Annotated[Path | None, typer.Option(help="File with one allowed label per line.")] = None,
    allow_outside_paths: Annotated[bool, typer.Option("--allow-outside-paths", help="Accept image paths outside the manifest's folder.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with status 1 when any row is rejected or conflicts.")] = False,
    dataset: Annotated[str | None, typer.Option(help="Data set the cases join (default: the manifest's folder name; a 'dataset' column wins).")] = None,
    accept_burned_in: Annotated[bool, typer.Option("--accept-burned-in", help="Ingest DICOM marked BurnedInAnnotation=YES (text in the pixels; rejected by default).")] = False,
) -> None:
    """Validate and store every row of a manifest; bad rows are stored as rejected with a reason.

    Prints the counts and problems as JSON on stdout and a readable summary of every rejected row and conflict on
    stderr. Exit status: 0, 2 when the manifest itself is unreadable, 1 with --strict and any problem.
    """
    settings = command_settings(ctx)
    from diagnosis.ingest import ManifestError, PrivacyError
    from flows.ingest import ingest_flow, ingest_summary

    allowed = [x.strip() for x in labels.split(",") if x.strip()] if labels else []
    with user_errors(ManifestError, PrivacyError, OSError, code=2):
        if labels_file:
            allowed += [x.strip() for x in labels_file.read_text(encoding="utf-8").splitlines() if x.strip()]
        result = ingest_flow(str(manifest), settings.db_url, home=str(settings.home), labels=allowed or None,
                             allow_outside_paths=allow_outside_paths, dataset=dataset,
                             accept_burned_in=accept_burned_in)
    typer.echo(json.dumps(result))
    typer.echo(ingest_summary(result), err=True)
    if strict and (result.get("rejected") or result.get("conflicts")):
        typer.secho("error: --strict and some rows were rejected or conflict (listed above)", fg="red", err=True)
        raise typer.Exit(1)


@app.command("import-npz")
def import_npz(
    npz: Path,
    out_dir: Path,
    labels: Annotated[str | None, typer.Option(help="Comma-separated names of labels 0, 1, … (default: the npz's own names, else 0, 1, …).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set name written into the manifest (default: the npz file's stem).")] = None,
) -> None:
    """Convert a MedMNIST-format npz into image files and a manifest with splits and a data set."""
    from diagnosis.ingest import import_npz as convert

    manifest = convert(npz, out_dir, labels.split(",") if labels else None, dataset=dataset)
    names = sorted({row["label"] for row in manifest_rows(manifest)})
    typer.echo(f"manifest: {manifest}\nlabels: {', '.join(names)}")
    if not labels and all(name.isdigit() for name in names):
        typer.secho(f"note: the npz names no labels, so they are {', '.join(names)}; to name them, run again with "
                    f"--labels {','.join(f'name{n}' for n in names)}", err=True)


@app.command()
def train(
    ctx: typer.Context,
    fusion: Annotated[str, typer.Option(help="Fusion model: a VAE (poe, moe, mopoe, concat) or a deterministic autoencoder (ae, stacked_ae, sparse_ae).")] = "poe",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    image_weights: Annotated[Path | None, typer.Option(help="Weights (.safetensors/.pt) for the image network.")] = None,
    text_model: Annotated[Path | None, typer.Option(help="Local Hugging Face model folder for texts.")] = None,
    seed: int = 0,
    augment: Annotated[bool, typer.Option("--augment", help="Also train on stored synthetic cases (diagnosis augment).")] = False,
    preprocessing: Annotated[Path | None, typer.Option(help="JSON file of image preprocessing options for this dataset.")] = None,
    batch_size: Annotated[int, typer.Option(min=2, help="Cases per optimisation step; on a GPU use 1024 or more for large stores.")] = 64,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (one-cycle AdamW); raise it with the batch size.")] = 2e-3,
    image_epochs: Annotated[int, typer.Option(min=0, help="Epochs of the supervised image stage (0: none).")] = 30,
    text_epochs: Annotated[int, typer.Option(min=0, help="Epochs of text-encoder fine-tuning (0: frozen embeddings).")] = 3,
    augmentation: Annotated[Path | None, typer.Option(help='JSON file of image augmentation options, e.g. {"flip_axes": [0, 1]}.')] = None,
    image_members: Annotated[int, typer.Option(min=1, help="Image networks trained by the image stage, as an ensemble (1: one network, a third of the time).")] = 3,
    dataset: Annotated[str | None, typer.Option(help="Data set(s) to train on, comma-separated; needed when the store holds several.")] = None,
    class_weights: Annotated[bool, typer.Option("--class-weights", help="Weight the losses by inverse class frequency (a rare diagnosis gets found more often).")] = False,
    full_objective: Annotated[bool, typer.Option("--full-objective", help="moe / mopoe: decode every mixture component per case and step, not one sampled component (slower).")] = False,
    lexical: Annotated[bool, typer.Option("--lexical/--no-lexical", help="Stack a TF-IDF + logistic-regression reader of the texts with the model on val (--no-lexical: the transformer path alone).")] = True,
    classifier: Annotated[str, typer.Option(help="head: the diagnosis from the fused latent of each case alone; graph: a graph network over the kNN graph of the training cases' latents, which diagnoses a case with its nearest training cases and stores which of them mattered.")] = "head",
) -> None:
    """Train on split=train, select on val, register a model version.

    Stages: the text encoder is fine-tuned on the training texts, the image network is trained supervised with
    augmentation, then the fusion VAE and the diagnosis head are trained on top; every stage selects on val. A
    bag-of-words reader of the texts is fitted on the training texts and stacked with the model on val.
    """
    settings = command_settings(ctx)
    from flows.train import train_flow

    options = json_file(preprocessing)
    augment_options = json_file(augmentation)

    with user_errors(ValueError, FileNotFoundError):  # bad data or settings: say what to fix
        version = train_flow(settings.db_url, str(settings.home), fusion=fusion, epochs=epochs, device=device,
                             image_weights=str(image_weights) if image_weights else None,
                             text_model=str(text_model) if text_model else None, seed=seed, augment=augment,
                             preprocessing=options, batch_size=batch_size, lr=lr, image_epochs=image_epochs,
                             text_epochs=text_epochs, augmentation=augment_options, image_members=image_members,
                             datasets=[d.strip() for d in dataset.split(",") if d.strip()] if dataset else None,
                             class_weights=class_weights, subset_sampling=not full_objective, lexical=lexical,
                             classifier=classifier)
    typer.echo(f"model version {version}")


class TaskRunner(str, Enum):
    """Where ``diagnose`` runs its chunks."""

    local = "local"
    dask = "dask"


@app.command()
def diagnose(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="latest or a model version id.")] = "latest",
    pending: Annotated[bool, typer.Option("--pending/--all", help="Only cases without a prediction from this model, or all.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Cases per chunk; each chunk is claimed and committed on its own.")] = 512,
    workers: Annotated[int, typer.Option(min=0, help="Image-reading DataLoader workers per chunk.")] = 0,
    task_runner: Annotated[TaskRunner, typer.Option(help="local: chunks in this process; dask: chunks on a Dask cluster.")] = TaskRunner.local,
    dask_address: Annotated[str | None, typer.Option(envvar="DIAGNOSIS_DASK_ADDRESS", help="Scheduler of an existing Dask cluster (tcp://host:8786); default a local cluster.")] = None,
    dask_workers: Annotated[int, typer.Option(min=1, help="Worker processes of the local Dask cluster.")] = 2,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision for the text transformer and the diagnosis model (default: bf16 on CUDA, off on the CPU).")] = None,
    compile_model: Annotated[bool, typer.Option("--compile", help="Run the diagnosis model through torch.compile (needs a C++ compiler on the CPU).")] = False,
    dataset: Annotated[str | None, typer.Option(help="Only cases of these data sets (comma-separated; default: all).")] = None,
) -> None:
    """Predict every eligible case and store the results (JSON counts and per-stage seconds on stdout)."""
    settings = command_settings(ctx)
    chosen = [d.strip() for d in dataset.split(",") if d.strip()] if dataset else None
    if pending and task_runner == TaskRunner.local and not _has_pending(settings.db_url, model, chosen):
        typer.echo(json.dumps({"predicted": 0, "failed": 0, "skipped": 0, "seconds": {"total": 0.0}}))
        return  # nothing to do: no flow run, so no Prefect server to start (about 20 s saved)
    from flows.diagnose import diagnose_flow

    with user_errors(LookupError):
        counts = diagnose_flow(settings.db_url, str(settings.home), model=model, pending=pending, device=device,
                               batch_size=batch_size, workers=workers, task_runner=task_runner.value,
                               dask_address=dask_address, dask_workers=dask_workers, amp=amp, compile=compile_model,
                               datasets=chosen)
    typer.echo(json.dumps(counts))


def _has_pending(db_url: str, model: str, datasets: list[str] | None) -> bool:
    """Whether any case awaits a prediction from the model (an unknown model: True, so that the flow says why)."""
    import db

    db.migrate(db_url)
    with db.session_scope(db_url) as session:
        try:
            version = db.get_model_version(session, model)
        except LookupError:
            return True
        chosen = None if datasets is None else [None if d == db.NO_DATASET else d for d in datasets]
        return bool(db.pending_case_ids(session, version.id, limit=1, datasets=chosen))


@app.command()
def augment(
    ctx: typer.Context,
    label: Annotated[str, typer.Option(help="Diagnosis to generate (e.g. a rare one).")],
    n: Annotated[int, typer.Option(min=1, help="Number of synthetic cases.")] = 20,
    model: Annotated[str, typer.Option(help="latest or a model version id.")] = "latest",
    seed: Annotated[int | None, typer.Option(help="Fix the draw (default: fresh samples each call).")] = None,
    generator: Annotated[str, typer.Option(help="vae: the model's per-class latent Gaussians; gan: a conditional GAN on its training latents (trained on first use, then reused).")] = "vae",
    gan_steps: Annotated[int, typer.Option(min=1, help="Training steps of the GAN when the model has none yet.")] = 1500,
) -> None:
    """Generate class-conditional synthetic cases (decoded image + nearest real symptom text), flagged synthetic."""
    settings = command_settings(ctx)
    from flows.augment import augment_flow

    with user_errors(LookupError, ValueError):
        report = augment_flow(settings.db_url, str(settings.home), label=label, n=n, model=model, seed=seed,
                              generator=generator, gan_steps=gan_steps)
    typer.echo(json.dumps(report))


@app.command()
def reconstruct(
    ctx: typer.Context,
    case_id: str,
    model: Annotated[str, typer.Option(help="latest or a model version id.")] = "latest",
) -> None:
    """Decode a case's reconstruction and cross-modal views (text -> image, image -> nearest texts) for the dashboard."""
    settings = command_settings(ctx)
    from flows.reconstruct import reconstruct_flow

    with user_errors(LookupError):
        record = reconstruct_flow(settings.db_url, str(settings.home), case_id, model=model)
    typer.echo(json.dumps(record))


@app.command()
def evaluate(
    ctx: typer.Context,
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "test",
    model: Annotated[str, typer.Option(help="latest or a model version id.")] = "latest",
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the report here.")] = None,
) -> None:
    """Metrics of stored predictions against labels: macro AUC, accuracy, macro-F1, recall, ECE."""
    db_url = migrated_store(ctx)
    from flows.cli.render import metrics_table, print_table
    from flows.scoring import evaluate_model  # no Prefect import: evaluate runs no flow

    with user_errors(LookupError):
        report = evaluate_model(db_url, model, None if split == "all" else split)
    print_table(metrics_table(report))
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))


@app.command()
def cases(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="ingested, rejected, diagnosed or failed.")] = None,
    split: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0: all).")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines (one JSON object per case and line) instead of a table.")] = False,
) -> None:
    """List cases with status, reason, label, split, modalities and predictions (the first 200 unless --limit)."""
    db_url = migrated_store(ctx)
    import db
    from flows.cli.render import cases_table, print_table

    with db.session_scope(db_url) as session:
        rows = db.list_cases(session, status=status, split=split, limit=limit or None)
        total = db.count_cases(session, status=status, split=split) if limit and len(rows) == limit else len(rows)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(dataclasses.asdict(row), default=str))
    else:
        print_table(cases_table(rows, total))
    if total > len(rows):
        typer.secho(f"showing {len(rows):,} of {total:,} cases (use --limit 0 for all)", err=True)


app.command("dashboard")(start.dashboard)
app.command("demo")(start.demo)
app.command("serve")(serve.serve)  # listed last: the long-running entry point of operations


def main() -> None:
    """Console-script entry point: a SIGTERM, SIGINT or SIGHUP exits with 128 + its number, children stopped.

    ``serve`` installs its own handlers for a graceful shutdown of the runner.
    """
    from flows.environment import exit_on_signals

    exit_on_signals()
    app()
