"""A graph network over cases: a two-layer GCN on the k-nearest-neighbour graph of the fused latents.

Nodes are the labelled training cases of the model's latent bank (:mod:`diagnosis.classify.bank`); a node's features
are its fused representation: the posterior mean beside the fusion model's calibrated log-probabilities. Edges join
each case to its ``k`` most cosine-similar cases (made symmetric) and, with ``same_patient``, to other cases of
the same patient. Each layer is
``H' = D^-1/2 (A + I) D^-1/2 H W`` (Kipf & Welling, 2017), with a ReLU between the two; beside them a linear path
from the case's own features to its logits (``skip``), so that a case's own evidence is not diluted by its ``k``
neighbours' (the self-loop alone gives it ``1 / (k + 1)`` of the aggregate).

**Inductive attachment.** A new case is not added to the graph. It is joined to its ``k`` nearest training nodes (its patient's
own training cases first, with ``same_patient``);
its first layer aggregates their (stored) ``X W1`` rows with its own, its second their (stored) first-layer outputs
``H1 W2``, each normalised by its own degree ``k + 1`` and the neighbour's training degree. Diagnosing a case
therefore needs the bank's unit latents, two small per-node tables and the degrees, never the adjacency; the
cost is one ``(B, N)`` similarity product per batch (chunked), the memory ``N × (D + hidden + C)`` floats: about
40 MB at 100 000 cases. Because the second layer is linear, a neighbour's share of the case's logits is exact:
``Â_vu (H1 W2)_u``; the largest ones are what :meth:`GraphClassifier.attach` reports as the neighbours that
mattered.

Plain torch sparse ops do this: one sparse ``(N, N)`` matrix product per layer during training, dense gathers at
inference. PyTorch Geometric's ``GCNConv`` computes the same training pass, but its inference runs message passing
over an ``edge_index`` that includes the training graph; attaching through stored per-node tables is ours either
way, so the library would add a dependency for one matrix product per layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["GRAPH_META", "GraphAttachment", "GraphClassifier", "GraphConfig", "knn", "load_graph", "log_probabilities",
           "normalized_adjacency", "patient_edges", "save_graph", "symmetric_edges"]

GRAPH_WEIGHTS, GRAPH_META = "graph.safetensors", "graph.json"  # inside a model's checkpoint folder
SIMILARITY_CHUNK = 2048  # query rows per similarity product


@dataclass(frozen=True)
class GraphConfig:
    """Graph construction and training of the GCN."""

    k: int = 10  # neighbours per case
    hidden: int = 64  # width of the first layer
    epochs: int = 300  # full-graph training passes (selection on val)
    lr: float = 1e-2  # Adam learning rate
    weight_decay: float = 5e-4
    dropout: float = 0.3  # on the inputs and the hidden layer during training
    patience: int = 40  # stop after this many epochs without a better val loss
    shown: int = 5  # neighbours that mattered, kept per diagnosed case
    same_patient: bool = True  # also join the cases of one patient (training edges; a new case's neighbours first)
    skip: bool = True  # a linear path from the case's own features to its logits, beside the graph layers


@dataclass(frozen=True)
class GraphAttachment:
    """What attaching new cases to the graph gave.

    Attributes:
        logits: ``(B, C)`` calibrated logits.
        neighbours: ``(B, k)`` bank rows each case was joined to, most similar first.
        contributions: ``(B, k)`` each neighbour's share of the case's logit of its predicted class.
    """

    logits: torch.Tensor
    neighbours: torch.Tensor
    contributions: torch.Tensor


def log_probabilities(probabilities: np.ndarray) -> torch.Tensor:
    """The fusion model's probabilities as the log-probabilities a node's features hold (clipped at 1e-6)."""
    return torch.from_numpy(np.log(np.clip(probabilities, 1e-6, 1.0))).float()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def knn(queries: torch.Tensor, bank: torch.Tensor, k: int, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, k)`` indices and cosine similarities of each query's nearest bank rows, in chunks of queries.

    With ``exclude_self`` the queries are the bank itself and a row is never its own neighbour.
    """
    q, b = _unit(queries.float()), _unit(bank.float())
    k = min(k, len(b) - (1 if exclude_self else 0))
    indices, values = [], []
    for start in range(0, len(q), SIMILARITY_CHUNK):
        similarity = q[start : start + SIMILARITY_CHUNK] @ b.T
        if exclude_self:
            rows = torch.arange(start, min(start + SIMILARITY_CHUNK, len(q)))
            similarity[rows - start, rows] = -float("inf")
        top = similarity.topk(k, dim=1)
        indices.append(top.indices), values.append(top.values)
    return torch.cat(indices), torch.cat(values)


def symmetric_edges(neighbours: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """``(2, E)`` directed edges of the symmetrised kNN graph (``u -> v`` and ``v -> u`` for each kNN pair, once),
    with the ``extra`` pairs ``(2, X)`` (e.g. :func:`patient_edges`) joined the same way."""
    n, k = neighbours.shape
    pairs = torch.stack([torch.arange(n).repeat_interleave(k), neighbours.reshape(-1)])
    if extra is not None and extra.numel():
        pairs = torch.cat([pairs, extra.long()], 1)
    edges = torch.cat([pairs, pairs.flip(0)], 1)
    return torch.unique(edges, dim=1)


def patient_edges(patients: Sequence[str], cap: int) -> torch.Tensor:
    """``(2, X)`` pairs joining the cases of each patient (``""``: unknown, joins nothing): every pair in a small
    group, each case with the ``cap`` cases after it in a larger one (bounded degree)."""
    groups: dict[str, list[int]] = {}
    for row, patient in enumerate(patients):
        if patient:
            groups.setdefault(patient, []).append(row)
    pairs = [(rows[i], rows[(i + j) % len(rows)]) for rows in groups.values() if len(rows) > 1
             for i in range(len(rows)) for j in range(1, min(cap, len(rows) - 1) + 1)]
    return torch.tensor(pairs, dtype=torch.long).T if pairs else torch.zeros(2, 0, dtype=torch.long)


def normalized_adjacency(edges: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``D^-1/2 (A + I) D^-1/2`` as a sparse ``(n, n)`` tensor, and the degrees of ``A + I`` ``(n,)``."""
    loops = torch.arange(n)
    rows = torch.cat([edges[0], loops])
    cols = torch.cat([edges[1], loops])
    degree = torch.bincount(rows, minlength=n).float()
    values = degree[rows].rsqrt() * degree[cols].rsqrt()
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=True).coalesce(), degree


class GraphClassifier(nn.Module):
    """The two-layer GCN and the tables its inductive attachment reads.

    Args:
        in_dim: Node feature width (latent size plus classes).
        classes: Number of diagnoses.
        config: Sizes and training settings.
        nodes: Number of training nodes (the bank's rows).
        latent_dim: Width of the latents that the neighbours are searched in.
    """

    def __init__(self, in_dim: int, classes: int, config: GraphConfig, nodes: int, latent_dim: int) -> None:
        super().__init__()
        self.config = config
        self.layer1 = nn.Linear(in_dim, config.hidden)
        self.layer2 = nn.Linear(config.hidden, classes)
        self.skip = nn.Linear(in_dim, classes, bias=False) if config.skip else None
        self.register_buffer("feature_shift", torch.zeros(in_dim))  # standardisation of node features
        self.register_buffer("feature_scale", torch.ones(in_dim))
        self.register_buffer("bank_unit", torch.zeros(nodes, latent_dim))  # unit latents of the training nodes
        self.register_buffer("bank_xw", torch.zeros(nodes, config.hidden))  # X W1 of the training nodes
        self.register_buffer("bank_hw", torch.zeros(nodes, classes))  # H1 W2 of the training nodes
        self.register_buffer("degree", torch.ones(nodes))  # degrees of A + I in the training graph
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("conformal_threshold", torch.ones(()))
        self.keys: tuple[str, ...] = ()  # case key of each training node (the bank's)
        self.patients: tuple[str, ...] = ()  # patient key of each training node ("": unknown; empty: none known)
        self.trained_epochs, self.best_epoch = 0, 0  # how training went (reports; not saved)

    def features(self, latents: torch.Tensor, log_probabilities: torch.Tensor) -> torch.Tensor:
        """Standardised node features: the latent beside the fusion model's log-probabilities."""
        return (torch.cat([latents.float(), log_probabilities.float()], 1) - self.feature_shift) / self.feature_scale

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-graph pass (training): logits ``(N, C)`` and the first layer's output ``(N, hidden)``."""
        drop = self.config.dropout if self.training else 0.0
        xw = F.linear(F.dropout(x, drop, self.training), self.layer1.weight)
        h = F.relu(torch.sparse.mm(adjacency, xw) + self.layer1.bias)
        hw = F.linear(F.dropout(h, drop, self.training), self.layer2.weight)
        logits = torch.sparse.mm(adjacency, hw) + self.layer2.bias
        return (logits + self.skip(x) if self.skip is not None else logits), h

    @torch.no_grad()
    def store_nodes(self, x: torch.Tensor, latents: torch.Tensor, adjacency: torch.Tensor, degree: torch.Tensor) -> None:
        """Keep what attaching new cases reads: unit latents, ``X W1``, ``H1 W2`` and degrees (eval mode)."""
        self.eval()
        _, h = self(x, adjacency)
        self.bank_unit.copy_(_unit(latents.float()))
        self.bank_xw.copy_(F.linear(x, self.layer1.weight))
        self.bank_hw.copy_(F.linear(h, self.layer2.weight))
        self.degree.copy_(degree)

    def _patient_rows(self) -> dict[str, list[int]]:
        """Training nodes per patient key (built once)."""
        if getattr(self, "_by_patient", None) is None:
            groups: dict[str, list[int]] = {}
            for row, patient in enumerate(self.patients):
                if patient:
                    groups.setdefault(patient, []).append(row)
            self._by_patient = groups
        return self._by_patient

    def attach_logits(self, x: torch.Tensor, latents: torch.Tensor,
                      patients: Sequence[str | None] | None = None) -> GraphAttachment:
        """Uncalibrated logits of new cases joined to their ``k`` nearest training nodes (see the module notes).

        Args:
            x: ``(B, F)`` standardised features of the new cases.
            latents: ``(B, D)`` their latents (where the neighbours are searched).
            patients: ``B`` patient keys (None: unknown); with ``same_patient``, a patient's training cases are
                joined first.
        """
        k = min(self.config.k, len(self.bank_unit))
        similarity = _unit(latents.float()) @ self.bank_unit.T
        if patients is not None and self.config.same_patient and self.patients:
            groups = self._patient_rows()
            for row, patient in enumerate(patients):
                if patient and patient in groups:
                    similarity[row, groups[patient]] = 2.0  # above every cosine: chosen first
        neighbours = similarity.topk(k, dim=1).indices  # (B, k)
        own = 1.0 / (k + 1)  # the new node's degree with its self-loop
        weight = (self.degree[neighbours] * (k + 1)).rsqrt()  # (B, k): Â_vu
        xw = F.linear(x, self.layer1.weight)
        h = F.relu(own * xw + (weight.unsqueeze(-1) * self.bank_xw[neighbours]).sum(1) + self.layer1.bias)
        messages = weight.unsqueeze(-1) * self.bank_hw[neighbours]  # (B, k, C)
        logits = own * F.linear(h, self.layer2.weight) + messages.sum(1) + self.layer2.bias
        if self.skip is not None:
            logits = logits + self.skip(x)
        predicted = logits.argmax(1)
        shares = messages.gather(2, predicted.view(-1, 1, 1).expand(-1, k, 1)).squeeze(2)
        return GraphAttachment(logits, neighbours, shares)

    @torch.no_grad()
    def attach(self, latents: torch.Tensor, log_probabilities: torch.Tensor,
               patients: Sequence[str | None] | None = None) -> GraphAttachment:
        """Calibrated logits of new cases, with the neighbours they were joined to and each one's share, in chunks."""
        self.eval()
        parts = []
        for start in range(0, len(latents), SIMILARITY_CHUNK):
            end = start + SIMILARITY_CHUNK
            z, lp = latents[start:end], log_probabilities[start:end]
            parts.append(self.attach_logits(self.features(z, lp), z, None if patients is None else patients[start:end]))
        return GraphAttachment(torch.cat([p.logits for p in parts]) / self.temperature,
                               torch.cat([p.neighbours for p in parts]), torch.cat([p.contributions for p in parts]))

    def mattered(self, attachment: GraphAttachment, row: int) -> list[dict[str, float | str]]:
        """The neighbours of one attached case with the largest shares of its predicted class's logit."""
        shares = attachment.contributions[row]
        order = torch.argsort(shares.abs(), descending=True)[: self.config.shown]
        return [{"case_key": self.keys[int(attachment.neighbours[row, i])], "weight": round(float(shares[i]), 4)}
                for i in order]


def save_graph(graph: GraphClassifier, directory: str | Path) -> None:
    """Write the graph classifier into a model's checkpoint folder (its node keys are the folder's latent bank)."""
    directory = Path(directory)
    save_file({k: v.detach().cpu().contiguous() for k, v in graph.state_dict().items()}, str(directory / GRAPH_WEIGHTS))
    meta = {"config": asdict(graph.config), "in_dim": graph.layer1.in_features, "classes": graph.layer2.out_features,
            "nodes": len(graph.bank_unit), "latent_dim": graph.bank_unit.shape[1]}
    (directory / GRAPH_META).write_text(json.dumps(meta, indent=2))


def load_graph(directory: str | Path, keys: tuple[str, ...], device: torch.device | str = "cpu",
               patients: tuple[str, ...] = ()) -> GraphClassifier | None:
    """The graph classifier saved in ``directory`` (None when the model has none).

    Raises:
        ValueError: The saved graph's node count does not match the bank's keys.
    """
    directory = Path(directory)
    if not (directory / GRAPH_META).is_file():
        return None
    meta = json.loads((directory / GRAPH_META).read_text())
    if int(meta["nodes"]) != len(keys):
        raise ValueError(f"{directory}: the graph has {meta['nodes']} nodes but the latent bank {len(keys)} cases")
    graph = GraphClassifier(int(meta["in_dim"]), int(meta["classes"]), GraphConfig(**meta["config"]), int(meta["nodes"]),
                            int(meta["latent_dim"]))
    graph.load_state_dict(load_file(str(directory / GRAPH_WEIGHTS)))
    graph.keys, graph.patients = keys, patients
    return graph.to(device).eval()
