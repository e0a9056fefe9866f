"""A conditional GAN in the fusion model's latent space: an alternative to the per-class Gaussians for augmentation.

The generator maps noise and a diagnosis to a latent; the model's own decoders turn that latent into an image and a
text embedding, exactly as for the VAE's class-conditional samples (:func:`diagnosis.generation.sample_class`). It
trains on the training cases' fused posterior means (:class:`diagnosis.classify.LatentBank`), so it works for the
deterministic autoencoders too, whose codes have no prior to sample.

Recipe: hinge loss with spectral normalisation on every discriminator layer and a projection discriminator
(Miyato & Koyama, 2018) for the condition; Adam with ``betas=(0.0, 0.9)``; samples come from an exponential moving average of the generator's
weights (Yazıcı et al., 2019), which damps the oscillation of adversarial training. Latents are standardised per dimension
before training. Mode collapse is measured, not assumed away: the sample diversity of a class is the mean pairwise
distance of its generated latents over that of its real latents (about 1 when the spread is reproduced, near 0 when
the generator collapses); a class below :attr:`GANConfig.diversity_floor` is reported as collapsed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["GANConfig", "GANReport", "LatentGAN", "discriminator_loss", "generator_loss", "load_gan", "sample_diversity",
           "save_gan", "train_latent_gan"]

logger = logging.getLogger(__name__)

GAN_WEIGHTS, GAN_META = "gan.safetensors", "gan.json"  # file names inside a model's checkpoint folder


@dataclass(frozen=True)
class GANConfig:
    """Size and optimisation of the latent GAN."""

    noise_dim: int = 16  # generator input noise
    hidden: int = 128  # width of both networks' hidden layers
    steps: int = 1500  # optimisation steps (one discriminator and one generator update each)
    batch_size: int = 128  # real latents per step
    lr: float = 1e-3  # Adam learning rate of both networks
    ema: float = 0.995  # decay of the exponential moving average of the generator's weights (what samples)
    diversity_floor: float = 0.3  # a class whose sample diversity falls below this is reported as collapsed


@dataclass
class GANReport:
    """How training went.

    Attributes:
        history: Every 50 steps, the mean discriminator and generator hinge losses since the last record.
        diversity: Label -> sample diversity (generated over real mean pairwise distance).
        collapsed: Labels whose diversity is below the floor (mode collapse).
        seconds: Training time.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    diversity: dict[str, float] = field(default_factory=dict)
    collapsed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def _mlp(sizes: list[int], normalise: bool) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (spectrally normalised when ``normalise``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(a, b)
        layers.append(spectral_norm(linear) if normalise else linear)
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class LatentGAN(nn.Module):
    """Conditional generator and projection discriminator over standardised latents.

    Args:
        latent_dim: Size of the fusion model's latent.
        label_names: The diagnoses it generates, index = class id.
        config: Network sizes.
    """

    def __init__(self, latent_dim: int, label_names: tuple[str, ...], config: GANConfig = GANConfig()) -> None:
        super().__init__()
        self.latent_dim, self.label_names, self.config = latent_dim, tuple(label_names), config
        classes, h = len(label_names), config.hidden
        self.label_embedding = nn.Embedding(classes, config.noise_dim)
        self.generator = _mlp([2 * config.noise_dim, h, h, latent_dim], normalise=False)
        self.features = _mlp([latent_dim, h, h], normalise=True)
        self.critic = spectral_norm(nn.Linear(h, 1))
        self.projection = spectral_norm(nn.Embedding(classes, h))
        self.register_buffer("shift", torch.zeros(latent_dim))  # real latents' mean and spread (standardisation)
        self.register_buffer("scale", torch.ones(latent_dim))

    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Standardised latents ``(N, D)`` for ``labels`` ``(N,)`` and ``noise`` ``(N, noise_dim)``."""
        return self.generator(torch.cat([noise, self.label_embedding(labels)], 1))

    def discriminate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(N,)`` realness scores of standardised latents under their labels."""
        h = F.leaky_relu(self.features(z), 0.2)
        return self.critic(h).squeeze(1) + (self.projection(labels) * h).sum(1)

    @torch.no_grad()
    def sample(self, label: str, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` latents ``(n, D)`` of ``label`` in the fusion model's own scale.

        Raises:
            ValueError: ``label`` is not one of the GAN's diagnoses.
        """
        if label not in self.label_names:
            raise ValueError(f"unknown diagnosis {label!r}; the GAN knows {', '.join(self.label_names)}")
        self.eval()
        device = self.shift.device
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(n, self.config.noise_dim, generator=generator).to(device)
        labels = torch.full((n,), self.label_names.index(label), dtype=torch.long, device=device)
        return self.generate(labels, noise) * self.scale + self.shift


def sample_diversity(generated: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor, pairs: int = 2000,
                     seed: int = 0) -> float:
    """Mean pairwise Euclidean distance of ``generated`` rows over that of ``real`` rows (random pairs; NaN with
    fewer than two rows on either side). About 1: the real spread is reproduced; near 0: mode collapse."""
    def spread(x: torch.Tensor, rng: np.random.Generator) -> float:
        a, b = rng.integers(0, len(x), pairs), rng.integers(0, len(x), pairs)
        keep = a != b
        return float((x[a[keep]] - x[b[keep]]).norm(dim=1).mean()) if keep.any() else float("nan")

    g, r = torch.as_tensor(generated, dtype=torch.float32), torch.as_tensor(real, dtype=torch.float32)
    if len(g) < 2 or len(r) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    reference = spread(r, rng)
    return spread(g, rng) / reference if reference > 0 else float("nan")


def discriminator_loss(gan: LatentGAN, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator: ``E[max(0, 1 - D(real))] + E[max(0, 1 + D(fake))]`` (standardised latents)."""
    return F.relu(1 - gan.discriminate(real, labels)).mean() + F.relu(1 + gan.discriminate(fake, labels)).mean()


def generator_loss(gan: LatentGAN, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the generator: ``-E[D(fake)]``."""
    return -gan.discriminate(fake, labels).mean()


def train_latent_gan(latents: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, label_names: tuple[str, ...],
                     config: GANConfig = GANConfig(), seed: int = 0,
                     device: torch.device | str = "cpu") -> tuple[LatentGAN, GANReport]:
    """Train a conditional GAN on real latents ``(N, D)`` with class ids ``(N,)``.

    Each step draws a class-balanced batch (every class as often, so a rare diagnosis is learnt as well as a common
    one), updates the discriminator on real and generated latents with the hinge loss, then the generator.

    Raises:
        ValueError: No latents, or no labelled ones.
    """
    z = torch.as_tensor(np.asarray(latents), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    keep = y >= 0
    z, y = z[keep], y[keep]
    if len(z) == 0:
        raise ValueError("the GAN needs labelled training latents; the model's latent bank has none")
    started = time.perf_counter()
    torch.manual_seed(seed)
    device = torch.device(device)
    gan = LatentGAN(z.shape[1], label_names, config).to(device)
    gan.shift.copy_(z.mean(0)), gan.scale.copy_(z.std(0, unbiased=False).clamp(min=1e-4))
    x = ((z.to(device) - gan.shift) / gan.scale)
    y = y.to(device)
    present = [c for c in range(len(label_names)) if bool((y == c).any())]
    counts = torch.bincount(y.cpu(), minlength=len(label_names)).float()
    balance = 1.0 / counts[y.cpu()]  # each class drawn as often
    g_opt = torch.optim.Adam([*gan.generator.parameters(), *gan.label_embedding.parameters()], lr=config.lr,
                             betas=(0.0, 0.9))
    d_params = [*gan.features.parameters(), *gan.critic.parameters(), *gan.projection.parameters()]
    d_opt = torch.optim.Adam(d_params, lr=config.lr, betas=(0.0, 0.9))
    rng = torch.Generator(device="cpu").manual_seed(seed)
    average = torch.optim.swa_utils.AveragedModel(  # the generator used for sampling: an EMA of its weights
        gan.generator, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema))
    report, d_sum, g_sum, count = GANReport(), 0.0, 0.0, 0
    gan.train()
    for step in range(1, config.steps + 1):
        rows = torch.multinomial(balance, config.batch_size, replacement=True, generator=rng).to(device)
        real, classes = x[rows], y[rows]
        noise = torch.randn(config.batch_size, config.noise_dim, generator=rng).to(device)
        fake = gan.generate(classes, noise)
        d_loss = discriminator_loss(gan, real, fake.detach(), classes)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        g_loss = generator_loss(gan, fake, classes)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        average.update_parameters(gan.generator)
        d_sum, g_sum, count = d_sum + float(d_loss.detach()), g_sum + float(g_loss.detach()), count + 1
        if step % 50 == 0 or step == config.steps:
            report.history.append({"step": step, "d_loss": d_sum / count, "g_loss": g_sum / count})
            d_sum, g_sum, count = 0.0, 0.0, 0
    gan.generator.load_state_dict(average.module.state_dict())
    gan.eval()
    for c in present:
        name = label_names[c]
        real_rows = z[(y == c).cpu()]
        report.diversity[name] = round(sample_diversity(gan.sample(name, 256, seed=seed).cpu(), real_rows), 4)
        if not report.diversity[name] >= config.diversity_floor:  # NaN (one real case) counts as collapsed too
            report.collapsed.append(name)
    report.seconds = round(time.perf_counter() - started, 1)
    if report.collapsed:
        logger.warning("GAN mode collapse: sample diversity below %.2f for %s", config.diversity_floor,
                       ", ".join(report.collapsed))
    return gan, report


def save_gan(gan: LatentGAN, report: GANReport, directory: str | Path) -> Path:
    """Write the GAN's weights and its report into ``directory`` (a model's checkpoint folder); returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in gan.state_dict().items()}
    save_file(state, str(directory / GAN_WEIGHTS))
    meta = {"latent_dim": gan.latent_dim, "label_names": list(gan.label_names), "config": asdict(gan.config),
            "report": report.to_dict()}
    (directory / GAN_META).write_text(json.dumps(meta, indent=2))
    return directory


def load_gan(directory: str | Path, device: torch.device | str = "cpu") -> tuple[LatentGAN, GANReport] | None:
    """The GAN saved in ``directory`` with its report, or None when there is none."""
    directory = Path(directory)
    if not (directory / GAN_META).is_file() or not (directory / GAN_WEIGHTS).is_file():
        return None
    meta = json.loads((directory / GAN_META).read_text())
    gan = LatentGAN(int(meta["latent_dim"]), tuple(meta["label_names"]), GANConfig(**meta["config"]))
    gan.load_state_dict(load_file(str(directory / GAN_WEIGHTS)))
    return gan.to(device).eval(), GANReport(**meta["report"])
