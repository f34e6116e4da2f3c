"""How text vectors are scaled before the model reads them.

The Gaussian likelihood assumes values of unit mean square (sigma = 1), which an embedder's
raw vectors rarely have. `l2` rescales every row to length sqrt(d); `standardise` centres and
scales each feature by the train split's statistics, which a workspace keeps so that its
messages always scale the same way; `none` keeps the vectors as the embedder gives them.
"""

from __future__ import annotations

import io
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.adapters.files import atomic_write_bytes
from ssvae.domain.echo import one_line
from ssvae.domain.errors import DataError

_MIN_STD = 1e-6  # features (nearly) constant on the pool are centred, not blown up

FloatArray = npt.NDArray[np.float32]


@attrs.frozen(eq=False)
class Scaling:
    """How vectors are scaled before the model reads them; statistics from the train split."""

    kind: str
    mean: FloatArray | None = None
    scale: FloatArray | None = None

    @classmethod
    def fit(cls, kind: str, pool: FloatArray) -> Scaling:
        """Standardise: the pool's per-feature mean and standard deviation; others: no data."""
        if kind != "standardise":
            return cls(kind)
        mean = pool.mean(axis=0, dtype=np.float64)
        std = pool.std(axis=0, dtype=np.float64)
        scale = np.where(std > _MIN_STD, std, 1.0)
        return cls(kind, mean.astype(np.float32), scale.astype(np.float32))

    def apply(self, x: FloatArray) -> FloatArray:
        """`x` scaled, float32."""
        if self.kind == "standardise":
            assert self.mean is not None and self.scale is not None
            return ((x - self.mean) / self.scale).astype(np.float32)
        if self.kind == "l2":
            # Length sqrt(d): only the direction counts, and every value has unit mean square,
            # the scale that the Gaussian likelihood's sigma = 1 assumes. Unit rows would make
            # the reconstruction term negligible and the latent space collapse.
            norms = np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(x.shape[1])
            return np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
        return np.asarray(x, np.float32)

    def save(self, path: Path) -> None:
        """Write the statistics to `path` (.npz, no pickle) atomically."""
        assert self.mean is not None and self.scale is not None
        buffer = io.BytesIO()
        np.savez(buffer, kind=np.array(self.kind), mean=self.mean, scale=self.scale)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path, dimension: int) -> Scaling:
        """Statistics written by `save`; DataError when unreadable or of another width."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                kind = str(archive["kind"])
                mean = archive["mean"].astype(np.float32)
                scale = archive["scale"].astype(np.float32)
        except (OSError, ValueError, KeyError) as error:
            raise DataError(
                f"{path}: the scaling statistics are unreadable ({one_line(error, 300)}); "
                "delete the file to recompute them from the pool"
            ) from None
        if mean.shape != (dimension,) or scale.shape != (dimension,) or not np.all(scale > 0):
            raise DataError(
                f"{path}: the scaling statistics do not fit {dimension}-D vectors; delete the "
                "file to recompute them from the pool"
            )
        return cls(kind, mean, scale)
