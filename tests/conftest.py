"""Test-session set-up: an isolated Prefect home and one Prefect test server for the whole session."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="diagnosis-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ["HF_HUB_OFFLINE"] = "1"
warnings.filterwarnings("ignore", message=".*nvimgcodec.*")
if os.environ.get("PYTEST_XDIST_WORKER"):  # under `pytest -n N`: the cores split between the workers
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    os.environ.setdefault("OMP_NUM_THREADS", _threads)
    os.environ.setdefault("MKL_NUM_THREADS", _threads)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Flow and CLI test files first (the longest: under ``-n``, the short files then fill in beside them instead
    of a long file running alone at the end); ``slow`` tests are opt-in: they run only when ``-m`` names them
    (e.g. ``pytest -m slow``)."""
    items.sort(key=lambda item: 0 if item.path.parent.name == "flows" else 1)  # stable: file order kept otherwise
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow test: run with `-m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A throw-away PostgreSQL 16 server (pgserver) for the session; skips when pgserver is missing."""
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    try:
        yield server
    finally:
        from db import dispose_engines

        dispose_engines()
        server.cleanup()


@pytest.fixture(scope="session")
def pg_database(pg_server: Any) -> Callable[[str], str]:
    """Factory: create a database with the given name on the session's server and return its psycopg2 URL."""

    def create(name: str) -> str:
        pg_server.psql(f"CREATE DATABASE {name};")
        return pg_server.get_uri(name).replace("postgresql://", "postgresql+psycopg2://", 1)

    return create


@pytest.fixture(scope="session")
def pg_url(pg_database: Callable[[str], str]) -> str:
    """A migrated PostgreSQL test database on the session's server (the store tests empty it per test)."""
    from db import migrate

    url = pg_database("diagnosis_test")
    migrate(url)
    return url


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets beside the checkout (``../shared/data``); skips when absent."""
    if not (SHARED_DATA / "pneumoniamnist.npz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with the MiniLM tokenizer, saved as a local Hugging Face folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from diagnosis.features.text import default_text_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(default_text_model_path(), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def sqlite_write_held() -> Callable[[Path], AbstractContextManager[None]]:
    """Hold a write transaction on a new SQLite file (rollback journal) and commit it 0.3 s after entering.

    Code run inside the ``with`` block opens the file while it is locked, as a second process would.
    """
    import sqlite3
    import threading

    @contextmanager
    def held(path: Path) -> Iterator[None]:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("CREATE TABLE other (x)")
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO other VALUES (1)")
        release = threading.Timer(0.3, holder.execute, ("COMMIT",))
        release.start()
        try:
            yield
        finally:
            release.join()
            holder.close()

    return held
