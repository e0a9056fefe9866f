"""The import graph follows the pipeline: library -> flows -> store -> dashboard, never backwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "diagnosis": {"prefect", "streamlit", "sqlalchemy", "alembic", "db", "flows", "dashboard"},
    "db": {"torch", "monai", "prefect", "streamlit", "diagnosis", "flows", "dashboard"},
    "dashboard": {"torch", "monai", "prefect", "flows", "sqlalchemy", "transformers"},
}


def imported_roots(path: Path) -> set[str]:
    """Top-level module names imported anywhere in a file."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    offending = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {f: mods for f, mods in offending.items() if mods} == {}


def test_dashboard_uses_only_settings_keys_and_image_reading_from_the_library() -> None:
    allowed = {"diagnosis.settings", "diagnosis.keys", "diagnosis.ingest.images", "diagnosis.ingest"}
    for path in (ROOT / "dashboard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("diagnosis"):
                assert node.module in allowed, f"{path.name} imports {node.module}"
