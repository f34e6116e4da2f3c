"""Two-dimensional views of latent codes: the codes themselves, or their PCA projection."""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@attrs.frozen(eq=False)
class Projection:
    """Points in 2-D, the axis names, and the variance share each axis keeps (PCA only)."""

    points: FloatArray  # (n, 2)
    axis_names: tuple[str, str]
    explained: tuple[float, float] | None = None


def pca(points: npt.ArrayLike, components: int = 2) -> tuple[FloatArray, FloatArray]:
    """(projections (n, components), explained variance ratios) by SVD of the centred points.

    Signs are fixed so that the largest-magnitude loading of each axis is positive, which makes
    the result independent of the SVD routine's sign convention.
    """
    x = np.asarray(points, np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:components]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2
    total = variance.sum()
    ratios = variance[:components] / total if total > 0 else np.zeros(len(axes))
    projected: FloatArray = centred @ axes.T
    return projected, ratios


def to_2d(latent: npt.ArrayLike) -> Projection:
    """The latent itself when it has 2 dimensions (1: a zero second axis), PCA beyond."""
    z = np.asarray(latent, np.float64)
    if z.ndim != 2:
        raise ValueError(f"latent codes must be (samples, dims), got shape {z.shape}")
    if z.shape[1] == 1:
        return Projection(np.column_stack([z[:, 0], np.zeros(len(z))]), ("z1", "(none)"))
    if z.shape[1] == 2:
        return Projection(z.copy(), ("z1", "z2"))
    projected, ratios = pca(z, 2)
    return Projection(projected, ("PC 1", "PC 2"), (float(ratios[0]), float(ratios[1])))
