"""Performance measurements that need neither the store nor Prefect (``diagnosis bench throughput|memory|train|text``).

- :func:`raw_forward`: throughput of the models alone on inputs already in memory (text transformer without its
  cache, then image network + fusion VAE + classifier), the ceiling that end-to-end batch diagnosis is held to.
- :func:`time_training`: seconds per epoch and samples per second of VAE training, per fusion variant.
- :func:`compare_text_runtimes`: texts per second of the text transformer in PyTorch float32 and ONNX int8.
- :func:`peak_rss_of`: run a command and return the peak resident memory of that process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diagnosis.classify.model import ModelSpec
from diagnosis.classify.predict import predict
from diagnosis.features.table import FeatureTable
from diagnosis.features.text import TextEncoder, TextEncoderConfig
from diagnosis.training.image_stage import ImageStageConfig
from diagnosis.training.trainer import TrainConfig, fit

__all__ = ["PeakMemory", "compare_text_runtimes", "peak_rss_of", "raw_forward", "steady_mean", "time_training"]

logger = logging.getLogger(__name__)

WARMUP_TEXTS = 8  # texts embedded before timing (loads the transformer, first-call allocations)
WARMUP_ROWS = 64  # rows predicted before timing


def steady_mean(seconds: Sequence[float]) -> float:
    """Mean of per-epoch times without the first one (start-up costs), or the only one there is."""
    return sum(seconds[1:]) / (len(seconds) - 1) if len(seconds) > 1 else (seconds[0] if seconds else float("nan"))


def raw_forward(
    model: torch.nn.Module,
    table: FeatureTable,
    texts: Sequence[str],
    text_config: TextEncoderConfig | None,
    device: torch.device,
    batch_size: int | None = None,
    amp: bool | None = None,
) -> dict[str, float]:
    """Time the models alone on inputs already in memory: the ceiling for end-to-end batch diagnosis.

    Args:
        model: A trained :class:`~diagnosis.classify.DiagnosisModel`.
        table: The cases' model inputs (images preprocessed, text embeddings filled), ``N`` rows.
        texts: The distinct texts the cases need embedded (what a cold cache computes).
        text_config: The model's text encoder (None: no text modality).
        device: Where both models run.
        batch_size: Rows per forward pass of the diagnosis model (None: :func:`predict`'s default).
        amp: Mixed precision for both models (None: bfloat16 on CUDA where supported, float32 elsewhere).

    Returns:
        ``cases``, ``texts``, ``text_s`` (transformer forward, tokenisation included), ``model_s`` (image network,
        fusion and classifier with the uncertainty draws), ``seconds`` (their sum) and ``cases_per_s``.
    """
    text_s = 0.0
    if text_config is not None and texts:
        encoder = TextEncoder(text_config, device=device, cache=None, amp=amp)
        encoder.encode(list(texts[:WARMUP_TEXTS]))
        started = time.perf_counter()
        encoder.encode(list(texts))
        _sync(device)
        text_s = time.perf_counter() - started
    warm = FeatureTable({m: a[:WARMUP_ROWS] for m, a in table.inputs.items()},
                        {m: a[:WARMUP_ROWS] for m, a in table.masks.items()}, table.labels[:WARMUP_ROWS])  # fmt: skip
    predict(model, warm, device, batch_size, amp=amp)
    started = time.perf_counter()
    predict(model, table, device, batch_size, amp=amp)
    model_s = time.perf_counter() - started
    seconds = text_s + model_s
    return {"cases": len(table), "texts": len(texts), "text_s": text_s, "model_s": model_s, "seconds": seconds,
            "cases_per_s": len(table) / seconds if seconds > 0 else float("nan")}  # fmt: skip


def time_training(
    spec: ModelSpec,
    train: FeatureTable,
    fusions: Sequence[str],
    epochs: int,
    device: torch.device,
    batch_size: int = 64,
    amp: bool | None = None,
) -> dict[str, dict[str, float | list[float]]]:
    """Train each fusion variant on the same rows and time its epochs (no validation, no early stop).

    Args:
        spec: Model description; its fusion variant is replaced by each of ``fusions``.
        train: Training rows.
        fusions: Fusion variants (``poe``, ``moe``, ``mopoe``, ``concat``); ``moe-full`` / ``mopoe-full``: with the full
            objective (every mixture component decoded) instead of one sampled component per case.
        epochs: Epochs per variant.
        device: Where to train.
        batch_size: Cases per optimisation step.
        amp: Mixed precision (None: bfloat16 autocast on CUDA where supported).

    Returns:
        Variant -> ``epoch_s`` (every epoch), ``seconds_per_epoch`` (mean without the first epoch when there are
        several), ``samples_per_s`` (from that mean) and ``total_s`` (the whole fit, calibration included).
    """
    results: dict[str, dict[str, float | list[float]]] = {}
    for fusion in fusions:
        base, _, objective = fusion.partition("-")
        if objective not in ("", "full"):
            raise ValueError(f"unknown training variant {fusion!r}: a fusion name, optionally with -full")
        variant = replace(spec, fusion=replace(spec.fusion, fusion=base, subset_sampling=objective != "full"))
        stamps = [time.perf_counter()]

        def tick(record: Mapping[str, float], stamps: list[float] = stamps) -> None:
            _sync(device)
            if record.get("stage") == "image":  # the fusion stage's clock starts after the image stage
                stamps[:] = [time.perf_counter()]
            else:
                stamps.append(time.perf_counter())

        config = TrainConfig(epochs=epochs, batch_size=batch_size, patience=epochs + 1, amp=amp,
                             image_stage=ImageStageConfig(epochs=1))  # the fusion stage as trained (frozen image net)
        result = fit(variant, train, None, config, device, on_epoch=tick)
        epoch_s = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        per_epoch = steady_mean(epoch_s)
        results[fusion] = {"epoch_s": epoch_s, "seconds_per_epoch": per_epoch, "samples_per_s": len(train) / per_epoch,
                           "total_s": result.seconds}  # fmt: skip
        logger.info("%s: %.2f s per epoch, %.0f samples/s", fusion, per_epoch, len(train) / per_epoch)
    return results


def compare_text_runtimes(texts: Sequence[str], config: TextEncoderConfig, repeats: int = 3,
                          runtimes: Sequence[str] = ("torch", "onnx-int8")) -> dict[str, Any]:
    """Texts per second of each text runtime on the same texts and batch size (CPU, no cache), and how close the
    embeddings stay to the first runtime's.

    Each runtime is loaded and warmed up on one batch first (the ONNX export, when not yet on disk, is timed apart
    as ``load_s``); then all texts are embedded ``repeats`` times and the median is reported.

    Returns:
        ``{"texts", "batch_size", "runtimes": {name: {"texts_per_s", "seconds", "load_s"}}, "speedup" (last ÷ first),
        "cosine": {"min", "mean"} (last against first)}``.
    """
    vectors, out = {}, {}
    for name in runtimes:
        with tempfile.TemporaryDirectory(prefix="diagnosis-bench-text-") as folder:
            encoder = TextEncoder(config, runtime=name, export_dir=Path(folder))
            started = time.perf_counter()
            encoder.encode(list(texts[: config.batch_size]))  # no cache: loads (and exports) the model, warms it up
            load_s = time.perf_counter() - started
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                vectors[name] = encoder.encode(list(texts))
                seconds.append(time.perf_counter() - started)
        median = float(np.median(seconds))
        out[name] = {"texts_per_s": len(texts) / median, "seconds": seconds, "load_s": load_s}
    first, last = runtimes[0], runtimes[-1]
    cosine = (vectors[first] * vectors[last]).sum(1)  # both L2-normalised
    return {"texts": len(texts), "batch_size": config.batch_size, "runtimes": out,
            "speedup": out[last]["texts_per_s"] / out[first]["texts_per_s"],
            "cosine": {"min": float(cosine.min()), "mean": float(cosine.mean())}}


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock times are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class PeakMemory:
    """How a measured command ended.

    Attributes:
        returncode: Exit status.
        peak_rss_mib: Peak resident set size of the process (MiB), as the kernel accounts it at exit.
        seconds: Wall time.
        stdout: What it printed on stdout.
        stderr: What it printed on stderr (the tail, for error messages).
    """

    returncode: int
    peak_rss_mib: float
    seconds: float
    stdout: str
    stderr: str


def peak_rss_of(command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None,
                poll_s: float = 0.05) -> PeakMemory:
    """Run ``command`` and measure the peak resident memory of that process (not of its children).

    On Linux the kernel's high-water mark ``VmHWM`` of ``/proc/<pid>/status`` is read every ``poll_s`` seconds
    while the process runs; being a high-water mark, the last reading is the peak up to that moment. ``wait4``'s
    ``ru_maxrss`` cannot be used: it also counts the pages the child shared with this (large) process before
    ``exec``. Elsewhere ``ru_maxrss`` is reported, with that caveat.
    """
    started = time.perf_counter()
    process = subprocess.Popen(list(command), env=dict(env) if env is not None else None, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    peak = [0.0]
    watcher = threading.Thread(target=_watch_hwm, args=(process, peak, poll_s), daemon=True)
    watcher.start()
    stdout, stderr = _drain(process)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    if not peak[0]:  # no /proc: ru_maxrss (KiB on Linux, bytes on macOS)
        peak[0] = usage.ru_maxrss * (1 if os.uname().sysname == "Darwin" else 1024) / 2**20
    return PeakMemory(returncode=process.returncode, peak_rss_mib=peak[0], seconds=time.perf_counter() - started,
                      stdout=stdout, stderr=stderr[-4000:])  # fmt: skip


def _watch_hwm(process: subprocess.Popen[str], peak: list[float], poll_s: float) -> None:
    """Keep ``peak[0]`` at the process's ``VmHWM`` (MiB) until it exits."""
    status = f"/proc/{process.pid}/status"
    while True:
        try:
            with open(status) as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024)
                        break
                else:
                    return  # a zombie: the process has exited
        except OSError:
            return
        time.sleep(poll_s)


def _drain(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Read both pipes to the end without reaping the process (``communicate`` would reap it before ``wait4``)."""
    chunks: dict[str, str] = {}

    def read(name: str, stream) -> None:  # noqa: ANN001 - a text pipe
        chunks[name] = stream.read()

    readers = [threading.Thread(target=read, args=(name, stream)) for name, stream in
               (("out", process.stdout), ("err", process.stderr))]  # fmt: skip
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    return chunks.get("out", ""), chunks.get("err", "")
