"""The text transformer's fast CPU path: ONNX Runtime with int8 weights.

On the CPU the transformer is most of the cost of a cold diagnosis run. The model (any local Hugging Face encoder)
is exported once to ONNX with ``torch.onnx.export``, its matrix-multiplication weights are quantized to int8 per
output channel by ``onnxruntime.quantization.quantize_dynamic`` (activations are quantized on the fly, per batch),
and ONNX Runtime runs it. Measured on 2 CPU cores with all-MiniLM-L6-v2 on symptom notes (see the README):
about 2x the texts per second of float32 PyTorch.

Quantizing every projection costs a little agreement with float32 (cosine ~0.993 on average, 0.986 at worst): the
feed-forward output projections of the first and last transformer layer read the widest activations, so for
BERT-style graphs (``layer.N/output/dense``) those two stay in float32 (on 1,000 symptom notes: mean cosine 0.994,
worst 0.990). Activations are quantized with one scale per batch, so a text's vector moves slightly
(about 1e-4) with its batch-mates, where float32 gives every text the same vector in any batch. Embeddings of this
path are cached under keys of their own (see :class:`~diagnosis.features.text.TextEncoder`).

The exported file is written next to the embedding cache, named by the model folder's content digest, and reused
by later runs; writing goes through a temporary name and an atomic rename, so concurrent runs never read half a file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

__all__ = ["ONNX_RUNTIME", "RUNTIMES", "RUNTIME_ENV", "OnnxTextModel", "onnx_available", "quantized_onnx", "resolve_runtime"]

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx-int8")  # how the text transformer runs; see resolve_runtime
ONNX_RUNTIME = "onnx-int8"
RUNTIME_ENV = "DIAGNOSIS_TEXT_RUNTIME"  # the default runtime of every command (auto when unset)
_FFN_OUTPUT = re.compile(r"layer\.(\d+)/output/dense/MatMul$")  # BERT-style feed-forward output projection
QUANTIZATION_VERSION = 1  # bump when the export or the quantization recipe changes (part of the file name)


def onnx_available() -> bool:
    """Whether ONNX Runtime and the ONNX package can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def resolve_runtime(runtime: str | None, device: torch.device, amp: bool | None = None) -> str:
    """The runtime to use: ``torch`` or ``onnx-int8``.

    ``auto`` (the default, or ``DIAGNOSIS_TEXT_RUNTIME`` when ``runtime`` is None) picks ONNX Runtime on the CPU
    when it is installed, and PyTorch (bfloat16 autocast where supported) on a GPU or when mixed precision is asked
    for (``amp=True``).

    Raises:
        ValueError: An unknown runtime, or ``onnx-int8`` asked for on a GPU or without ONNX Runtime installed.
    """
    chosen = runtime or os.environ.get(RUNTIME_ENV) or "auto"
    if chosen not in RUNTIMES:
        raise ValueError(f"unknown text runtime {chosen!r}; choose one of {', '.join(RUNTIMES)}")
    if chosen == "auto":
        return ONNX_RUNTIME if device.type == "cpu" and amp is not True and onnx_available() else "torch"
    if chosen == ONNX_RUNTIME and (device.type != "cpu" or not onnx_available()):
        raise ValueError("the onnx-int8 text runtime needs the CPU and the onnxruntime and onnx packages")
    return chosen


class _LastHidden(torch.nn.Module):
    """The encoder as a function of token ids and attention mask, returning the last hidden state."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _kept_in_float(graph_path: Path) -> list[str]:
    """Names of the MatMul nodes left in float32: the first and last layer's feed-forward output projection."""
    import onnx

    layers: dict[int, str] = {}
    for node in onnx.load(str(graph_path), load_external_data=False).graph.node:
        if node.op_type == "MatMul" and (match := _FFN_OUTPUT.search(node.name)) and "attention" not in node.name:
            layers[int(match.group(1))] = node.name
    return [layers[min(layers)], layers[max(layers)]] if layers else []


def quantized_onnx(load_model: Callable[[], torch.nn.Module], tokenizer, folder: Path, digest: str) -> Path:  # noqa: ANN001 - HF tokenizer
    """The int8 ONNX file of a model in ``folder``, exported and quantized when missing.

    Args:
        load_model: Returns the Hugging Face encoder (float32, CPU, eval mode); called only when exporting.
        tokenizer: Its tokenizer (for an example input of the export).
        folder: Where exported files live.
        digest: The model folder's content digest (names the file).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = folder / f"text-{digest[:24]}-int8-v{QUANTIZATION_VERSION}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    example = tokenizer(["a short note", "a longer symptom note about a cough"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as work, _quiet():
        plain, quantized = Path(work) / "model.onnx", Path(work) / "int8.onnx"
        with torch.no_grad():
            torch.onnx.export(
                _LastHidden(load_model()), (example["input_ids"], example["attention_mask"]), str(plain),
                input_names=["input_ids", "attention_mask"], output_names=["hidden"], opset_version=17, dynamo=False,
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                              "hidden": {0: "batch", 1: "tokens"}},
            )  # fmt: skip
        quantize_dynamic(str(plain), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=_kept_in_float(plain))  # fmt: skip
        os.replace(quantized, target)  # atomic: another run sees the whole file or none
    logger.info("text model exported to ONNX (int8) at %s", target)
    return target


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hold back the exporter's tracer warnings and the quantizer's advice, which it logs on the root logger."""
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class OnnxTextModel:
    """An exported encoder run by ONNX Runtime on the CPU.

    Args:
        path: The ONNX file.
        threads: Intra-op threads (default: torch's thread count, which the commands set).
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # No busy-waiting between operators: idle pool threads would spin on the cores that image reading and the
        # diagnosis model share with the transformer (the default spin made a loaded demo run take twice the CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def last_hidden(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """``(B, T, H)`` float32 hidden states."""
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        return self.session.run(None, feeds)[0]
