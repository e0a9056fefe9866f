"""The fast paths give what the plain paths give: DataLoader reading, batched / mixed-precision / compiled prediction."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from diagnosis.classify import DiagnosisModel, ModelSpec, predict
from diagnosis.device import amp_dtype, autocast_dtype
from diagnosis.features import FeatureTable, ImagePreprocessing, build_features
from diagnosis.features.image import read_preprocessed
from diagnosis.fusion import FusionConfig, ModalitySpec
from diagnosis.ingest.images import ImageError
from diagnosis.synthetic import SyntheticConfig, generate_dataset
from diagnosis.training import TrainConfig, fit
from diagnosis.training.image_stage import ImageStageConfig

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ToyTable = Callable[[int, int], FeatureTable]  # the `toy_table` fixture (tests/diagnosis/conftest.py)


@dataclass(frozen=True)
class FileCase:
    image_path: str | None
    text: str | None


@pytest.fixture(scope="module")
def model(toy_table: ToyTable) -> DiagnosisModel:
    spec = ModelSpec(("negative", "positive"), ModalitySpec(image=ImagePreprocessing(size=16), vectors={"text": 8}),
                     FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=1))  # fmt: skip
    return fit(spec, toy_table(120, 0), toy_table(40, 1), TrainConfig(epochs=4, batch_size=32, lr=3e-3, image_stage=ImageStageConfig(epochs=4))).model


def _plain(model: DiagnosisModel, table: FeatureTable, samples: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: every row at once in float32, the draws taken row by row from a generator seeded with 0."""
    with torch.no_grad():
        inputs, masks, _ = table.batch(slice(None), CPU)
        q = model.vae.posterior(inputs, masks)
        alone = {"image": masks["image"], "text": torch.zeros_like(masks["text"])}
        image = masks["image"].float().unsqueeze(-1)
        features = model.vae.encoders["image"].backbone(inputs["image"])
        stage = torch.nn.functional.linear(features, model.image_weight, model.image_bias) * image
        latent = model.head(model.vae.posterior(inputs, alone).mu) * image
        weights = model.pattern_weight[model.patterns(masks)]

        def probabilities(z: torch.Tensor) -> torch.Tensor:
            return torch.softmax(weights[:, :1] * model.head(z) + weights[:, 1:2] * stage + weights[:, 2:3] * latent, -1)

        noise = torch.randn(len(table), samples, q.mu.shape[1], generator=torch.Generator().manual_seed(0)).transpose(0, 1)
        mean = probabilities(q.mu + noise * torch.exp(0.5 * q.logvar)).mean(0)
        entropy = -(mean * torch.log(mean.clamp(1e-12, 1.0))).sum(-1)
        return probabilities(q.mu).numpy(), q.mu.numpy(), entropy.numpy()


@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_batched_prediction_matches_the_plain_path(model: DiagnosisModel, batch_size: int | None, toy_table: ToyTable) -> None:
    table = toy_table(50, 2)
    probabilities, latents, entropy = _plain(model, table)
    timings = {"model": 1.0}
    preds = predict(model, table, CPU, batch_size, timings=timings)
    assert np.allclose(preds.probabilities, probabilities, atol=1e-5)
    assert np.allclose(preds.latents, latents, atol=1e-5)
    assert np.allclose(preds.uncertainty, entropy, atol=1e-5)  # the same draws whatever the batching
    assert timings["model"] > 1.0  # added to, not replaced
    assert preds.sets.any(1).all() and preds.ok.all()


def test_bfloat16_autocast_stays_close_to_float32(model: DiagnosisModel, toy_table: ToyTable) -> None:
    table = toy_table(60, 3)
    full = predict(model, table, CPU)
    mixed = predict(model, table, CPU, amp=True)  # torch.autocast("cpu", dtype=torch.bfloat16)
    assert mixed.probabilities.dtype == np.float32 and np.isfinite(mixed.probabilities).all()
    assert np.abs(mixed.probabilities - full.probabilities).max() < 0.05
    assert (mixed.probabilities.argmax(1) == full.probabilities.argmax(1)).mean() >= 0.95
    assert np.abs(mixed.uncertainty - full.uncertainty).max() < 0.05


def test_mixed_precision_choice() -> None:
    assert amp_dtype(CPU, None) is None and amp_dtype(CPU, False) is None  # automatic: off on the CPU
    assert amp_dtype(CPU, True) == torch.bfloat16 == autocast_dtype(CPU)
    if torch.cuda.is_available():
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        assert amp_dtype(torch.device("cuda"), None) == expected


def test_training_under_autocast_runs_and_learns(toy_table: ToyTable) -> None:
    spec = ModelSpec(("negative", "positive"), ModalitySpec(image=ImagePreprocessing(size=16), vectors={"text": 8}),
                     FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=1))  # fmt: skip
    result = fit(spec, toy_table(96, 4), None, TrainConfig(epochs=3, batch_size=32, lr=3e-3, amp=True,
                                                          image_stage=ImageStageConfig(epochs=2)))
    losses = [r["train_loss"] for r in result.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_prediction_matches(model: DiagnosisModel, toy_table: ToyTable) -> None:
    table = toy_table(40, 5)
    plain = predict(model, table, CPU, batch_size=16)
    compiled = predict(model, table, CPU, batch_size=16, compile=True)
    assert np.allclose(compiled.probabilities, plain.probabilities, atol=1e-5)
    assert np.allclose(compiled.uncertainty, plain.uncertainty, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_compiled_prediction_on_cuda_matches_the_cpu(model: DiagnosisModel, toy_table: ToyTable) -> None:
    """``diagnose --compile`` on a GPU: Triton kernels, float32 and the default bfloat16 autocast."""
    table = toy_table(300, 10)
    plain = predict(model, table, CPU)
    for amp, tolerance in ((False, 1e-4), (None, 0.05)):
        compiled = predict(model, table, torch.device("cuda"), amp=amp, compile=True)
        assert np.abs(compiled.probabilities - plain.probabilities).max() < tolerance
        assert np.abs(compiled.uncertainty - plain.uncertainty).max() < tolerance
    model.to(CPU)


@pytest.mark.gpu
@needs_cuda
def test_cuda_fast_path_matches_the_cpu(model: DiagnosisModel, toy_table: ToyTable) -> None:
    table = toy_table(300, 6)
    cpu = predict(model, table, CPU)
    for amp in (False, None):  # float32, then the default (bfloat16 where supported)
        gpu = predict(model, table, torch.device("cuda"), amp=amp)
        tolerance = 1e-4 if amp is False else 0.05
        assert np.abs(gpu.probabilities - cpu.probabilities).max() < tolerance
        assert np.abs(gpu.uncertainty - cpu.uncertainty).max() < tolerance
    model.to(CPU)


@pytest.mark.gpu
@needs_cuda
def test_cuda_training_with_the_table_on_the_device(toy_table: ToyTable) -> None:
    spec = ModelSpec(("negative", "positive"), ModalitySpec(image=ImagePreprocessing(size=16), vectors={"text": 8}),
                     FusionConfig(latent_dim=4, feature_dim=16, kl_warmup_epochs=1))  # fmt: skip
    config = TrainConfig(epochs=8, batch_size=32, lr=3e-3)
    result = fit(spec, toy_table(160, 7), toy_table(60, 8), config, torch.device("cuda"))
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    assert next(result.model.parameters()).device.type == "cuda"
    test = toy_table(80, 9)
    preds = predict(result.model, test, torch.device("cuda"))  # it learnt, as test_training's CPU fit does
    assert np.isfinite(preds.probabilities).all() and (preds.probabilities.argmax(1) == test.labels).mean() > 0.85


@pytest.mark.gpu
@needs_cuda
def test_cuda_text_embeddings_match_the_cpu(tiny_text_model: Path) -> None:
    """The transformer on the GPU (bfloat16 autocast by default, or float32) gives the CPU's vectors closely."""
    from diagnosis.features import TextEncoder, TextEncoderConfig

    config = TextEncoderConfig(model_path=str(tiny_text_model), batch_size=4)
    texts = ["I have a cough and fever.", "No chest pain.", "My skin itches and there is a rash on my arms."] * 3
    cpu = TextEncoder(config).encode(texts)
    for amp, floor in ((False, 0.9999), (None, 0.99)):
        gpu = TextEncoder(config, device="cuda", amp=amp)
        assert (gpu.dtype is None) == (amp is False)
        assert np.all((gpu.encode(texts) * cpu).sum(1) > floor)  # cosine of L2-normalised vectors


@pytest.fixture(scope="module")
def image_cases(tmp_path_factory: pytest.TempPathFactory) -> list[FileCase]:
    """Generated PNGs, plus a missing file, a corrupt file and a case without an image."""
    folder = tmp_path_factory.mktemp("fast-read")
    generate_dataset(folder, SyntheticConfig(cases=70, image_size=32))
    files = sorted((folder / "images").glob("*.png"))
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(files[0].read_bytes()[:60])  # a truncated PNG
    cases = [FileCase(str(f), "cough") for f in files]
    cases[3] = FileCase(str(folder / "missing.png"), "fever")
    cases[40] = FileCase(str(corrupt), None)
    cases[41] = FileCase(None, "text only")
    return cases


def _reference_images(cases: list[FileCase], config: ImagePreprocessing) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """One file after another, as feature building did before the DataLoader."""
    images, present, failed = np.zeros((len(cases), *config.shape), np.float32), np.zeros(len(cases), bool), set()
    for i, case in enumerate(cases):
        if case.image_path:
            try:
                images[i], present[i] = read_preprocessed(case.image_path, config), True
            except (ImageError, OSError):
                failed.add(i)
    return images, present, failed


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_reading_matches_file_by_file(image_cases: list[FileCase], workers: int) -> None:
    config = ImagePreprocessing(size=16)
    images, present, failed = _reference_images(image_cases, config)
    timings: dict[str, float] = {}
    table = build_features(image_cases, config, None, workers=workers, timings=timings)
    assert failed == {3, 40} and set(table.errors) == failed
    assert all(reason.startswith("image unusable at diagnosis time:") for reason in table.errors.values())
    assert "not found" in table.errors[3]
    assert np.array_equal(table.inputs["image"], images) and np.array_equal(table.masks["image"], present)
    assert not table.masks["image"][[3, 40, 41]].any()
    assert timings["read_images"] > 0 and timings["embed_text"] == 0.0
    build_features(image_cases[:5], config, None, workers=workers, timings=timings)  # timings add up
    assert timings["read_images"] > 0


def test_feature_building_keeps_its_outputs_with_texts(image_cases: list[FileCase], tiny_text_model: Path) -> None:
    from diagnosis.features import TextEncoder, TextEncoderConfig

    encoder = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model)))
    config = ImagePreprocessing(size=16)
    timings: dict[str, float] = {}
    table = build_features(image_cases, config, encoder, ["a"] * len(image_cases), ("a", "b"), workers=1, timings=timings)
    assert table.labels.tolist() == [0] * len(image_cases)
    assert table.masks["text"].sum() == len(image_cases) - 2  # no text at 40; 3 dropped (its image is unusable)
    assert not table.masks["text"][3] and table.masks["text"][41] and not table.masks["image"][41]
    assert timings["embed_text"] > 0 and timings["read_images"] > 0
    assert build_features([], config, encoder, workers=2).inputs["image"].shape == (0, 1, 16, 16)


@pytest.mark.parametrize(("runtime", "atol"), [("torch", 1e-5), ("onnx-int8", 1e-3)])
def test_length_sorted_text_batches_give_each_text_its_own_vector(tiny_text_model: Path, runtime: str, atol: float) -> None:
    """Texts are embedded longest first in batches; every row still gets the vector it gets on its own. In float32
    exactly; with int8, activations are quantized with one scale per batch, so batch-mates move a vector a little."""
    from diagnosis.features import TextEncoder, TextEncoderConfig

    texts = [f"symptom {'and more ' * (i % 7)}number {i}" for i in range(23)]
    encoder = TextEncoder(TextEncoderConfig(model_path=str(tiny_text_model), batch_size=4), runtime=runtime)
    batched = encoder.encode(texts)
    alone = np.concatenate([encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(batched, alone, atol=atol)
    assert len({row.tobytes() for row in batched}) == len(texts)


def _monai_scale_and_resize(array: np.ndarray, config: ImagePreprocessing) -> np.ndarray:
    """The reference: MONAI's intensity and resize transforms, which the direct numpy / torch code replaces."""
    from monai.transforms import Resize, ScaleIntensityRange, ScaleIntensityRangePercentiles

    if config.intensity == "window":
        low = config.window_center - config.window_width / 2
        scale = ScaleIntensityRange(a_min=low, a_max=low + config.window_width, b_min=0.0, b_max=1.0, clip=True)
    else:
        scale = ScaleIntensityRangePercentiles(lower=config.lower_percentile, upper=config.upper_percentile,
                                               b_min=0.0, b_max=1.0, clip=True)  # fmt: skip
    resize = Resize(spatial_size=(config.size,) * config.spatial_dims, mode="area")
    return np.asarray(resize(scale(torch.as_tensor(array))), dtype=np.float32)


@pytest.mark.parametrize(
    ("shape", "config"),
    [
        ((1, 64, 64), ImagePreprocessing(size=32)),
        ((1, 57, 91), ImagePreprocessing(size=32)),  # odd, non-square: uneven area bins
        ((1, 20, 20), ImagePreprocessing(size=32)),  # smaller than the grid: upsampled
        ((1, 32, 32), ImagePreprocessing(size=32)),  # already on the grid
        ((1, 40, 36, 30), ImagePreprocessing(spatial_dims=3, size=16)),
        ((1, 64, 64), ImagePreprocessing(size=28, intensity="window", window_center=40.0, window_width=400.0)),
        ((1, 64, 64), ImagePreprocessing(size=28, lower_percentile=5.0, upper_percentile=95.0)),
    ],
)
def test_direct_preprocessing_matches_monai_transforms(shape: tuple[int, ...], config: ImagePreprocessing) -> None:
    from diagnosis.features.image import _scale_and_resize

    array = (np.random.default_rng(0).normal(size=shape) * 300.0 + 50.0).astype(np.float32)
    fast = _scale_and_resize(array, config)
    assert fast.shape == config.shape and fast.dtype == np.float32
    np.testing.assert_allclose(fast, _monai_scale_and_resize(array, config), atol=1e-5)
    assert array.std() > 100.0  # the input is left untouched


def test_empty_intensity_range_shifts_and_still_clips() -> None:
    """A mostly-black image whose percentiles coincide: shift instead of dividing, like MONAI, but keep the [0, 1]
    contract (MONAI returns early there without clipping, so a bright speck would reach the network as 7.0)."""
    from monai.transforms import Resize

    from diagnosis.features.image import _scale_and_resize

    array = np.zeros((1, 48, 48), dtype=np.float32)
    array[0, :2, :2] = 7.0
    config = ImagePreprocessing(size=16)
    fast = _scale_and_resize(array, config)
    assert fast.min() >= 0.0 and fast.max() <= 1.0
    expected = np.asarray(Resize(spatial_size=(16, 16), mode="area")(torch.as_tensor(np.clip(array, 0.0, 1.0))))
    np.testing.assert_allclose(fast, expected, atol=1e-6)
    assert fast[0, 0, 0] == pytest.approx(4 / 9)


def test_read_preprocessed_matches_monai_on_generated_files(tmp_path: Path) -> None:
    from diagnosis.ingest.images import load_image

    generate_dataset(tmp_path, SyntheticConfig(cases=6, image_size=48))
    config = ImagePreprocessing(size=32)
    for path in sorted((tmp_path / "images").glob("*.png")):
        expected = _monai_scale_and_resize(load_image(path).array, config)
        np.testing.assert_allclose(read_preprocessed(path, config), expected, atol=1e-5)


@pytest.mark.parametrize("size", [1, 2, 17, 4096])
def test_partial_sort_percentiles_match_numpy(size: int) -> None:
    from diagnosis.features.image import _percentiles

    array = np.random.default_rng(size).normal(size=size).astype(np.float32)
    for percents in ((0.5, 99.5), (0.0, 100.0), (25.0, 75.0)):
        np.testing.assert_allclose(_percentiles(array, percents), np.percentile(array, percents), rtol=1e-6, atol=1e-6)
