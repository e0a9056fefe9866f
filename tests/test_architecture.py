"""The import graph follows the pipeline: library -> flows -> store -> dashboard, never backwards."""

from __future__ import annotations

import ast
import sys
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


SHARED_WITH_THE_STORE = {"diagnosis.sqlite"}  # library modules the store may import: standard library only


def _library_modules(path: Path) -> set[str]:
    """The ``diagnosis`` modules a file imports (``from diagnosis.a import f`` counts as ``diagnosis.a``)."""
    return {m for m in _imported_modules(path, names=False) if m == "diagnosis" or m.startswith("diagnosis.")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    offending = {}
    for f in files:
        roots = imported_roots(f) & FORBIDDEN[package]
        if package == "db" and "diagnosis" in roots and _library_modules(f) <= SHARED_WITH_THE_STORE | {"diagnosis"}:
            roots -= {"diagnosis"}
        offending[str(f.relative_to(ROOT))] = sorted(roots)
    assert {f: mods for f, mods in offending.items() if mods} == {}


def test_what_the_store_imports_from_the_library_is_standard_library_only() -> None:
    """One SQLite journaling rule for the store and the embedding cache, without the numerical stack in ``db``."""
    assert {m for f in (ROOT / "db").rglob("*.py") for m in _library_modules(f)} <= SHARED_WITH_THE_STORE | {"diagnosis"}
    for module in SHARED_WITH_THE_STORE:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert imported_roots(path) <= set(sys.stdlib_module_names) | {"__future__"}, path.name


def test_dashboard_uses_only_settings_keys_and_image_decoding_from_the_library() -> None:
    allowed = {"diagnosis.settings", "diagnosis.keys", "diagnosis.ingest.formats",  # decoding only, no ingest checks
               "diagnosis.evaluation.metrics"}  # numpy only: the reliability bins the ECE reads
    for path in (ROOT / "dashboard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("diagnosis"):
                assert node.module in allowed, f"{path.name} imports {node.module}"


def _imported_modules(path: Path, names: bool = True) -> set[str]:
    """Every absolute module a file imports (``from a.b import c`` counts as ``a.b``, and with ``names`` also as
    ``a.b.c``, which may be a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | ({f"{node.module}.{alias.name}" for alias in node.names} if names else set())
    return found


def test_command_groups_never_import_the_root_command() -> None:
    """``flows.cli.main`` adds the groups; a group that imported it back would close an import circle."""
    package = ROOT / "flows" / "cli"
    groups = [p for p in sorted(package.rglob("*.py")) if p not in (package / "main.py", package / "__init__.py")]
    assert {str(p.relative_to(package)) for p in groups} >= {"common.py", "users.py", "serve.py", "bench/__init__.py",
                                                             "bench/store.py", "bench/models.py", "bench/perf.py"}
    for path in groups:
        roots = {m for m in _imported_modules(path) if m in ("flows.cli", "flows.cli.main", "flows.cli.app")}
        assert roots == set(), f"{path.relative_to(ROOT)} imports {sorted(roots)}"
    outside = [p.name for p in (ROOT / "flows").glob("*.py") if "typer" in imported_roots(p)]
    assert outside == [], "command line code belongs in flows/cli/"


@pytest.mark.parametrize("stage", ["ingest", "features", "fusion", "classify", "generation", "evaluation"])
def test_inference_stages_never_import_training(stage: str) -> None:
    """Serving reads features, models and checkpoints; none of them may depend on the training package."""
    for path in sorted((ROOT / "diagnosis" / stage).rglob("*.py")):
        training = {m for m in _imported_modules(path) if m == "diagnosis.training" or m.startswith("diagnosis.training.")}
        assert training == set(), f"{path.relative_to(ROOT)} imports {sorted(training)}"


PACKAGES = ("diagnosis", "db", "flows", "dashboard")
STAGES = ("ingest", "synthetic", "features", "fusion", "classify", "generation", "training", "evaluation", "benchmarks")
"""The library's stages in pipeline order: each may import only itself, the stages before it and the shared modules."""
SHARED = {"settings", "keys", "device", "sqlite"}  # diagnosis/*.py beside the stages, usable by every one of them


def _module_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (at any depth of the file, ``import`` and ``from``)."""
    files = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                parts = list(path.relative_to(ROOT).with_suffix("").parts)
                files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str | None:  # the module a dotted name lives in (a name inside a module: that module)
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {owner(alias.name) for alias in node.names if alias.name.split(".")[0] in PACKAGES}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in PACKAGES:
                for alias in node.names:  # ``from package import submodule`` depends on the submodule
                    name = f"{node.module}.{alias.name}"
                    found.add(name if name in files else owner(node.module))
        graph[module] = {m for m in found if m is not None and m != module}
    return graph


def test_no_import_circle_anywhere() -> None:
    graph, circles = _module_graph(), []
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:  # depth first; a module met again on the path closes a circle
        if module in path:
            circles.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for imported in sorted(graph[module]):
            walk(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])
    assert circles == []


def test_library_stages_import_only_earlier_stages() -> None:
    """No arrow from a later pipeline stage back to an earlier one inside ``diagnosis/``."""
    backwards = []
    for module, imported in _module_graph().items():
        parts = module.split(".")
        if parts[0] != "diagnosis" or len(parts) < 2 or parts[1] in SHARED:
            continue
        assert parts[1] in STAGES, f"{module}: a new stage? add it to STAGES in pipeline order"
        for target in imported:
            stage = target.split(".")[1] if target.startswith("diagnosis.") and target.count(".") else None
            if stage in STAGES and STAGES.index(stage) > STAGES.index(parts[1]):
                backwards.append(f"{module} -> {target}")
    assert backwards == []
