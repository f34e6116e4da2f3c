"""Use case: where every pool sample sits on the map of a workspace's trained model.

The map is laid out once per trained model and cached in the workspace: a neighbour embedding
of the model's class probabilities and encodings (`ssvae.domain.maps.map_features`). A full
fit costs time that grows faster than the pool (60,000 rows took about 2 minutes on 2 shared
cores, benchmarks/README.md "The pool's map"), so above `fit_limit` rows the map is fitted on a
seeded sample and the other rows are placed on it by `transform`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.pool_scan import PREDICT_CHUNK, predict_chunks
from ssvae.application.workspace import WorkspaceService
from ssvae.domain.maps import (
    FloatArray,
    MapCache,
    MapLayout,
    MapProjector,
    PredictionCache,
    map_features,
    model_key,
)
from ssvae.domain.model import ModelPredictor, ModelRepository, Predictions
from ssvae.domain.workspace import Workspace

# Rows fitted in full; the rest are transformed onto the map of a sample this large. On 60,000
# MNIST rows, a fit on 10,000 with 50,000 transformed took 28 s on 2 cores (purity 0.949),
# on 20,000 34 s (0.945), a full fit about 2 minutes (benchmarks/README.md "The pool's map").
DEFAULT_FIT_LIMIT = 10_000
# Rows placed by one `transform` call. openTSNE places each new row against the fitted map
# alone (new rows do not move one another), so chunks give the very positions one call gives,
# while one call for 990,000 rows of a million-row pool held gigabytes; a chunk of 50,000
# holds tens of megabytes.
TRANSFORM_CHUNK = 50_000


@attrs.define
class MapService:
    """The map of a workspace's trained model: from the cache, or laid out and cached."""

    repository: ModelRepository
    workspaces: WorkspaceService
    projector: MapProjector
    cache: MapCache
    fit_limit: int = DEFAULT_FIT_LIMIT
    predict_chunk: int = PREDICT_CHUNK
    transform_chunk: int = TRANSFORM_CHUNK
    prediction_cache: PredictionCache | None = None

    def positions(self, workspace: Workspace) -> MapLayout:
        """(serial, x, y) of every pool sample, laid out with the spec's seed (the same model
        gives the same map); MapError when no model is trained yet."""
        key = model_key(workspace.metadata)
        cached = self.cache.load(workspace.directory, key, workspace.metadata.pool_size)
        if cached is not None:
            return cached
        # The map of the previous round, if any: the new one starts from it, so clusters stay
        # where the user last saw them instead of landing wherever a fresh layout puts them.
        previous = self.cache.load(workspace.directory, None, workspace.metadata.pool_size)
        pool = self.workspaces.pool(workspace)
        predictions = self.pool_predictions(
            workspace, pool.x, lambda: self.repository.load(workspace.checkpoint_dir)
        )
        features = map_features(predictions.class_probs, predictions.encoding)
        serials = np.asarray(pool.serials, np.int64)
        initial = None
        if previous is not None and np.array_equal(previous.serials, serials):
            initial = previous.positions
        layout = MapLayout(
            serials=serials,
            positions=self.layout(features, workspace.spec.training.seed, initial),
            model_key=key,
        )
        self.cache.save(workspace.directory, layout)
        return layout

    def pool_predictions(
        self,
        workspace: Workspace,
        x: npt.NDArray[np.float32],
        model: Callable[[], ModelPredictor],
    ) -> Predictions:
        """The predictions of the workspace's model (`model()`, loaded only when needed) on
        its pool `x`: read from the workspace's cache for a trained model, else predicted and,
        once a model is trained, cached for the next run (the map and the dashboard share
        them)."""
        if not workspace.metadata.rounds or self.prediction_cache is None:
            return predict_chunks(model(), x, self.predict_chunk)
        key = model_key(workspace.metadata)
        cached = self.prediction_cache.load(workspace.directory, key, len(x))
        if cached is not None:
            return cached
        predictions = predict_chunks(model(), x, self.predict_chunk)
        self.prediction_cache.save(workspace.directory, key, predictions)
        return predictions

    def layout(
        self, features: npt.NDArray[np.floating[Any]], seed: int, initial: FloatArray | None = None
    ) -> FloatArray:
        """2-D positions of `features`' rows: a full fit up to `fit_limit` rows, else a fit on
        a sample chosen by `seed` with the other rows transformed onto it. `initial`, the rows'
        positions on a previous map, is where the fit starts (the same rows of it when
        sampled). The projector sees float64 rows, a sample or a chunk at a time."""
        if len(features) <= self.fit_limit:
            fitted_all = self.projector.fit(np.asarray(features, np.float64), seed, initial)
            return np.asarray(fitted_all.positions, np.float64)
        order = np.random.default_rng(seed).permutation(len(features))
        fitted_rows, other_rows = order[: self.fit_limit], order[self.fit_limit :]
        start = None if initial is None else initial[fitted_rows]
        fitted = self.projector.fit(np.asarray(features[fitted_rows], np.float64), seed, start)
        positions = np.empty((len(features), 2), np.float64)
        positions[fitted_rows] = fitted.positions
        for first in range(0, len(other_rows), self.transform_chunk):
            rows = other_rows[first : first + self.transform_chunk]
            positions[rows] = fitted.transform(np.asarray(features[rows], np.float64))
        return positions
