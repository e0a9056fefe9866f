"""Terminal rendering of metrics and case lists (rich tables)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

import db

__all__ = ["cases_table", "metrics_table"]


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


def cases_table(cases: Sequence[db.CaseSummary]) -> Table:
    """A case list with status, reason, label, split, modalities and the latest prediction."""
    table = Table(title=f"{len(cases)} cases")
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
