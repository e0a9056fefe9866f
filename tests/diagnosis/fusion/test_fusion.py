"""Fusion stage: product of experts, masks, shapes and gradients of the PoE VAE."""

from __future__ import annotations

import pytest
import torch

from diagnosis.features import ImagePreprocessing
from diagnosis.fusion import (
    FUSIONS,
    FusionConfig,
    Gaussian,
    ModalitySpec,
    build_fusion,
    kl_to_standard_normal,
    mixture_moments,
    product_of_experts,
)

EXPECTED_TERMS = {
    "poe": ["joint", "image", "text"],
    "moe": ["image", "text", "joint"],
    "mopoe": ["image", "text", "image+text", "joint"],
    "concat": ["joint", "image", "text"],
    "ae": ["joint", "image", "text"],  # the deterministic autoencoders reconstruct from the same subsets
    "stacked_ae": ["joint", "image", "text"],
    "sparse_ae": ["joint", "image", "text"],
}


def _vae(dims: int = 2, fusion: str = "poe"):  # noqa: ANN202
    spec = ModalitySpec(image=ImagePreprocessing(spatial_dims=dims, size=16), vectors={"text": 12})
    return build_fusion(spec, FusionConfig(fusion=fusion, latent_dim=6, feature_dim=16))


def _batch(dims: int = 2, b: int = 4) -> tuple[dict, dict]:
    inputs = {"image": torch.rand(b, 1, *(16,) * dims), "text": torch.randn(b, 12)}
    masks = {"image": torch.tensor([True, True, False, True]), "text": torch.tensor([True, False, True, True])}
    return inputs, masks


def test_product_of_experts_matches_closed_form() -> None:
    a = Gaussian(torch.tensor([[1.0]]), torch.log(torch.tensor([[0.5]])))  # precision 2
    b = Gaussian(torch.tensor([[4.0]]), torch.log(torch.tensor([[1.0]])))  # precision 1
    q = product_of_experts([a, b], [torch.tensor([True]), torch.tensor([True])])
    # prior precision 1 at mean 0: total precision 4, mean (2*1 + 1*4) / 4
    assert torch.allclose(q.mu, torch.tensor([[1.5]])) and torch.allclose(q.logvar.exp(), torch.tensor([[0.25]]))
    only_a = product_of_experts([a, b], [torch.tensor([True]), torch.tensor([False])])
    assert torch.allclose(only_a.mu, torch.tensor([[2.0 / 3.0]]))
    none = product_of_experts([a, b], [torch.tensor([False]), torch.tensor([False])])
    assert torch.allclose(none.mu, torch.zeros(1, 1)) and torch.allclose(kl_to_standard_normal(none), torch.zeros(1))


def test_mixture_moments_match_a_two_component_mixture() -> None:
    a = Gaussian(torch.tensor([[0.0]]), torch.zeros(1, 1))
    b = Gaussian(torch.tensor([[2.0]]), torch.zeros(1, 1))
    q = mixture_moments([a, b], [torch.tensor([True]), torch.tensor([True])])
    assert torch.allclose(q.mu, torch.tensor([[1.0]])) and torch.allclose(q.logvar.exp(), torch.tensor([[2.0]]))
    one = mixture_moments([a, b], [torch.tensor([False]), torch.tensor([True])])
    assert torch.allclose(one.mu, b.mu) and torch.allclose(one.logvar, b.logvar, atol=1e-5)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("dims", [2, 3])
def test_forward_shapes_and_gradients(dims: int, fusion: str) -> None:
    vae = _vae(dims, fusion)
    inputs, masks = _batch(dims)
    out = vae(inputs, masks, beta=1.0)
    assert [t.name for t in out.terms] == EXPECTED_TERMS[fusion]
    image_term = next(t for t in out.terms if t.name == "image")
    assert image_term.valid.tolist() == [True, True, False, True]  # image subset: only cases with an image
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("image", "text"):
        grads = [p.grad for p in vae.encoders[name].parameters() if p.requires_grad]
        assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    recon = vae.decode(torch.zeros(2, 6))
    assert recon["image"].shape == (2, 1, *(16,) * dims) and recon["text"].shape == (2, 12)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_missing_modality_changes_only_its_cases(fusion: str) -> None:
    vae = _vae(fusion=fusion).eval()
    inputs, masks = _batch()
    full = vae.posterior(inputs, masks)
    changed = dict(inputs, text=inputs["text"] + 5.0)
    other = vae.posterior(changed, masks)
    # case 1 has no text: its latent ignores the text input entirely
    assert torch.allclose(full.mu[1], other.mu[1]) and not torch.allclose(full.mu[0], other.mu[0])


def test_unknown_fusion_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fusion"):
        FusionConfig(fusion="nope")


@pytest.mark.parametrize("fusion", ["moe", "mopoe"])
def test_sampled_subset_objective_decodes_once_and_estimates_the_full_sum(fusion: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Gaussian, "sample", lambda self: self.mu)  # only the choice of component stays random
    torch.manual_seed(0)
    inputs, _ = _batch()
    masks = {m: torch.ones(4, dtype=torch.bool) for m in ("image", "text")}  # every component valid for every case
    sampled = _vae(fusion=fusion)
    full = build_fusion(ModalitySpec(image=ImagePreprocessing(spatial_dims=2, size=16), vectors={"text": 12}),
                        FusionConfig(fusion=fusion, latent_dim=6, feature_dim=16, subset_sampling=False))
    full.load_state_dict(sampled.state_dict())
    full.eval(), sampled.eval()  # batch norm in eval mode: a case's ELBO does not depend on its batch-mates
    full.training = sampled.training = True  # ...but the training objective

    calls = []
    for vae in (sampled, full):
        for decoder in vae.decoders.values():
            decoder.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        out = sampled(inputs, masks, beta=1.0)
        assert len(calls) == 2 and [t.name for t in out.terms] == EXPECTED_TERMS[fusion]  # one decode per modality
        calls.clear()
        reference = full(inputs, masks, beta=1.0)
        assert len(calls) == 2 * len(EXPECTED_TERMS[fusion])
        joint = next(t for t in reference.terms if t.name == "joint").elbo_loss.mean()
        estimates = torch.stack([sampled(inputs, masks, beta=1.0).loss for _ in range(600)])
    assert float(estimates.std()) > 0  # the component really is drawn
    assert float(estimates.mean()) == pytest.approx(float(reference.loss - joint), rel=0.03)


def test_sampled_subsets_keep_a_case_to_its_present_modalities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Gaussian, "sample", lambda self: self.mu)
    vae = _vae(fusion="mopoe").eval()
    vae.training = True  # the training objective, with deterministic layers (no dropout, running batch-norm stats)
    inputs, masks = _batch()  # case 1: image only; case 2: text only
    drawn: list[torch.Tensor] = []
    decode = vae.decode
    vae.decode = lambda z: drawn.append(z.detach()) or decode(z)  # type: ignore[method-assign]
    torch.manual_seed(1)
    with torch.no_grad():
        for _ in range(10):
            vae(inputs, masks, beta=1.0)
        experts = vae.encode_experts(inputs, masks)
    image_only = product_of_experts([experts["image"]], [masks["image"]]).mu
    text_only = product_of_experts([experts["text"]], [masks["text"]]).mu
    assert all(torch.allclose(z[1], image_only[1], atol=1e-5) for z in drawn)
    assert all(torch.allclose(z[2], text_only[2], atol=1e-5) for z in drawn)
