"""Synthetic chest images: 2D radiographs (PNG) and 3D CT-like volumes (NIfTI).

A case is a randomised phantom built from soft-edged ellipsoids in normalised patient coordinates
``(lr, cc, ap)`` in ``[-1, 1]`` (``lr`` + = patient's left, ``cc`` + = caudal, ``ap`` + = anterior): a body, a spine,
two lung fields with smooth texture and a heart, plus the finding of the diagnosis drawn into the visible lung. In 2D
the ``ap`` axis is dropped (a frontal projection); in 3D every structure is a true volume, so findings vary along
all three axes. Position, rotation, size, contrast, blur and noise are randomised per case.

Arrays: 2D ``(H, W)`` uint8 with rows = craniocaudal (top = cranial) and columns = left-right; 3D ``(X, Y, Z)``
int16 Hounsfield-like units in RAS order (x + = patient's right, y + = anterior, z + = superior).

Examples:
    >>> import numpy as np
    >>> render_image("pneumonia", np.random.default_rng(0), dims=2, size=64).shape
    (64, 64)
    >>> render_image("normal", np.random.default_rng(0), dims=3, size=32).dtype
    dtype('int16')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diagnosis.ingest.formats import write_image as write_any_image
from diagnosis.synthetic.classes import DIAGNOSES

__all__ = ["CT", "XRAY", "Palette", "render_image", "smooth_noise", "write_image"]


@dataclass(frozen=True)
class Palette:
    """Tissue intensities of one modality (x-ray: brightness in [0, 1]; CT: Hounsfield units)."""

    background: float  # air around the body
    body: float  # soft tissue of the chest wall
    bone: float  # spine / mediastinum
    lung: float  # aerated lung
    lung_texture: float  # std of the smooth lung texture
    heart: float  # heart shadow
    fluid: float  # pleural fluid
    opacity: float  # intensity added by a pneumonic consolidation at full strength
    nodule: float  # solid nodule
    air: float  # free pleural air (pneumothorax)
    pleural_line: float  # visceral pleural line of a collapsed lung
    noise: tuple[float, float]  # range of the Gaussian noise std
    clip: tuple[float, float]  # valid output range


XRAY = Palette(0.03, 0.52, 0.78, 0.22, 0.045, 0.70, 0.64, 0.30, 0.62, 0.07, 0.50, (0.015, 0.04), (0.0, 1.0))
CT = Palette(-1000, 40, 450, -840, 45, 45, 12, 520, 35, -995, -350, (8.0, 25.0), (-1024, 3071))


@dataclass(frozen=True)
class _Ellipsoid:
    """Axis-aligned ellipsoid in ``(lr, cc, ap)`` coordinates; 2D uses the first two axes."""

    center: np.ndarray  # (3,)
    radii: np.ndarray  # (3,)

    def level(self, coords: np.ndarray) -> np.ndarray:
        """Return ``sum(((x - c) / r)^2)``, < 1 inside; coords ``(D, *shape)`` -> ``(*shape)``."""
        d = coords.shape[0]
        shape = (d,) + (1,) * (coords.ndim - 1)
        rel = (coords - self.center[:d].reshape(shape)) / self.radii[:d].reshape(shape)
        return np.einsum("i...,i...->...", rel, rel)

    def contains(self, point: np.ndarray, dims: int, margin: float = 1.0) -> bool:
        """Whether ``point`` (3,) lies inside the ellipsoid scaled by ``margin`` (first ``dims`` axes)."""
        return float((((point - self.center) / self.radii)[:dims] ** 2).sum()) < margin**2

    def mask(self, coords: np.ndarray, edge: float) -> np.ndarray:
        """Soft inside-mask in [0, 1] with a transition about ``edge`` (normalised units) wide."""
        dist = (np.sqrt(self.level(coords)) - 1.0) * float(self.radii[: coords.shape[0]].min())
        return np.clip(0.5 - dist / edge, 0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _grid(dims: int, size: int) -> np.ndarray:
    """Normalised coordinates ``(D, *shape)`` ordered ``(lr, cc[, ap])`` for the output array layout."""
    axis = np.linspace(-1.0, 1.0, size)
    if dims == 2:
        cc, lr = np.meshgrid(axis, axis, indexing="ij")  # rows cranial -> caudal, columns right -> left
        return np.stack([lr, cc])
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")  # RAS voxel axes
    return np.stack([-x, -z, y])


@functools.lru_cache(maxsize=8)
def _freq2(shape: tuple[int, ...]) -> np.ndarray:
    """Squared spatial frequencies of an rfftn spectrum of ``shape``."""
    freqs = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    return sum(f**2 for f in np.meshgrid(*freqs, indexing="ij"))


def _lowpass(field: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian low-pass of a periodic field via FFT (same shape)."""
    spectrum = np.fft.rfftn(field) * np.exp(-2.0 * np.pi**2 * sigma_px**2 * _freq2(field.shape))
    return np.fft.irfftn(spectrum, s=field.shape, axes=tuple(range(field.ndim)))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Return zero-mean, unit-std Gaussian noise smoothed with a Gaussian of ``sigma_px`` pixels."""
    field = _lowpass(rng.standard_normal(shape), sigma_px)
    return (field - field.mean()) / (field.std() + 1e-8)


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur with reflected borders (no wrap-around)."""
    pad = int(np.ceil(3 * sigma_px))
    padded = np.pad(image, pad, mode="reflect")
    return _lowpass(padded, sigma_px)[tuple(slice(pad, pad + n) for n in image.shape)]


def _point_in(rng: np.random.Generator, ell: _Ellipsoid, spread: float) -> np.ndarray:
    """Uniform random point inside ``ell`` shrunk by ``spread``."""
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    return ell.center + ell.radii * direction * spread * rng.uniform() ** (1 / 3)


def _anatomy(rng: np.random.Generator, dims: int, label: str) -> dict[str, _Ellipsoid]:
    """Sample the normal anatomy (enlarged heart for cardiomegaly)."""
    j = rng.uniform
    long_axis = 1.35 if dims == 2 else 1e3  # 2D: body ends at neck/abdomen; 3D: a cylinder along cc
    heart_w = j(0.39, 0.5) if label == "cardiomegaly" else j(0.25, 0.34)
    parts = {
        "body": ((j(-0.03, 0.03), 0.15, 0.0), (j(0.8, 0.9), long_axis, j(0.55, 0.65))),
        "spine": ((0.0, 0.0, -0.45), (0.06 if dims == 2 else 0.12, 1e3, 0.12)),
        "heart": ((j(0.06, 0.13), j(0.28, 0.34), 0.15), (heart_w, j(0.24, 0.3) + 0.4 * (heart_w - 0.28), 0.28)),
    }
    lung_r = (j(0.25, 0.3), j(0.55, 0.65), j(0.34, 0.4))
    for side, sign in (("lung_r", -1.0), ("lung_l", 1.0)):
        center = (sign * j(0.34, 0.4), j(-0.12, -0.04), j(-0.08, 0.0))
        parts[side] = (center, tuple(r * j(0.94, 1.06) for r in lung_r))
    return {k: _Ellipsoid(np.asarray(c, float), np.asarray(r, float)) for k, (c, r) in parts.items()}


def _blend(image: np.ndarray, value: float, weight: np.ndarray) -> np.ndarray:
    """Move ``image`` towards ``value`` by ``weight`` in [0, 1]."""
    return image + (value - image) * weight


@dataclass(frozen=True)
class _Scene:
    """What a finding renderer needs: coordinates, anatomy and the affected lung."""

    coords: np.ndarray  # (D, *shape) normalised (lr, cc[, ap])
    parts: dict[str, _Ellipsoid]  # anatomy by name
    lung: _Ellipsoid  # the lung that carries the finding
    lung_visible: np.ndarray  # (*shape) soft mask of that lung outside the heart shadow
    heart_free: np.ndarray  # (*shape) 1 - heart mask
    pal: Palette  # tissue intensities
    px: float  # one pixel in normalised units

    def point_in_lung(self, rng: np.random.Generator, spread: float, heart_margin: float) -> np.ndarray:
        """Random point in the lung, preferably outside the heart shadow (20 tries)."""
        for _ in range(20):
            point = _point_in(rng, self.lung, spread)
            if not self.parts["heart"].contains(point, self.coords.shape[0], margin=heart_margin):
                break
        return point


def _pneumonia(image: np.ndarray, sc: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Patchy consolidation: smooth noise thresholded inside a large soft blob in one lung."""
    blob = _Ellipsoid(sc.point_in_lung(rng, 0.6, 1.1), rng.uniform(0.2, 0.34) * rng.uniform(0.75, 1.3, 3))
    patches = np.clip(0.6 + 0.5 * smooth_noise(rng, image.shape, rng.uniform(0.07, 0.11) / sc.px), 0, 1)
    weight = blob.mask(sc.coords, edge=0.12) * patches * sc.lung_visible
    return image + sc.pal.opacity * rng.uniform(0.7, 1.2) * weight


def _effusion(image: np.ndarray, sc: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Fluid filling the lung base up to a level with a meniscus rising towards the chest wall."""
    lung, (lr, cc) = sc.lung, sc.coords[:2]
    level = lung.center[1] + lung.radii[1] * (1.0 - 2.0 * rng.uniform(0.2, 0.5))
    rel_lateral = np.clip((lr - lung.center[0]) * np.sign(lung.center[0]) / lung.radii[0], 0, None)
    top = level - rng.uniform(0.05, 0.2) * rel_lateral**2
    fluid = np.clip(0.5 + (cc - top) / sc.px, 0, 1) * _Ellipsoid(lung.center, lung.radii * 1.05).mask(sc.coords, sc.px)
    return _blend(image, sc.pal.fluid + rng.uniform(-0.06, 0.06) * abs(sc.pal.fluid - sc.pal.lung), fluid)


def _nodule(image: np.ndarray, sc: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Small solid round nodule in the visible lung."""
    nodule = _Ellipsoid(sc.point_in_lung(rng, 0.7, 1.15), rng.uniform(0.07, 0.12) * rng.uniform(0.85, 1.15, 3))
    return _blend(image, sc.pal.nodule, nodule.mask(sc.coords, sc.px) * rng.uniform(0.8, 1.0) * sc.lung_visible)


def _pneumothorax(image: np.ndarray, sc: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Lung collapsed towards the hilum: texture-free air around it and a thin visceral pleural line."""
    lung, scale = sc.lung, rng.uniform(0.55, 0.82)
    hilum = lung.center - np.array([np.sign(lung.center[0]) * 0.6 * lung.radii[0], -0.1 * lung.radii[1], 0.0])
    collapsed = _Ellipsoid(hilum + (lung.center - hilum) * scale, lung.radii * scale)
    lung_mask = lung.mask(sc.coords, sc.px) * sc.heart_free
    image = _blend(image, sc.pal.air, lung_mask * (1 - collapsed.mask(sc.coords, sc.px)))
    line_dist = np.abs(np.sqrt(collapsed.level(sc.coords)) - 1.0) * float(collapsed.radii[:2].min())
    return _blend(image, sc.pal.pleural_line, np.clip(1.0 - line_dist / (0.8 * sc.px), 0, 1) * lung_mask)


_FINDINGS: dict[str, Callable[[np.ndarray, _Scene, np.random.Generator], np.ndarray]] = {
    "pneumonia": _pneumonia,
    "pleural_effusion": _effusion,
    "lung_nodule": _nodule,
    "pneumothorax": _pneumothorax,
}  # normal and cardiomegaly (drawn in the anatomy) have no finding inside the lung


def render_image(label: str, rng: np.random.Generator, dims: int = 2, size: int = 64) -> np.ndarray:
    """Render one synthetic chest image of diagnosis ``label``.

    Args:
        label: One of :data:`~diagnosis.synthetic.classes.DIAGNOSES`.
        rng: Random generator; the image is a deterministic function of its state.
        dims: 2 for a frontal radiograph, 3 for a CT-like volume.
        size: Side length in pixels / voxels.

    Returns:
        2D: ``(size, size)`` uint8; 3D: ``(size, size, size)`` int16 Hounsfield-like values.

    Raises:
        ValueError: If ``label`` is unknown, ``dims`` is not 2 or 3, or ``size`` < 8.
    """
    if label not in DIAGNOSES:
        raise ValueError(f"Unknown diagnosis {label!r}; use one of {DIAGNOSES}.")
    if dims not in (2, 3) or size < 8:
        raise ValueError(f"Need dims in (2, 3) and size >= 8, got dims={dims}, size={size}.")
    pal = XRAY if dims == 2 else CT
    px = 2.0 / (size - 1)
    base = _grid(dims, size)
    angle, shift = rng.uniform(-0.09, 0.09), rng.uniform(-0.05, 0.05, 2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    coords = base.copy()
    coords[:2] = np.einsum("ij,j...->i...", rot, base[:2]) * rng.uniform(0.93, 1.07) - shift.reshape(2, *([1] * dims))
    parts = _anatomy(rng, dims, label)
    masks = {k: e.mask(coords, 1.2 * px) for k, e in parts.items()}
    image = np.full(base.shape[1:], pal.background, dtype=np.float64)
    image = _blend(image, pal.body, masks["body"])
    image = _blend(image, pal.bone, masks["spine"])
    lungs = np.maximum(masks["lung_l"], masks["lung_r"])
    hilar = np.clip(1.0 - np.abs(coords[0]) / 0.7, 0, 1)  # vessels denser towards the hilum
    texture = pal.lung_texture * (smooth_noise(rng, image.shape, rng.uniform(0.026, 0.045) / px) + 1.5 * hilar)
    if dims == 2:  # posterior ribs: faint curved bands over the lung fields
        phase = (coords[1] + 0.35 * coords[0] ** 2) / rng.uniform(0.2, 0.26) + rng.uniform(0, 1)
        texture = texture + pal.lung_texture * rng.uniform(0.8, 1.6) * np.clip(np.cos(2 * np.pi * phase), 0, 1)
    image = _blend(image, pal.lung + texture, lungs)
    image = _blend(image, pal.heart, masks["heart"])
    if label in _FINDINGS:
        side = "lung_l" if rng.uniform() < 0.5 else "lung_r"
        heart_free = 1.0 - masks["heart"]
        scene = _Scene(coords, parts, parts[side], masks[side] * heart_free, heart_free, pal, px)
        image = _FINDINGS[label](image, scene, rng)
    image = _blur(image, rng.uniform(0.4, 0.9))
    if dims == 2:
        image = np.clip((image - 0.45) * rng.uniform(0.85, 1.15) + 0.45 + rng.uniform(-0.05, 0.05), 0, 1)
        image = image ** rng.uniform(0.85, 1.2) + rng.normal(0.0, rng.uniform(*pal.noise), image.shape)
        return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    image = image * rng.uniform(0.97, 1.03) + rng.uniform(-15, 15)
    image = image + rng.normal(0.0, rng.uniform(*pal.noise), image.shape)
    return np.round(np.clip(image, *pal.clip)).astype(np.int16)


def write_image(array: np.ndarray, path: str | Path, spacing_mm: float = 1.5) -> None:
    """Write a rendered image: 2D arrays as 8-bit grayscale PNG, 3D arrays as NIfTI (``.nii.gz``), through the
    format registry's writers (:func:`diagnosis.ingest.formats.write_image`).

    Args:
        array: ``(H, W)`` uint8 or ``(X, Y, Z)`` int16 array from :func:`render_image`.
        path: Destination; its suffix must be ``.png`` (2D) or ``.nii.gz`` (3D).
        spacing_mm: Isotropic voxel spacing stored in the NIfTI affine (ignored for PNG).

    Raises:
        ValueError: If the array rank or dtype does not match the file suffix.
    """
    path = Path(path)
    if array.ndim == 2 and path.suffix == ".png":
        if array.dtype != np.uint8:
            raise ValueError(f"PNG output needs a uint8 array, got {array.dtype}; render with dims=2.")
    elif not (array.ndim == 3 and path.name.endswith(".nii.gz")):
        raise ValueError(f"Cannot write a {array.ndim}D array to {path.name!r}: use .png for 2D or .nii.gz for 3D.")
    write_any_image(array, path, spacing_mm)
