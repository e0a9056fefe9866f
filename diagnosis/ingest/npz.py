"""Converting a MedMNIST-format ``.npz`` into image files plus a manifest."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diagnosis.ingest.formats import write_image
from diagnosis.ingest.manifest import MANIFEST_COLUMNS, SPLITS, ManifestError

__all__ = ["import_npz"]

logger = logging.getLogger(__name__)


LABEL_NAME_KEYS = ("label_names", "labels_names", "classes")  # npz arrays that may name the label indices


def import_npz(npz_path: str | Path, out_dir: str | Path, labels: Sequence[str] | None = None, prefix: str | None = None,
               dataset: str | None = None) -> Path:
    """Write every image of a MedMNIST npz as a file and a manifest with splits (no text column values).

    Label names come from ``labels``, else from the npz's own metadata (an array named as in
    :data:`LABEL_NAME_KEYS`), else the indices themselves (``0``, ``1``, … — a warning says how to name them).

    2D images (``(N, H, W)`` or ``(N, H, W, 3)``) become PNG files, 3D volumes (``(N, D, H, W)``) ``.npy`` files.

    Args:
        npz_path: File with ``train_images``, ``train_labels``, ``val_…``, ``test_…`` arrays.
        out_dir: Destination folder; gets ``images/`` and ``manifest.csv``.
        labels: Names for label indices 0, 1, …; default the indices themselves as text.
        prefix: Prefix of the generated case ids; default the npz file's stem.
        dataset: Data set written into the manifest's ``dataset`` column; default the npz file's stem.

    Returns:
        The manifest path.

    Raises:
        ManifestError: The npz lacks the MedMNIST arrays or a label has no name.
    """
    npz_path, out_dir = Path(npz_path), Path(out_dir)
    prefix, dataset = prefix or npz_path.stem, dataset or npz_path.stem
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "manifest.csv"
    with np.load(npz_path) as data, open(manifest, "w", newline="", encoding="utf-8") as handle:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in data]
        if missing:
            raise ManifestError(f"{npz_path.name} is not a MedMNIST npz: missing {', '.join(missing)}")
        labels = labels or _label_names(data)
        if labels is None:
            logger.warning("%s names no labels: the manifest uses 0, 1, …; name them with --labels a,b,…", npz_path.name)
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for split in SPLITS:
            images, targets = data[f"{split}_images"], data[f"{split}_labels"].reshape(len(data[f"{split}_labels"]), -1)
            for index, (image, target) in enumerate(zip(images, targets, strict=True)):
                label_index = int(target[0])
                if labels is not None and label_index >= len(labels):
                    raise ManifestError(f"label {label_index} has no name in --labels {','.join(labels)}")
                label = labels[label_index] if labels is not None else str(label_index)
                case_id = f"{prefix}-{split}-{index:06d}"
                relative = _write_image(out_dir / "images", case_id, image)
                writer.writerow([case_id, "", relative, "", label, split, dataset])
            logger.info("wrote %d %s images", len(images), split)
    return manifest


def _label_names(data: np.lib.npyio.NpzFile) -> list[str] | None:
    """Label names stored in the npz itself, if any."""
    for key in LABEL_NAME_KEYS:
        if key in data:
            return [str(name) for name in np.asarray(data[key]).ravel()]
    return None


def _write_image(folder: Path, case_id: str, image: np.ndarray) -> str:
    """Save one image and return its path relative to the manifest folder."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        name, image = f"{case_id}.png", image.astype(np.uint8)
    else:
        name = f"{case_id}.npy"
    write_image(image, folder / name)
    return f"images/{name}"
