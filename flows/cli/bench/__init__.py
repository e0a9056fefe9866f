"""``diagnosis bench``: the benchmark group, assembled from one module per kind of benchmark.

:mod:`~flows.cli.bench.models` (the protocols and the MultiVae side by side), :mod:`~flows.cli.bench.perf` (speed
of the product's own commands), :mod:`~flows.cli.bench.memory` (their memory) and :mod:`~flows.cli.bench.store`
(bulk writes and dashboard reads) each list their commands in ``COMMANDS``; nothing registers itself on import.
"""

from __future__ import annotations

import typer

from flows.cli.bench import memory, models, perf, store

__all__ = ["app"]

app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
for _module in (store, models, perf, memory):
    for _name, _command in _module.COMMANDS.items():
        app.command(_name)(_command)
