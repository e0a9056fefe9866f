"""``diagnosis bench p1|p2``: the protocols of ``shared/benchmarks.md`` (registered on the ``bench`` command group)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from flows.bench_cli import app
from flows.render import emit_report

__all__ = ["multivae", "p1", "p1_table", "p2", "p2_table"]

DATA = Path("../shared/data")  # the shared data folder beside a checkout


def p1_table(report: dict) -> Table:
    """One row per fusion variant and mode."""
    table = Table(title="P1 — PneumoniaMNIST × Symptom2Disease, test split")
    for column in ("fusion", "mode", "AUC", "accuracy", "macro-F1", "ECE", "recall normal", "recall pneumonia", "s/epoch"):
        table.add_column(column, justify="right" if column not in ("fusion", "mode") else "left")
    for fusion, result in report["results"].items():
        for mode, m in result["modes"].items():
            table.add_row(fusion, mode, f"{m['auc']:.4f}", f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", f"{m['ece']:.4f}",
                          f"{m['recall']['normal']:.3f}", f"{m['recall']['pneumonia']:.3f}",
                          "—" if result["seconds_per_epoch"] is None else f"{result['seconds_per_epoch']:.1f}")
    return table


@app.command("p1")
def p1(
    data: Annotated[Path, typer.Option(help="Folder with pneumoniamnist.npz and symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-p1.json"),
    fusion: Annotated[Optional[str], typer.Option(help="Comma-separated variants and baselines (default: all).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    train_limit: Annotated[Optional[int], typer.Option(help="Train on a random subset of N cases (smoke runs).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
) -> None:
    """P1: train each fusion variant on the paired data, score image / text / fused / fused_missing50 on test."""
    from diagnosis.benchmarks import P1Config, run_p1
    from diagnosis.device import resolve_device

    chosen = {"fusions": tuple(fusion.split(","))} if fusion else {}  # default: every variant and baseline
    config = P1Config(epochs=epochs, train_limit=train_limit, **chosen)
    report = run_p1(_tables(data, config, home, rare=False), config, resolve_device(device), on_epoch=_progress)
    emit_report([p1_table(report)], report, json_path)


def _progress(fusion: str, record: dict) -> None:
    """One stderr line per epoch."""
    typer.echo(f"{fusion} epoch {record['epoch']}: train loss {record['train_loss']:.1f}, val loss {record.get('val_loss', float('nan')):.3f}", err=True)


def _tables(data: Path, config, home: Path | None, rare: bool) -> dict:  # noqa: ANN001
    """P1 (or P2's rare-normal) feature tables; a missing data folder ends the command with a clear error."""
    from diagnosis.benchmarks import load_p1, p1_tables, p2_data
    from diagnosis.features import EmbeddingCache, ImagePreprocessing, TextEncoder
    from diagnosis.settings import Settings
    from flows.cli import user_errors

    settings = Settings.from_env(home or os.environ.get("DIAGNOSIS_HOME"))
    encoder = TextEncoder(cache=EmbeddingCache(settings.cache_dir / "text_embeddings.sqlite"))
    with user_errors(FileNotFoundError):
        paired = load_p1(data)
    image = ImagePreprocessing(spatial_dims=2, size=config.image_size)
    return p1_tables(p2_data(paired) if rare else paired, encoder, image, config.train_limit)


def p2_table(report: dict) -> Table:
    """One row per way of training."""
    table = Table(title=f"P2 — rare normal class ({report['fusion']}), test split, fused")
    for column in ("way", "recall normal", "macro-F1", "AUC", "recall pneumonia", "seconds"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for way, m in report["results"].items():
        table.add_row(way, f"{m['recall']['normal']:.3f}", f"{m['macro_f1']:.4f}", f"{m['auc']:.4f}",
                      f"{m['recall']['pneumonia']:.3f}", f"{m['seconds']:.0f}")
    return table


@app.command("p2")
def p2(
    data: Annotated[Path, typer.Option(help="Folder with pneumoniamnist.npz and symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-p2.json"),
    fusion: Annotated[str, typer.Option(help="Fusion variant.")] = "poe",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    train_limit: Annotated[Optional[int], typer.Option(help="Train on a random subset of N cases (smoke runs).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
) -> None:
    """P2: rare normal class; plain, class_weights, vae_augment, vae_augment+class_weights on the test split."""
    from diagnosis.benchmarks import P1Config, run_p2
    from diagnosis.device import resolve_device

    config = P1Config(fusions=(fusion,), epochs=epochs, train_limit=train_limit)
    report = run_p2(_tables(data, config, home, rare=True), config, resolve_device(device), fusion=fusion)
    emit_report([p2_table(report)], report, json_path)


@app.command("multivae")
def multivae(
    data: Annotated[Path, typer.Option(help="Folder with pneumoniamnist.npz and symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-multivae.json"),
    python: Annotated[Path, typer.Option(help="Python of the MultiVae environment (.ci/multivae-env builds it).")] = Path(".venv-multivae/bin/python"),
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option(min=2)] = 128,
    latent_dim: Annotated[int, typer.Option(min=2)] = 32,
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
) -> None:
    """Our MoPoE against MultiVae's MoPoE: same P1 split, networks, latent size, batch size and epochs."""
    from diagnosis.benchmarks import P1Config
    from diagnosis.benchmarks.peer import run_peer
    from diagnosis.device import resolve_device
    from flows.cli import user_errors

    if not python.is_file():
        typer.secho(f"error: no MultiVae environment at {python}; build it with `bash .ci/multivae-env`", fg="red", err=True)
        raise typer.Exit(1)
    tables = _tables(data, P1Config(), home, rare=False)
    with user_errors(RuntimeError):
        report = run_peer(tables, str(python), latent_dim, batch_size, epochs, resolve_device("auto"))
    table = Table(title=f"MoPoE side by side — P1 train split, {epochs} epochs, batch {batch_size}, latent {latent_dim}")
    for column in ("implementation", "seconds / epoch", "latent logistic-regression test accuracy"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    for name, key in (("this project", "ours"), ("MultiVae", "multivae")):
        table.add_row(name, f"{report[key]['seconds_per_epoch']:.1f}", f"{report[key]['accuracy']:.4f}")
    table.caption = f"seconds per epoch, ours / MultiVae: {report['seconds_ratio']:.2f}"
    emit_report([table], report, json_path)
