"""``diagnosis bench throughput|train|text|graph``: pipeline performance benchmarks (on the ``bench`` group); ``bench memory``
is in :mod:`flows.cli.bench.memory`.

``bench store`` (bulk writes and dashboard reads) lives with the other store benchmarks in
:mod:`flows.cli.bench.store`.

Each prints readable tables and writes every figure as JSON (``--json``). The data is generated; stores and homes
live in a fresh temporary folder unless ``--work-dir`` names one.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from diagnosis.settings import Settings
from flows.cli.render import emit_report, figures_table

__all__ = ["COMMANDS", "Trained", "graph", "text", "throughput", "train", "trained_store"]

FILL_BATCH = 5000  # cases per upsert_cases call when filling stores

Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
TextModel = Annotated[Path | None, typer.Option(help="Local Hugging Face text model (default: packaged all-MiniLM-L6-v2).")]
JsonPath = Annotated[Path | None, typer.Option("--json", help="Also write every figure here.")]
WorkDir = Annotated[Path | None, typer.Option(help="Keep stores, homes and data in this folder (default: a fresh temp folder).")]


def _work_dir(folder: Path | None) -> Path:
    """The benchmark's folder (created), with Prefect pointed inside it unless the environment chose already.

    Call it before anything imports Prefect (Prefect reads its settings once).
    """
    from flows.environment import configure_prefect

    root = (folder or Path(tempfile.mkdtemp(prefix="diagnosis-bench-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    configure_prefect(Settings.from_env(root))
    return root


@dataclass(frozen=True)
class Trained:
    """A store with generated, ingested cases and a model trained on them."""

    db_url: str
    home: Path
    version: Any  # db.ModelVersionView
    seconds: dict[str, float]


def trained_store(root: Path, cases: int, epochs: int, text_model: Path | None, device: str, seed: int = 0) -> Trained:
    """Generate ``cases`` synthetic cases, ingest them and train a model through the flows, every stage (text, image,
    fusion) for at most ``epochs`` epochs: the benchmarks time diagnosis, which costs the same whatever the training
    length (the model keeps the default architecture, the image ensemble included)."""
    import db
    from diagnosis.synthetic import SyntheticConfig, generate_dataset
    from flows.ingest import ingest_flow
    from flows.train import stage_epochs, train_flow

    home, seconds = root / "home", {}
    start = time.perf_counter()
    manifest = generate_dataset(root / "data", SyntheticConfig(cases=cases, seed=seed))
    seconds["generate"] = time.perf_counter() - start
    url = db.default_sqlite_url(home)
    db.migrate(url)
    start = time.perf_counter()
    ingest_flow(str(manifest), url, home=str(home))
    seconds["ingest"] = time.perf_counter() - start
    start = time.perf_counter()
    version = train_flow(url, str(home), epochs=epochs, device=device, text_model=str(text_model) if text_model else None,
                         seed=seed, **stage_epochs(epochs))  # fmt: skip
    seconds["train"] = time.perf_counter() - start
    with db.session_scope(url) as session:
        view = db.get_model_version(session, str(version))
    return Trained(db_url=url, home=home, version=view, seconds=seconds)


def throughput(
    cases: Annotated[int, typer.Option(min=60, help="Generated cases, all diagnosed.")] = 2000,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of each training stage of the model used (diagnosis speed does not depend on them).")] = 2,
    batch_size: Annotated[int, typer.Option(min=1, help="Cases per diagnose chunk.")] = 512,
    workers: Annotated[int, typer.Option(min=0, help="Image-reading DataLoader workers.")] = 0,
    device: Device = "auto",
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision for the text transformer and the diagnosis model (default: bf16 on CUDA).")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Cold end-to-end / models-alone pairs; the median pair is reported.")] = 3,
    text_model: TextModel = None,
    json_path: JsonPath = None,
    work_dir: WorkDir = None,
) -> None:
    """End-to-end batch diagnosis (files -> features -> fusion -> classify -> store) against the models alone."""
    root = _work_dir(work_dir)  # before Prefect is imported: it reads its settings once
    import db
    from diagnosis.benchmarks.perf import raw_forward
    from diagnosis.classify import load_model
    from diagnosis.device import resolve_device
    from diagnosis.features import build_features
    from flows.common import text_encoder
    from flows.diagnose import diagnose_flow

    trained = trained_store(root, cases, epochs, text_model, device)
    model = str(trained.version.id)
    torch_device = resolve_device(device)
    net = load_model(trained.version.checkpoint_path, torch_device)

    def end_to_end(home: Path, pending: bool) -> dict[str, Any]:
        start = time.perf_counter()
        result = diagnose_flow(trained.db_url, str(home), model=model, pending=pending, batch_size=batch_size,
                               device=device, workers=workers, amp=amp)  # fmt: skip
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "cases_per_s": result["predicted"] / seconds, "predicted": result["predicted"],
                "failed": result["failed"], "stages": result.get("seconds", {})}  # fmt: skip

    # Pairs measured back to back (a cold run in a fresh home, i.e. an empty text cache, then the models alone), so
    # that drift on a shared machine hits both sides of a ratio alike; the median pair is reported.
    pairs: list[tuple[dict[str, Any], dict[str, float]]] = []
    table, texts = None, []
    for i in range(repeats):
        cold = end_to_end(root / f"diagnose-home-{i}", pending=i == 0)  # later passes re-predict every case
        if table is None:
            with db.session_scope(trained.db_url) as session:
                stored = [case for chunk in db.iter_case_inputs(session, batch_size=5000) for case in chunk]
            cache = text_encoder(net.spec.text, root / "diagnose-home-0", str(torch_device), amp)  # its keys
            table = build_features(stored, net.spec.modalities.image, cache, workers=workers, lexical=net.lexical)
            texts = list(dict.fromkeys(c.text for c in stored if c.text and c.text.strip()))
        pairs.append((cold, raw_forward(net, table, texts, net.spec.text, torch_device, amp=amp)))
    ratios = [cold["cases_per_s"] / raw["cases_per_s"] for cold, raw in pairs]
    median = sorted(range(repeats), key=ratios.__getitem__)[repeats // 2]
    runs = {"cold": pairs[median][0], "warm": end_to_end(root / "diagnose-home-0", pending=False)}
    raw = pairs[median][1]
    report = {"cases": len(table), "device": str(torch_device), "batch_size": batch_size, "workers": workers, "amp": amp,
              "torch_threads": _threads(), "text_model": str(text_model or "all-MiniLM-L6-v2"),
              "e2e_cold": runs["cold"], "e2e_warm": runs["warm"], "raw": raw, "ratio": ratios[median],
              "ratio_warm": runs["warm"]["cases_per_s"] / raw["cases_per_s"], "ratios": ratios,
              "pairs": [{"e2e_cold_s": c["seconds"], "raw_s": r["seconds"], "e2e_embed_s": c["stages"].get("embed_text", 0.0)}
                        for c, r in pairs],
              "setup_s": trained.seconds}  # fmt: skip
    emit_report([_throughput_table(report, runs, raw), _stages_table(runs, raw)], report, json_path)


def _throughput_table(report: dict[str, Any], runs: dict[str, dict[str, Any]], raw: dict[str, float]) -> Table:
    """Seconds and cases/s of the cold and warm end-to-end runs and of the models alone, with the ratios."""
    rows = [["end to end, cold text cache", f"{runs['cold']['seconds']:.1f}", f"{runs['cold']['cases_per_s']:.1f}"],
            ["end to end, warm text cache", f"{runs['warm']['seconds']:.1f}", f"{runs['warm']['cases_per_s']:.1f}"],
            ["models alone (text encoder + image net, VAE, classifier)", f"{raw['seconds']:.1f}", f"{raw['cases_per_s']:.1f}"]]  # fmt: skip
    caption = (f"ratio end to end ÷ models alone: {report['ratio']:.2f} (cold, median of "
               f"{', '.join(f'{r:.2f}' for r in report['ratios'])}), {report['ratio_warm']:.2f} (warm)")  # fmt: skip
    title = (f"Batch diagnosis throughput — {report['cases']:,} cases on {report['device']}, chunks of "
             f"{report['batch_size']}, {report['workers']} reader(s)")  # fmt: skip
    return figures_table(title, ["run", "seconds", "cases/s"], rows, caption)


def _stages_table(runs: dict[str, dict[str, Any]], raw: dict[str, float]) -> Table:
    """Seconds per stage of each end-to-end run, beside the models-alone times."""
    from flows.diagnose import STAGES as stages  # imported late: Prefect must read the bench's settings first

    rows = []
    for stage in (*stages, "other (flow, model loading, Prefect)"):
        cells = [stage]
        for run in runs.values():
            inside = sum(run["stages"].get(s, 0.0) for s in stages)
            value = run["seconds"] - inside if stage.startswith("other") else run["stages"].get(stage, 0.0)
            cells.append(f"{value:.2f} ({100 * value / run['seconds']:.0f} %)")
        cells.append({"embed_text": f"{raw['text_s']:.2f}", "model": f"{raw['model_s']:.2f}"}.get(stage, "—"))
        rows.append(cells)
    return figures_table("Seconds per stage", ["stage", *(f"end to end, {name}" for name in runs), "models alone"], rows)


def _threads() -> int:
    """torch's intra-op threads (what the models ran on)."""
    import torch

    return torch.get_num_threads()


@dataclass(frozen=True)
class _FileCase:
    """A generated manifest row with the image path made absolute (what feature building needs)."""

    image_path: str | None
    text: str | None
    label: str | None


def train(
    cases: Annotated[int, typer.Option(min=60, help="Generated training cases.")] = 2000,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs per variant (the first is reported apart).")] = 3,
    fusion: Annotated[str, typer.Option(help="Comma-separated fusion variants (moe-full / mopoe-full: the full mixture objective).")] = "poe,moe,moe-full,mopoe,mopoe-full,concat",
    batch_size: Annotated[int, typer.Option(min=2, help="Cases per optimisation step.")] = 64,
    workers: Annotated[int, typer.Option(min=0, help="Image-reading DataLoader workers.")] = 1,
    device: Device = "auto",
    cpu_baseline: Annotated[bool, typer.Option("--cpu-baseline", help="On a GPU, also train on the CPU and report GPU ÷ CPU.")] = False,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision (default: bf16 autocast on CUDA).")] = None,
    text_model: TextModel = None,
    json_path: JsonPath = None,
    work_dir: WorkDir = None,
) -> None:
    """VAE training speed per fusion variant on the same generated features: seconds per epoch, samples/s."""
    import csv

    from diagnosis.benchmarks.perf import time_training
    from diagnosis.device import resolve_device
    from diagnosis.features import EmbeddingCache, TextEncoder, TextEncoderConfig, build_features
    from diagnosis.fusion import FusionConfig
    from diagnosis.synthetic import SyntheticConfig, generate_dataset
    from diagnosis.training import plan_model

    root = _work_dir(work_dir)
    manifest = generate_dataset(root / "data", SyntheticConfig(cases=cases))
    with manifest.open(encoding="utf-8") as handle:
        rows = [_FileCase(str(manifest.parent / r["image"]) if r["image"] else None, r["text"] or None, r["label"])
                for r in csv.DictReader(handle)]  # fmt: skip
    torch_device = resolve_device(device)
    encoder = TextEncoder(TextEncoderConfig(model_path=str(text_model) if text_model else None), device=torch_device,
                          cache=EmbeddingCache(Settings(home=root).text_cache_file))  # fmt: skip
    spec = plan_model(rows, FusionConfig(), encoder, image_size=32)  # the 32-px grid its README figures were measured on
    start = time.perf_counter()
    table = build_features(rows, spec.modalities.image, encoder, [r.label for r in rows], spec.label_names, workers=workers)
    features_s = time.perf_counter() - start
    variants = [f.strip() for f in fusion.split(",") if f.strip()]
    results = time_training(spec, table, variants, epochs, torch_device, batch_size, amp=amp)
    report: dict[str, Any] = {"cases": len(table), "epochs": epochs, "batch_size": batch_size, "amp": amp,
                              "device": str(torch_device), "torch_threads": _threads(), "features_s": features_s,
                              "results": results}  # fmt: skip
    if cpu_baseline and torch_device.type != "cpu":
        import torch

        cpu = time_training(spec, table, variants, epochs, torch.device("cpu"), batch_size)  # float32, as on a CPU
        report["cpu"] = cpu
        report["speedup"] = {v: cpu[v]["seconds_per_epoch"] / results[v]["seconds_per_epoch"] for v in variants}
    lines = [[v, f"{r['seconds_per_epoch']:.2f}", f"{r['samples_per_s']:.0f}", f"{r['epoch_s'][0]:.2f}",
              f"{report['speedup'][v]:.1f}×" if "speedup" in report else "—"] for v, r in results.items()]  # fmt: skip
    title = f"VAE training — {len(table):,} cases, batch {batch_size}, {epochs} epochs on {torch_device}"
    columns = ["fusion", "s/epoch", "samples/s", "first epoch s", "÷ CPU"]
    emit_report([figures_table(title, columns, lines, "s/epoch: mean over the epochs after the first")], report, json_path)


def text(
    data: Annotated[Path, typer.Option(help="Folder with symptom2disease.csv (its texts are embedded).")] = Path("../shared/data"),
    limit: Annotated[int, typer.Option(min=8, help="Texts embedded per run.")] = 1000,
    repeats: Annotated[int, typer.Option(min=1, help="Runs per runtime (the median is reported).")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass (the encoder's default).")] = 64,
    text_model: TextModel = None,
    json_path: JsonPath = None,
) -> None:
    """The text transformer on the CPU: PyTorch float32 against ONNX Runtime int8, same texts and batch."""
    from diagnosis.benchmarks.p1_data import read_symptom_texts
    from diagnosis.benchmarks.perf import compare_text_runtimes
    from diagnosis.features.text import TextEncoderConfig
    from flows.cli.common import user_errors

    path = data / "symptom2disease.csv"
    with user_errors(FileNotFoundError):
        if not path.is_file():
            raise FileNotFoundError(f"symptom2disease.csv not found in {data}; point --data at the shared data folder")
    texts = [t for _, t in read_symptom_texts(path)][:limit]
    config = TextEncoderConfig(model_path=str(text_model) if text_model else None, batch_size=batch_size)
    report = compare_text_runtimes(texts, config, repeats)
    rows = [[name, f"{r['texts_per_s']:.0f}", f"{r['load_s']:.1f}"] for name, r in report["runtimes"].items()]
    caption = (f"{report['speedup']:.2f}x the texts/s of float32; cosine to float32 min {report['cosine']['min']:.4f}, "
               f"mean {report['cosine']['mean']:.4f}; {_threads()} threads")
    title = f"Text transformer on the CPU — {report['texts']} texts, batch {batch_size}, median of {repeats}"
    emit_report([figures_table(title, ["runtime", "texts/s", "load s"], rows, caption)], report, json_path)


def graph(
    nodes: Annotated[int, typer.Option(min=20, help="Training cases in the graph.")] = 100_000,
    batch: Annotated[int, typer.Option(min=1, help="New cases attached in one batch.")] = 512,
    json_path: JsonPath = None,
) -> None:
    """The graph classifier at scale: build its kNN graph, then time attaching one new case and a batch, and the
    memory attachment reads against the adjacency it never loads."""
    from diagnosis.benchmarks.graph_scale import run_graph_scale

    report = run_graph_scale(nodes=nodes, batch=batch)
    mib = 1024 * 1024
    rows = [("nodes (training cases)", f"{report['nodes']:,}"), ("neighbours per case", str(report["k"])),
            ("graph build (kNN + tables)", f"{report['build_seconds']:.1f} s"),
            ("attach one case", f"{report['attach_one_ms']:.1f} ms"),
            (f"attach {report['batch']} cases", f"{report['attach_batch_ms']:.0f} ms ({report['cases_per_second']:,} cases/s)"),
            ("memory attachment reads", f"{report['attachment_bytes'] / mib:.1f} MiB"),
            ("sparse adjacency (not loaded)", f"{report['adjacency_bytes'] / mib:.1f} MiB")]
    table = Table(title="Graph classifier at scale (random latents, 32-d)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    emit_report([table], report, json_path)


COMMANDS = {"throughput": throughput, "train": train, "text": text, "graph": graph}
"""``diagnosis bench`` commands of this module, by name (registered by :mod:`flows.cli.bench`)."""
