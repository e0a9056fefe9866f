"""Terminal rendering of the commands: metrics, case lists and benchmark figures (rich tables, JSON)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

import db

__all__ = ["cases_table", "emit_report", "figures_table", "metrics_table", "print_table"]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def metrics_table(report: dict) -> Table:
    """One table: headline metrics, then recall per diagnosis."""
    table = Table(title=f"Model {report.get('model_version_id')} on split '{report.get('split')}'")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("n", "excluded", "macro_auc", "accuracy", "macro_f1", "ece"):
        if key in report:
            table.add_row(key, _fmt(report[key]))
    for name, recall in report.get("per_class_recall", {}).items():
        table.add_row(f"recall: {name}", _fmt(recall))
    return table


def cases_table(cases: Sequence[db.CaseSummary], total: int | None = None) -> Table:
    """A case list with status, reason, label, split, modalities and the latest prediction; the title says how many
    of ``total`` matching cases are shown."""
    shown = f"{len(cases):,} cases" if total is None or total == len(cases) else f"{len(cases):,} of {total:,} cases"
    table = Table(title=shown)
    for column in ("case_id", "status", "reason", "label", "split", "modalities", "prediction", "per model"):
        table.add_column(column, overflow="fold")
    for c in cases:
        modalities = "+".join(m for m, has in (("image", c.has_image), ("text", c.has_text)) if has) or "-"
        prediction = f"{c.predicted_label} ({c.predicted_probability:.2f})" if c.predicted_label else "-"
        per_model = ", ".join(f"v{k}:{v}" for k, v in sorted(c.predictions_per_model.items())) or "-"
        table.add_row(c.case_key, c.status, c.error or "", c.label or "", c.split or "", modalities, prediction, per_model)
    return table


def print_table(table: Table) -> None:
    """Print to stdout at a width that keeps columns readable in logs."""
    Console(width=160).print(table)


def figures_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None) -> Table:
    """A rich table of figures: the first column left-aligned, the others right-aligned."""
    table = Table(title=title, caption=caption)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def emit_report(tables: Sequence[Table], report: dict[str, Any], json_path: Path | None) -> None:
    """Print a benchmark's tables, then every figure as JSON: on stdout, or into ``json_path``."""
    for table in tables:
        print_table(table)
    if json_path is None:
        typer.echo(json.dumps(report, indent=2))
    else:
        json_path.write_text(json.dumps(report, indent=2))
        typer.echo(f"wrote {json_path}")
