"""``diagnosis bench p1|p2|p3|p5|multivae``: the protocols of ``shared/benchmarks.md`` and the MultiVae side by side."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from flows.cli.render import emit_report

__all__ = ["COMMANDS", "multivae", "p1", "p1_table", "p2", "p2_table", "p3", "p3_table", "p5", "p5_table"]

DATA = Path("../shared/data")  # the shared data folder beside a checkout


def p1_table(report: dict) -> Table:
    """One row per fusion variant and mode."""
    table = Table(title="P1 — PneumoniaMNIST × Symptom2Disease, test split")
    for column in ("model", "mode", "AUC", "accuracy", "macro-F1", "ECE", "val ECE", "recall normal", "recall pneumonia",
                   "s/epoch"):
        table.add_column(column, justify="right" if column not in ("model", "mode") else "left")
    for fusion, result in report["results"].items():
        for mode, m in result["modes"].items():
            table.add_row(fusion, mode, f"{m['auc']:.4f}", f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", f"{m['ece']:.4f}",
                          f"{m['val_ece']:.4f}", f"{m['recall']['normal']:.3f}", f"{m['recall']['pneumonia']:.3f}",
                          "—" if result["seconds_per_epoch"] is None else f"{result['seconds_per_epoch']:.1f}")
    captions = [report["prevalence"]["note"]] if report.get("prevalence", {}).get("note") else []
    if report["config"].get("prior") is not None:
        captions.append(f"test probabilities shifted to a pneumonia prevalence of {report['config']['prior']:.3f}")
    table.caption = "; ".join(captions) or None
    return table


def p1(
    data: Annotated[Path, typer.Option(help="Folder with pneumoniamnist.npz and symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-p1.json"),
    fusion: Annotated[Optional[str], typer.Option(help="Comma-separated rows: cnn, poe, moe, mopoe, concat, ae, stacked_ae, sparse_ae, graph (the graph classifier over poe), late, attention, mmae (default: cnn,poe).")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs per fusion model.")] = 30,
    image_epochs: Annotated[int, typer.Option(min=0, help="Epochs of the supervised image stage (0: none).")] = 30,
    text_epochs: Annotated[int, typer.Option(min=0, help="Epochs of text fine-tuning (0: frozen embeddings).")] = 3,
    image_members: Annotated[int, typer.Option(min=1, help="Image networks trained by the image stage (an ensemble).")] = 3,
    prior: Annotated[Optional[float], typer.Option(help="Known deployment prevalence of pneumonia: test probabilities are shifted from val's to it.")] = None,
    train_limit: Annotated[Optional[int], typer.Option(help="Train on a random subset of N cases (smoke runs).")] = None,
    lexical: Annotated[bool, typer.Option("--lexical/--no-lexical", help="Stack the lexical reader of the texts on val, as `diagnosis train` does.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
) -> None:
    """P1: train the image encoder and each fusion variant on the paired data; score image / text / fused /
    fused_missing50 on test (the cnn row: the image encoder alone, image mode)."""
    from diagnosis.benchmarks import P1Config, run_p1
    from diagnosis.benchmarks.p1 import estimate_seconds
    from diagnosis.device import resolve_device
    from flows.cli.common import user_errors

    chosen = {"fusions": tuple(f.strip() for f in fusion.split(",") if f.strip())} if fusion else {}
    with user_errors(ValueError):
        config = P1Config(epochs=epochs, image_epochs=image_epochs, text_epochs=text_epochs, train_limit=train_limit,
                          prior=prior, image_members=image_members, lexical=lexical, **chosen)  # fmt: skip
    torch_device = resolve_device(device)
    tables, lexical = _tables(data, config, home, rare=False, device=torch_device,
                              estimate=lambda n, texts: estimate_seconds(config, n, texts))  # fmt: skip
    report = run_p1(tables, config, torch_device, on_epoch=_progress, lexical=lexical)
    emit_report([p1_table(report)], report, json_path)


_STARTED = [time.perf_counter()]  # the running command's start (progress lines show the elapsed time)


def _progress(part: str, record: dict) -> None:
    """One stderr line per epoch of any stage or model, with the elapsed time."""
    from diagnosis.training.stage_result import epoch_figures  # imported late: torch loads with the benchmark only

    stage = f" ({record['stage']} stage)" if record.get("stage") and record["stage"] != "fusion" else ""
    elapsed = (time.perf_counter() - _STARTED[0]) / 60
    typer.echo(f"[{elapsed:5.1f} min] {part}{stage} {epoch_figures(record)}", err=True)


def _cache(home: Path | None):  # noqa: ANN202
    """The text-embedding cache of ``home`` (default: ``DIAGNOSIS_HOME`` or the per-user folder)."""
    from diagnosis.features import EmbeddingCache
    from diagnosis.settings import Settings

    settings = Settings.from_env(home or os.environ.get("DIAGNOSIS_HOME"))
    return EmbeddingCache(settings.text_cache_file)


def _announce(parts: dict[str, float]) -> None:
    """The estimate printed before training starts."""
    total = sum(parts.values()) / 60
    detail = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in parts.items() if seconds > 0)
    typer.echo(f"estimate: at most ~{total:.0f} min on 2 CPU cores ({detail} min); early stopping usually ends sooner",
               err=True)


def _tables(data: Path, config, home: Path | None, rare: bool, device=None, estimate=None) -> tuple:  # noqa: ANN001
    """P1 (or P2's rare-normal) feature tables and the lexical reader of their train texts (None when off); a missing
    data folder ends the command with a clear error."""
    from diagnosis.benchmarks import load_p1, p1_tables, p2_data
    from diagnosis.benchmarks.p1 import limit_train, p1_lexical
    from diagnosis.benchmarks.text_path import benchmark_text_encoder
    from diagnosis.features import ImagePreprocessing
    from flows.cli.common import user_errors

    _STARTED[0] = time.perf_counter()
    with user_errors(FileNotFoundError):
        paired = limit_train(p2_data(load_p1(data)) if rare else load_p1(data), config.train_limit)
    train, val = paired.splits["train"], paired.splits["val"]
    if estimate is not None:
        _announce(estimate(len(train.labels), len(set(train.texts))))
    with tempfile.TemporaryDirectory(prefix="diagnosis-bench-text-") as work:
        encoder, _ = benchmark_text_encoder(train.texts, train.labels.tolist(), val.texts, val.labels.tolist(), 2, work,
                                            config.text_epochs, seed=config.seed, device=device or "cpu",
                                            cache=_cache(home), on_epoch=lambda r: _progress("text stage", r))
        image = ImagePreprocessing(spatial_dims=2, size=config.image_size)
        lexical = p1_lexical(paired, config)
        return p1_tables(paired, encoder, image, lexical=lexical), lexical  # type: ignore[arg-type]


def p2_table(report: dict) -> Table:
    """One row per way of training."""
    table = Table(title=f"P2 — rare normal class ({report['fusion']}), test split, fused")
    for column in ("way", "recall normal", "macro-F1", "AUC", "recall pneumonia", "seconds"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for way, m in report["results"].items():
        table.add_row(way, f"{m['recall']['normal']:.3f}", f"{m['macro_f1']:.4f}", f"{m['auc']:.4f}",
                      f"{m['recall']['pneumonia']:.3f}", f"{m['seconds']:.0f}")
    return table


def p2(
    data: Annotated[Path, typer.Option(help="Folder with pneumoniamnist.npz and symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-p2.json"),
    fusion: Annotated[str, typer.Option(help="Fusion variant.")] = "poe",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    image_epochs: Annotated[int, typer.Option(min=0, help="Epochs of the supervised image stage (0: none).")] = 30,
    text_epochs: Annotated[int, typer.Option(min=0, help="Epochs of text fine-tuning (0: frozen embeddings).")] = 3,
    image_members: Annotated[int, typer.Option(min=1, help="Image networks trained by the image stage (an ensemble).")] = 3,
    train_limit: Annotated[Optional[int], typer.Option(help="Train on a random subset of N cases (smoke runs).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
) -> None:
    """P2: rare normal class; plain, class_weights, vae_augment, vae_augment+class_weights on the test split."""
    from diagnosis.benchmarks import P1Config, run_p2
    from diagnosis.device import resolve_device

    config = P1Config(fusions=(fusion,), epochs=epochs, image_epochs=image_epochs, text_epochs=text_epochs,
                      train_limit=train_limit, image_members=image_members)  # fmt: skip
    torch_device = resolve_device(device)
    tables, lexical = _tables(data, config, home, rare=True, device=torch_device)
    report = run_p2(tables, config, torch_device, fusion=fusion, lexical=lexical)
    emit_report([p2_table(report)], report, json_path)


def p5_table(report: dict) -> Table:
    """One row per way (means over seeds), the generators' in-class shares in the caption."""
    seeds = len(report["config"]["seeds"])
    table = Table(title=f"P5 — which generator helps the rare normal class ({report['config']['fusion']}), test split, "
                        f"fused, mean of {seeds} seed(s)")
    for column in ("way", "recall normal", "macro-F1", "AUC", "recall pneumonia", "seconds"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for way, m in report["results"].items():
        sd = m["sd"]
        table.add_row(way, f"{m['recall']['normal']:.3f} ± {sd['recall']['normal']:.3f}",
                      f"{m['macro_f1']:.4f} ± {sd['macro_f1']:.4f}", f"{m['auc']:.4f} ± {sd['auc']:.4f}",
                      f"{m['recall']['pneumonia']:.3f}", f"{m['seconds']:.0f}")
    g = report["generators"]
    shares = "; ".join(f"{kind}: {v['in_class']:.3f} (" + ", ".join(f"{k} {s:.3f}" for k, s in v["per_class"].items()) + ")"
                       for kind, v in g.items())
    diversity = ", ".join(f"{k} {v:.2f}" for k, v in g["gan"]["diversity"].items())
    collapsed = ", ".join(g["gan"]["collapsed"]) or "none"
    table.caption = (f"seconds: a fit (the first seed's plain fit includes the image stage) or an augmentation's "
                     f"rebalancing, mean over seeds; GAN training {g['gan']['seconds']:.0f} s each; share of decoded "
                     f"samples an independent classifier (test accuracy {report['checker']['test_accuracy']:.3f}) "
                     f"assigns to the intended class — {shares}; GAN sample diversity {diversity}; collapsed: {collapsed}")
    return table


def p5(
    data: Annotated[Path, typer.Option(help="Folder with pneumoniamnist.npz and symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-p5.json"),
    fusion: Annotated[str, typer.Option(help="Fusion variant whose latent both generators sample.")] = "poe",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds: figures are their mean.")] = "0,1,2",
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs per fusion model.")] = 10,
    image_epochs: Annotated[int, typer.Option(min=1, help="Epochs of the supervised image stage (trained once, shared by the seeds).")] = 12,
    text_epochs: Annotated[int, typer.Option(min=0, help="Epochs of text fine-tuning (0: frozen embeddings).")] = 3,
    gan_steps: Annotated[int, typer.Option(min=1, help="Training steps of each latent GAN.")] = 1500,
    train_limit: Annotated[Optional[int], typer.Option(help="Train on a random subset of N cases (smoke runs).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
) -> None:
    """P5: P2's rare normal class; plain, class weights, VAE and GAN augmentation (alone and with class weights),
    and the share of each generator's samples an independent classifier puts in the intended class."""
    from diagnosis.benchmarks import P1Config, P5Config, run_p5
    from diagnosis.benchmarks.p5 import estimate_p5_seconds
    from diagnosis.device import resolve_device
    from flows.cli.common import user_errors

    with user_errors(ValueError):
        chosen = tuple(int(x) for x in seeds.split(",") if x.strip())
        if not chosen:
            raise ValueError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    config = P5Config(seeds=chosen, fusion=fusion, epochs=epochs, image_epochs=image_epochs, text_epochs=text_epochs,
                      gan_steps=gan_steps, train_limit=train_limit)
    torch_device = resolve_device(device)
    tables, lexical = _tables(data, P1Config(text_epochs=text_epochs, train_limit=train_limit), home, rare=True,
                              device=torch_device, estimate=lambda n, texts: estimate_p5_seconds(config, n, texts))
    report = run_p5(tables, config, torch_device, lexical=lexical, on_epoch=_progress)
    emit_report([p5_table(report)], report, json_path)


def multivae(
    data: Annotated[Path, typer.Option(help="Folder with pneumoniamnist.npz and symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-multivae.json"),
    python: Annotated[Path, typer.Option(help="Python of the MultiVae environment (.ci/multivae-env builds it).")] = Path(".venv-multivae/bin/python"),
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option(min=2)] = 128,
    latent_dim: Annotated[int, typer.Option(min=2)] = 32,
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
    ours_only: Annotated[bool, typer.Option("--ours-only", help="Skip MultiVae: ours with one sampled subset per case against ours with the full objective.")] = False,
) -> None:
    """Our MoPoE against MultiVae's MoPoE: same P1 split, networks, latent size, batch size and epochs; ours is
    timed with one sampled subset per case (the default) and with the full objective."""
    from diagnosis.benchmarks import P1Config
    from diagnosis.benchmarks.peer import run_peer
    from diagnosis.device import resolve_device
    from flows.cli.common import user_errors

    if not python.is_file() and not ours_only:
        typer.secho(f"error: no MultiVae environment at {python}; build it with `bash .ci/multivae-env`, or pass "
                    "--ours-only (ours, sampled against the full objective)", fg="red", err=True)
        raise typer.Exit(1)
    tables = _tables(data, P1Config(text_epochs=0), home, rare=False)  # the peers share frozen text features
    with user_errors(RuntimeError):
        report = run_peer(tables, None if ours_only else str(python), latent_dim, batch_size, epochs,
                          resolve_device("auto"))
    table = Table(title=f"MoPoE side by side — P1 train split, {epochs} epochs, batch {batch_size}, latent {latent_dim}")
    for column in ("implementation", "seconds / epoch", "latent logistic-regression test accuracy"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    rows = [("this project (one sampled subset per case)", "ours"), ("this project, full objective", "ours_full"),
            ("MultiVae", "multivae")]
    for name, key in rows:
        if key in report:
            table.add_row(name, f"{report[key]['seconds_per_epoch']:.1f}", f"{report[key]['accuracy']:.4f}")
    ratios = [f"sampled / full {report['sampled_over_full']:.2f}"]
    if "seconds_ratio" in report:
        ratios += [f"ours / MultiVae {report['seconds_ratio']:.2f}", f"full / MultiVae {report['full_seconds_ratio']:.2f}"]
    table.caption = "seconds per epoch: " + ", ".join(ratios)
    emit_report([table], report, json_path)


def p3_table(report: dict) -> Table:
    """Product against the baselines on the P3 test split."""
    table = Table(title=f"P3 — Symptom2Disease, text only, test split ({report['sizes']['test']} texts)")
    for column in ("way", "macro AUC", "accuracy", "macro-F1", "seconds"):
        table.add_column(column, justify="left" if column == "way" else "right")
    def row(way: str, m: dict) -> None:
        table.add_row(way, f"{m['auc']:.4f}", f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}",
                      f"{m['seconds']:.0f}" if "seconds" in m else "—")

    for way, m in report["results"].items():
        runs = m.get("runs", [])
        row(f"{way} (mean of {len(runs)} seeds)" if len(runs) > 1 else way, m)
        if "without_lexical" in m:
            row(f"{way}, the same models without the lexical reader", m["without_lexical"])
        if len(runs) > 1:
            for run in runs:
                row(f"  seed {run['seed']}", run)
    d = report["differences"]
    table.caption = (f"product − TF-IDF + LR: AUC {d['auc']:+.4f}, accuracy {d['accuracy']:+.4f}, macro-F1 {d['macro_f1']:+.4f}"
                     f"; lowest product accuracy over seeds {report['results']['product']['min_accuracy']:.4f}")
    return table


def p3(
    data: Annotated[Path, typer.Option(help="Folder with symptom2disease.csv.")] = DATA,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write every figure.")] = Path("bench-p3.json"),
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs of the fusion model.")] = 30,
    text_epochs: Annotated[int, typer.Option(min=0, help="Epochs of text fine-tuning (0: frozen embeddings).")] = 3,
    train_limit: Annotated[Optional[int], typer.Option(help="Train on a random subset of N texts (smoke runs).")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds: one product run each, figures their mean.")] = "0,1,2",
    lexical: Annotated[bool, typer.Option("--lexical/--no-lexical", help="Stack the lexical reader of the texts on val, as `diagnosis train` does.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    home: Annotated[Optional[Path], typer.Option(help="Home for the text-embedding cache.")] = None,
) -> None:
    """P3: the product's text path (fine-tuned encoder + fusion model, text only) against TF-IDF + LR, same split."""
    from diagnosis.benchmarks.p3 import P3Config, load_p3, run_p3
    from diagnosis.device import resolve_device
    from diagnosis.training.text_stage import SECONDS_PER_TEXT_EPOCH
    from flows.cli.common import user_errors

    _STARTED[0] = time.perf_counter()
    with user_errors(ValueError):
        chosen = tuple(int(x) for x in seeds.split(",") if x.strip())
        if not chosen:
            raise ValueError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    config = P3Config(epochs=epochs, text_epochs=text_epochs, train_limit=train_limit, lexical=lexical, seeds=chosen)
    with user_errors(FileNotFoundError):
        split = load_p3(data, train_limit)
    n = len(split.splits["train"].texts)
    _announce({"text stage": SECONDS_PER_TEXT_EPOCH * n * text_epochs * len(chosen),
               "fusion model": 0.01 * n * epochs * len(chosen), "embeddings and baselines": 60.0})
    with tempfile.TemporaryDirectory(prefix="diagnosis-bench-text-") as work:
        report = run_p3(split, config, resolve_device(device), work, cache=_cache(home), on_epoch=_progress)
    emit_report([p3_table(report)], report, json_path)


COMMANDS = {"p1": p1, "p2": p2, "multivae": multivae, "p3": p3, "p5": p5}
"""``diagnosis bench`` commands of this module, by name (registered by :mod:`flows.cli.bench`)."""
