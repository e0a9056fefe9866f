"""The graph classifier: the normalised adjacency, inductive attachment of a new case (the same logits as adding it
to the graph), training over a fusion model, the neighbours that mattered, and its checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.classify import ModelSpec, load_model, predict, save_model
from diagnosis.classify.bank import latent_bank, load_bank
from diagnosis.classify.graph import GraphClassifier, GraphConfig, knn, normalized_adjacency, symmetric_edges
from diagnosis.features import FeatureTable, ImagePreprocessing
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.training import TrainConfig, fit
from diagnosis.training.graph_stage import fit_graph
from diagnosis.training.image_stage import ImageStageConfig

ToyTable = Callable[[int, int], FeatureTable]  # the `toy_table` fixture (tests/diagnosis/conftest.py)


def test_the_normalised_adjacency_is_d_to_the_minus_half_a_plus_i_d_to_the_minus_half() -> None:
    neighbours = torch.tensor([[1], [2], [1], [0]])  # kNN with k = 1: 0->1, 1->2, 2->1, 3->0
    edges = symmetric_edges(neighbours)
    adjacency, degree = normalized_adjacency(edges, 4)
    a = torch.zeros(4, 4)
    for u, v in [(0, 1), (1, 2), (3, 0)]:
        a[u, v] = a[v, u] = 1.0
    a_hat = a + torch.eye(4)
    d = a_hat.sum(1)
    expected = torch.diag(d.rsqrt()) @ a_hat @ torch.diag(d.rsqrt())
    torch.testing.assert_close(adjacency.to_dense(), expected)
    torch.testing.assert_close(degree, d)
    assert edges.shape[1] == 6  # each undirected pair once per direction (1<->2 is found from both ends)


def test_knn_finds_the_most_similar_rows_and_never_the_row_itself() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    index, similarity = knn(bank, bank, 1, exclude_self=True)
    assert index.squeeze(1).tolist() == [1, 0, 3, 2] and bool((similarity < 1.0).all())


def test_attaching_a_new_case_gives_the_logits_of_adding_it_to_the_graph() -> None:
    torch.manual_seed(0)
    n, d, classes, k = 30, 4, 3, 5
    z = torch.randn(n, d)
    graph = GraphClassifier(d + classes, classes, GraphConfig(k=k, hidden=8), n, d).eval()
    x = torch.randn(n, d + classes)
    adjacency, degree = normalized_adjacency(symmetric_edges(knn(z, z, k, exclude_self=True)[0]), n)
    graph.store_nodes(x, z, adjacency, degree)
    new_z, new_x = torch.randn(1, d), torch.randn(1, d + classes)
    attached = graph.attach_logits(new_x, new_z)
    # The same case added as node n of a bigger graph: an edge into it from each of its k nearest nodes (the
    # training nodes keep their rows: attachment is inductive), normalised by its degree k + 1 and theirs.
    dense = torch.zeros(n + 1, n + 1)
    dense[:n, :n] = adjacency.to_dense()
    for u in attached.neighbours[0].tolist():
        dense[n, u] = 1.0 / float((k + 1) * degree[u]) ** 0.5
    dense[n, n] = 1.0 / (k + 1)
    logits, h = graph(torch.cat([x, new_x]), dense.to_sparse())
    torch.testing.assert_close(attached.logits, logits[n:], rtol=1e-5, atol=1e-5)
    assert attached.neighbours[0].tolist() == knn(new_z, z, k)[0][0].tolist()
    c = int(attached.logits.argmax())  # the logit splits exactly into the case's own part and each neighbour's share
    own = (h[n] @ graph.layer2.weight[c]) / (k + 1) + graph.layer2.bias[c] + graph.skip(new_x)[0, c]
    torch.testing.assert_close(own + attached.contributions[0].sum(), attached.logits[0, c], rtol=1e-5, atol=1e-5)
    tables = {name: t for name, t in graph.state_dict().items() if t.ndim == 2 and t.shape[0] == n}
    assert all(t.shape[1] < n for t in tables.values())  # per-node rows only: no (N, N) adjacency is kept


@pytest.fixture(scope="module")
def trained(toy_table: ToyTable):  # noqa: ANN201
    modalities = ModalitySpec(image=ImagePreprocessing(spatial_dims=2, size=16), vectors={"text": 8})
    spec = ModelSpec(("negative", "positive"), modalities,
                     FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=2, image_members=1))  # fmt: skip
    train, val = toy_table(160, 0), toy_table(120, 1)
    model = fit(spec, train, val, TrainConfig(epochs=6, batch_size=32, lr=3e-3, image_stage=ImageStageConfig(epochs=3))).model
    return model, train, val


def test_the_graph_classifier_trains_over_a_fusion_model_and_names_its_neighbours(trained, toy_table: ToyTable,
                                                                                  tmp_path: Path) -> None:  # noqa: ANN001
    model, train, val = trained
    keys = [f"case-{i}" for i in range(len(train))]
    base = predict(model, toy_table(100, 2), "cpu")
    graph, bank = fit_graph(model, train, val, keys, config=GraphConfig(k=5, epochs=60))
    assert len(bank) == len(graph.keys) == int(((train.labels >= 0) & np.stack(list(train.masks.values())).any(0)).sum())
    model.graph = graph
    test = toy_table(100, 2)
    preds = predict(model, test, "cpu")
    keep = (test.labels >= 0) & preds.ok
    accuracy = float((preds.probabilities[keep].argmax(1) == test.labels[keep]).mean())
    assert accuracy >= 0.8, accuracy
    np.testing.assert_allclose(preds.probabilities.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(preds.latents, base.latents)  # the fusion model is unchanged
    row = int(np.flatnonzero(preds.ok)[0])
    shown = preds.neighbours[row]
    assert 1 <= len(shown) <= graph.config.shown and all(n["case_key"] in set(keys) for n in shown)
    assert abs(shown[0]["weight"]) >= abs(shown[-1]["weight"])  # the ones that mattered most first
    empty = int(np.flatnonzero(~preds.ok)[0]) if (~preds.ok).any() else None
    if empty is not None:
        assert preds.neighbours[empty] == []
    save_model(model, tmp_path)
    bank.save(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.graph is not None and load_bank(tmp_path).keys == graph.keys
    np.testing.assert_allclose(predict(loaded, test, "cpu").probabilities, preds.probabilities, rtol=1e-5, atol=1e-5)
    model.graph = None
    assert latent_bank(model, train, keys, "cpu").keys == bank.keys  # the bank of the flows: the same nodes


def test_bench_graph_reports_attachment_cost_without_the_adjacency(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    out = tmp_path / "graph.json"
    result = CliRunner().invoke(app, ["bench", "graph", "--nodes", "300", "--batch", "16", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["nodes"] == 300 and report["attach_one_ms"] > 0 and report["cases_per_second"] > 0
    assert report["adjacency_entries"] >= 300 * (report["k"] + 1)  # self-loops and at least k edges per node
    assert report["attachment_bytes"] == 300 * (32 + 64 + 2 + 1) * 4  # unit latents, X W1, H1 W2, degrees
    assert "Graph classifier at scale" in result.stdout


def test_cases_of_one_patient_are_joined_in_the_graph_and_first_when_attached() -> None:
    from diagnosis.classify.graph import patient_edges

    pairs = patient_edges(["a", "", "a", "b", "a"], cap=10)
    assert {tuple(p) for p in pairs.T.tolist()} == {(0, 2), (0, 4), (2, 4), (2, 0), (4, 0), (4, 2)}
    assert patient_edges(["", "x"], cap=3).shape == (2, 0)  # unknown or single: no edge
    big = patient_edges(["p"] * 50, cap=3)
    assert big.shape[1] == 50 * 3  # bounded degree in a large group
    torch.manual_seed(0)
    n, d, k = 40, 4, 3
    z = torch.randn(n, d)
    patients = tuple("p7" if i in (5, 30) else "" for i in range(n))
    graph = GraphClassifier(d + 2, 2, GraphConfig(k=k, hidden=8), n, d).eval()
    graph.patients = patients
    x = torch.randn(n, d + 2)
    adjacency, degree = normalized_adjacency(symmetric_edges(knn(z, z, k, exclude_self=True)[0],
                                                             patient_edges(patients, k)), n)
    assert float(adjacency.to_dense()[5, 30]) > 0  # the patient's two cases are neighbours in training
    graph.store_nodes(x, z, adjacency, degree)
    far = -z[5:6] - z[30:31]  # a latent far from both of the patient's cases
    plain = graph.attach_logits(torch.randn(1, d + 2), far).neighbours[0].tolist()
    joined = graph.attach_logits(torch.randn(1, d + 2), far, ["p7"]).neighbours[0].tolist()
    assert 5 not in plain and 30 not in plain and set(joined[:2]) == {5, 30}
    unknown = graph.attach_logits(torch.randn(1, d + 2), far, ["someone else"]).neighbours[0].tolist()
    assert unknown == plain
