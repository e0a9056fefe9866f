"""``diagnosis bench memory``: peak resident memory of ``diagnose`` as the store grows (a flat line is the target).

The stores are filled from one small trained store (:func:`flows.cli.bench.perf.trained_store`): the cases reuse its
images and texts, so filling costs store writes only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from diagnosis.settings import Settings
from flows.cli.bench.perf import FILL_BATCH, Device, JsonPath, TextModel, Trained, WorkDir, _work_dir, trained_store
from flows.cli.render import emit_report, figures_table

__all__ = ["COMMANDS", "fill_cases", "memory", "pool_embeddings"]


def memory(
    sizes: Annotated[str, typer.Option(help="Comma-separated numbers of cases, one diagnose run each.")] = "1000,10000,100000",
    batch_size: Annotated[int, typer.Option(min=1, help="Cases per diagnose chunk.")] = 512,
    workers: Annotated[int, typer.Option(min=0, help="Image-reading DataLoader workers.")] = 0,
    train_cases: Annotated[int, typer.Option(min=60, help="Generated cases the model is trained on (their files are the pool).")] = 300,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of each training stage of the model used.")] = 1,
    device: Device = "auto",
    text_model: TextModel = None,
    json_path: JsonPath = None,
    work_dir: WorkDir = None,
) -> None:
    """Peak RSS of `diagnosis diagnose` (a subprocess) on stores of each size: memory must not grow with the batch."""
    import db
    from diagnosis.benchmarks.perf import peak_rss_of

    counts = sorted({int(s) for s in sizes.split(",") if s.strip()})
    root = _work_dir(work_dir)
    trained = trained_store(root / "train", train_cases, epochs, text_model, device)
    with db.session_scope(trained.db_url) as session:
        pool = [c for chunk in db.iter_case_inputs(session, batch_size=5000) for c in chunk if c.image_path and c.text]
    vectors = pool_embeddings(trained, [c.text for c in pool])
    results = []
    for n in counts:
        home = root / f"cases-{n}"
        start = time.perf_counter()
        version = fill_cases(home, trained.version, pool, n, vectors)
        fill_s = time.perf_counter() - start
        command = [sys.executable, "-c", "from flows.cli import main; main()", "--home", str(home), "diagnose",
                   "--model", str(version), "--batch-size", str(batch_size), "--workers", str(workers), "--device", device]  # fmt: skip
        run = peak_rss_of(command)  # inherits PREFECT_HOME (see _work_dir) and any PREFECT_API_URL
        if run.returncode != 0:
            typer.secho(f"error: diagnose on {n} cases exited with {run.returncode}:\n{run.stderr}", fg="red", err=True)
            raise typer.Exit(1)
        counts_out = json.loads(run.stdout.strip().splitlines()[-1])
        results.append({"cases": n, "peak_rss_mib": run.peak_rss_mib, "seconds": run.seconds, "fill_s": fill_s,
                        "predicted": counts_out["predicted"], "cases_per_s": counts_out["predicted"] / run.seconds})  # fmt: skip
    ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
    report = {"batch_size": batch_size, "workers": workers, "runs": results, "ratio": ratio, "setup_s": trained.seconds}
    rows = [[f"{r['cases']:,}", f"{r['peak_rss_mib']:.0f}", f"{r['seconds']:.1f}", f"{r['cases_per_s']:.1f}", f"{r['fill_s']:.1f}"]
            for r in results]  # fmt: skip
    caption = f"peak RSS {results[-1]['cases']:,} ÷ {results[0]['cases']:,} cases: {ratio:.2f}"
    emit_report([figures_table(f"Peak memory of diagnose (chunks of {batch_size})", ["cases", "peak RSS MiB", "seconds", "cases/s", "store fill s"],
                  rows, caption)], report, json_path)  # fmt: skip


def pool_embeddings(trained: Trained, texts: list[str]) -> dict[str, Any]:
    """Cache key -> embedding of each pool text (from the training home's cache: training embedded them all)."""
    from diagnosis.classify import load_model
    from flows.common import text_encoder

    spec = load_model(trained.version.checkpoint_path).spec
    encoder = text_encoder(spec.text, trained.home)
    if encoder is None:
        return {}
    unique = list(dict.fromkeys(texts))
    return dict(zip(map(encoder.key, unique), encoder.encode(unique), strict=True))


def fill_cases(home: Path, version: Any, pool: list[Any], n: int, vectors: dict[str, Any]) -> int:  # noqa: ANN401
    """A fresh store under ``home`` with ``n`` cases drawn from ``pool`` (files reused), the model registered and a
    warm text cache (so every size runs under the same conditions). Returns the model version id."""
    import db
    from diagnosis.features import EmbeddingCache

    url = db.default_sqlite_url(home)
    db.migrate(url)
    if vectors:
        EmbeddingCache(Settings(home=home).text_cache_file).put_many(vectors)
    with db.session_scope(url) as session:
        model = db.register_model_version(session, name=version.name, fusion=version.fusion, config=version.config,
                                          label_names=version.label_names, metrics=version.metrics,
                                          checkpoint_path=version.checkpoint_path)  # fmt: skip
    for start in range(0, n, FILL_BATCH):
        rows = []
        for i in range(start, min(n, start + FILL_BATCH)):
            case = pool[i % len(pool)]
            image = db.ImageIn(path=case.image_path, sha256=f"{i:064x}", format="png", shape=(64, 64), spacing=None)
            rows.append(db.CaseIn(f"MEM-{i:07d}", None, case.label, "test", case.text, image))
        with db.session_scope(url) as session:
            db.upsert_cases(session, rows)
    return model


COMMANDS = {"memory": memory}
"""``diagnosis bench`` commands of this module, by name (registered by :mod:`flows.cli.bench`)."""
