"""The 2-D map of a pool: what it is built from, how well it groups classes, and its port.

The dashboard's promise is to label in the map: lasso a group, name it. In M2 the latent z
holds the style that the label leaves out, so a PCA of the latent means mixes the classes
(kNN purity 0.29 on MNIST, benchmarks/README.md "The pool's map"). The map is therefore an
embedding of what the model knows of each sample: its class probabilities q(y|x) beside its
encodings, laid out by a neighbour embedding (`MapProjector`) that keeps near rows near.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import SsvaeError
from ssvae.domain.model import Predictions
from ssvae.domain.workspace import WorkspaceMetadata

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Neighbours voting on a row's class in `map_purity`: odd, so two classes cannot tie.
PURITY_NEIGHBOURS = 11
# The class probabilities weigh this much against the encodings (whose rows are scaled to unit
# mean norm): the probabilities carry the class, the encodings split a class by style without
# pulling classes together. Chosen by benchmarks/map_purity.py.
PROBABILITY_WEIGHT = 2.0
# Distances to a block of reference rows are a (block, n) array: this bounds it to about
# 32 MiB of float64 whatever n is.
_DISTANCE_BLOCK_ELEMENTS = 1 << 22


class MapError(SsvaeError):
    """A map cannot be built from these outputs."""


def model_key(metadata: WorkspaceMetadata) -> str:
    """A short name of the workspace's trained model: its pool and its last finished round
    (index, time, labels, epochs). Every training round changes it, so a cached map is never
    served for a model other than the one it was drawn from. MapError before any round."""
    if not metadata.rounds:
        raise MapError(
            f"workspace {metadata.id!r} has no trained model yet: label some samples and run "
            "ssvae train first"
        )
    last = metadata.rounds[-1]
    text = "|".join(
        str(part)
        for part in (
            metadata.pool_fingerprint,
            len(metadata.rounds),
            last.index,
            last.finished,
            last.labels_used,
            last.epochs_run,
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def map_features(
    probs: npt.ArrayLike, encodings: npt.ArrayLike | None, block: int = 65_536
) -> npt.NDArray[np.float32]:
    """The rows a map lays out: q(y|x) (weighted by PROBABILITY_WEIGHT) beside the encodings
    centred and scaled to unit mean row norm, so neither part's scale depends on the model's
    latent size. Without encodings (a model that has none) the probabilities alone.

    Built in float32 in one array, `block` rows at a time: a million rows' encodings (20
    classes x 32 latent dimensions each) are 2.6 GB as they are, and each float64 temporary of
    them five more (the layout reads a sample and chunks of rows, in float64, from it)."""
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[0] == 0:
        raise MapError(f"class probabilities of shape {p.shape} cannot be mapped: need (n, C)")
    rows, classes = p.shape
    e = None if encodings is None else np.asarray(encodings).reshape(rows, -1)
    width = classes + (0 if e is None else e.shape[1])
    features = np.empty((rows, width), np.float32)
    features[:, :classes] = PROBABILITY_WEIGHT * p
    if e is not None:
        mean = np.zeros(e.shape[1])
        for start in range(0, rows, block):
            mean += e[start : start + block].sum(axis=0, dtype=np.float64)
        mean /= rows
        norms = 0.0
        for start in range(0, rows, block):
            centred = e[start : start + block].astype(np.float64) - mean
            norms += float(np.linalg.norm(centred, axis=1).sum())
            features[start : start + block, classes:] = centred
        scale = norms / rows
        if scale > 0:
            for start in range(0, rows, block):
                features[start : start + block, classes:] /= np.float32(scale)
    if not np.all(np.isfinite(features)):
        raise MapError("the model's outputs hold NaN or infinite values: retrain the model")
    return features


def map_purity(
    positions: npt.ArrayLike,
    classes: npt.ArrayLike,
    neighbours: int = PURITY_NEIGHBOURS,
    seed: int = 0,
) -> float:
    """How well a map groups classes: rows split in two halves by `seed`; each row of the
    second half takes the majority class of its `neighbours` nearest rows of the first half;
    the share it gets right. 1.0 when every class sits apart, about the largest class's share
    when the map ignores class."""
    xy = np.asarray(positions, dtype=np.float64)
    y = np.asarray(classes, dtype=np.int64)
    if xy.ndim != 2 or y.shape != (xy.shape[0],) or xy.shape[0] < 2 * neighbours:
        raise MapError(
            f"map_purity needs (n, d) positions with n >= {2 * neighbours} and one class a row"
        )
    order = np.random.default_rng(seed).permutation(len(y))
    reference, probe = order[: len(y) // 2], order[len(y) // 2 :]
    ref_xy, ref_y = xy[reference], y[reference]
    ref_norms = np.einsum("ij,ij->i", ref_xy, ref_xy)
    num_classes = int(y.max()) + 1
    block = max(1, _DISTANCE_BLOCK_ELEMENTS // len(reference))
    correct = 0
    for start in range(0, len(probe), block):
        rows = probe[start : start + block]
        distances = ref_norms[None, :] - 2.0 * xy[rows] @ ref_xy.T
        nearest = np.argpartition(distances, neighbours - 1, axis=1)[:, :neighbours]
        votes = np.zeros((len(rows), num_classes), dtype=np.int64)
        np.add.at(votes, (np.arange(len(rows))[:, None], ref_y[nearest]), 1)
        correct += int(np.sum(votes.argmax(axis=1) == y[rows]))
    return correct / len(probe)


class FittedMap(Protocol):
    """A map fitted on some rows: their positions, and a way to place new rows on it."""

    @property
    def positions(self) -> FloatArray:
        """(n, 2) positions of the rows the map was fitted on, in their order."""
        ...

    def transform(self, features: FloatArray) -> FloatArray:
        """(m, 2) positions of new rows placed on this map; the fitted rows do not move."""
        ...


class MapProjector(Protocol):
    """Lays rows of features out in 2-D so that rows near in features are near on the map."""

    def fit(self, features: FloatArray, seed: int, initial: FloatArray | None = None) -> FittedMap:
        """The map of `features` (n, d); the same rows and seed give the same map. `initial`
        (n, 2), when given, are positions to start from: the rows' places on an earlier map,
        so a retrained model's map keeps its clusters where the user saw them."""
        ...


@attrs.frozen
class MapLayout:
    """Where every pool sample sits on the map of one trained model. `model_key` names the
    model (its checkpoint's step and fingerprint), so a retrained model gets a new map."""

    serials: IntArray
    positions: FloatArray
    model_key: str

    def __attrs_post_init__(self) -> None:
        if self.positions.shape != (len(self.serials), 2):
            raise MapError(
                f"a map needs one (x, y) a serial: {len(self.serials)} serials, "
                f"positions of shape {self.positions.shape}"
            )


class MapCache(Protocol):
    """Keeps a workspace's map between runs, so each trained model is laid out once."""

    def load(self, directory: Path, model_key: str | None, rows: int) -> MapLayout | None:
        """The map of `rows` pool samples cached in workspace `directory` for model
        `model_key` (None: for whichever model it was drawn, the previous map a new one starts
        from); None when there is none, it belongs to another model or another pool, or it
        cannot be read (it is drawn again)."""
        ...

    def save(self, directory: Path, layout: MapLayout) -> None:
        """Cache `layout` in workspace `directory` (atomically), replacing any older map."""
        ...


class PredictionCache(Protocol):
    """Keeps a trained model's predictions on its pool between runs: a pool of a million rows
    takes minutes to predict on a small CPU, and seconds to read back."""

    def load(self, directory: Path, model_key: str, rows: int) -> Predictions | None:
        """The predictions on `rows` pool samples cached in workspace `directory` for model
        `model_key`; None when there are none, they belong to another model or pool, or they
        cannot be read (they are predicted again)."""
        ...

    def save(self, directory: Path, model_key: str, predictions: Predictions) -> None:
        """Cache `predictions` of model `model_key` in workspace `directory` (atomically)."""
        ...


class MapTableWriter(Protocol):
    """Writes a map as a table of serial, x and y, for notebooks and tests."""

    def check(self, path: Path) -> None:
        """MapError when `path` cannot be written (its folder is missing or read-only, it is a
        folder, or its suffix names no format), before any work is spent on the map."""
        ...

    def write(self, path: Path, layout: MapLayout) -> None:
        """Write `layout` to `path` atomically: Parquet, or CSV when it ends in .csv."""
        ...
