"""What diagnosing with the graph classifier costs at scale: memory of what attachment reads, and its time.

A bank of ``nodes`` random latents stands in for the training cases (the cost does not depend on their values):
the kNN graph is built once, as training does, then new cases are attached inductively, one alone and in a
batch. The report compares the bytes attachment reads (unit latents, two per-node tables, degrees) with the bytes
of the graph's sparse adjacency, which attachment never builds or loads.
"""

from __future__ import annotations

import time

import torch

from diagnosis.classify.graph import GraphClassifier, GraphConfig, knn, normalized_adjacency, symmetric_edges

__all__ = ["run_graph_scale"]


def _best_of(repeats: int, work) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def run_graph_scale(nodes: int = 100_000, latent_dim: int = 32, classes: int = 2, batch: int = 512,
                    repeats: int = 5, seed: int = 0) -> dict:
    """Build a graph of ``nodes`` cases and time attaching new ones.

    Returns:
        ``{"nodes", "k", "build_seconds", "attach_one_ms", "attach_batch_ms", "batch", "cases_per_second",
        "attachment_bytes", "adjacency_bytes", "adjacency_entries"}`` (entries: edges both ways and self-loops).
    """
    torch.manual_seed(seed)
    config = GraphConfig()
    z = torch.randn(nodes, latent_dim)
    log_p = torch.log_softmax(torch.randn(nodes, classes), 1)
    graph = GraphClassifier(latent_dim + classes, classes, config, nodes, latent_dim).eval()
    graph.keys = tuple(f"case-{i}" for i in range(nodes))
    started = time.perf_counter()
    edges = symmetric_edges(knn(z, z, config.k, exclude_self=True)[0])
    adjacency, degree = normalized_adjacency(edges, nodes)
    with torch.no_grad():
        graph.store_nodes(graph.features(z, log_p), z, adjacency, degree)
    build = time.perf_counter() - started
    adjacency_bytes, entries = adjacency.indices().nbytes + adjacency.values().nbytes, adjacency._nnz()
    del adjacency, edges  # what diagnosis holds from here on: the graph's buffers only
    new_z, new_p = torch.randn(batch, latent_dim), torch.log_softmax(torch.randn(batch, classes), 1)
    one = _best_of(repeats, lambda: graph.attach(new_z[:1], new_p[:1]))
    many = _best_of(repeats, lambda: graph.attach(new_z, new_p))
    attachment = sum(t.nbytes for name, t in graph.state_dict().items() if name.startswith(("bank_", "degree")))
    return {"nodes": nodes, "k": config.k, "adjacency_entries": int(entries), "build_seconds": round(build, 2),
            "attach_one_ms": round(one * 1000, 2), "batch": batch, "attach_batch_ms": round(many * 1000, 1),
            "cases_per_second": round(batch / many), "attachment_bytes": int(attachment),
            "adjacency_bytes": int(adjacency_bytes)}
