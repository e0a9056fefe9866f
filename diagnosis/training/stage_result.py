"""What every training stage reports: the epoch it kept, its per-epoch figures and how long it took."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StageResult", "epoch_figures"]


@dataclass
class StageResult:
    """A finished training stage.

    Attributes:
        best_epoch: The epoch kept (selected on val), 1-based.
        history: One record per epoch (``epoch``, ``train_loss``, ``val_loss`` and/or ``val_accuracy``).
        seconds: Wall time of the stage.
    """

    best_epoch: int
    history: list[dict[str, float]]
    seconds: float

    def summary(self) -> dict:
        """JSON-ready figures for the model version's record (the kept epoch's validation figures)."""
        best = self.history[self.best_epoch - 1] if self.best_epoch else {}
        return {"best_epoch": self.best_epoch, "epochs": len(self.history), "seconds": round(self.seconds, 1),
                **{k: best[k] for k in ("val_loss", "val_accuracy") if k in best}}


def epoch_figures(record: dict) -> str:
    """``epoch N: train loss …, val loss …, val accuracy …`` of one training epoch (the figures it has); ``layer L
    epoch N: reconstruction loss …`` for a stacked autoencoder's layer-wise stage."""
    if "layer" in record:
        return f"layer {record['layer']} epoch {record['epoch']}: reconstruction loss {record['loss']:.4f}"
    figures = "".join(f", {k.replace('_', ' ')} {record[k]:.3f}" for k in ("val_loss", "val_accuracy") if k in record)
    member = f"member {record['member']} " if "member" in record else ""  # one network of an image-stage ensemble
    return f"{member}epoch {record['epoch']}: train loss {record['train_loss']:.3f}{figures}"
