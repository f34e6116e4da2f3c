"""The pool's map: an openTSNE layout (`OpenTsneProjector`) and its cache in the workspace
(`NpzMapCache`).

openTSNE was chosen by benchmarks/map_purity.py: its FFT-accelerated gradient lays out tens of
thousands of rows in seconds on 2 cores, and its `transform` places new rows on a fitted map
without moving the old ones, which a sampled fit and a stable map across rounds both need.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ssvae.adapters.files import atomic_writer
from ssvae.domain.maps import FittedMap, FloatArray, MapError, MapLayout
from ssvae.domain.model import Predictions

MAP_FILE = "map.npz"
PREDICTIONS_FILE = "predictions.npz"
PERPLEXITY = 30.0  # openTSNE's default: about the number of neighbours each row keeps near
# Below this many rows a neighbour embedding has too few neighbours to mean anything (and
# openTSNE rejects a perplexity of less than one neighbour): the map is the rows' two main
# axes (PCA) instead.
MIN_TSNE_ROWS = 8
# openTSNE's space-partitioning trees recurse without end on rows that sit at one position (a
# segfault, seen on a fake model's identical outputs and a degenerate starting map), and its
# perplexity search gives NaN when every distance is zero: a seeded jitter this far below the
# rows' spread separates them without moving any visibly.
JITTER = 1e-6


class _TsneMap:
    """A fitted openTSNE embedding: the fitted rows' positions and `transform` for new rows."""

    def __init__(self, embedding: object) -> None:
        self._embedding = embedding

    @property
    def positions(self) -> FloatArray:
        return np.asarray(self._embedding, dtype=np.float64)

    def transform(self, features: FloatArray) -> FloatArray:
        if len(features) == 0:
            return np.empty((0, 2), np.float64)
        placed = self._embedding.transform(np.asarray(features, np.float64))  # type: ignore[attr-defined]
        return np.asarray(placed, dtype=np.float64)


class _PcaMap:
    """The two main axes of a few rows: a map for pools too small for t-SNE."""

    def __init__(self, features: FloatArray) -> None:
        self._mean = features.mean(axis=0)
        _, _, vt = np.linalg.svd(features - self._mean, full_matrices=False)
        axes = np.zeros((features.shape[1], 2))
        axes[:, : min(2, len(vt))] = vt[:2].T
        self._axes = axes
        self.positions: FloatArray = self.transform(features)

    def transform(self, features: FloatArray) -> FloatArray:
        return np.asarray((features - self._mean) @ self._axes, dtype=np.float64)


class OpenTsneProjector:
    """t-SNE with openTSNE (FFT-accelerated gradients, all cores), seeded: the same rows and
    seed give the same map."""

    def __init__(self, n_jobs: int = -1) -> None:
        self.n_jobs = n_jobs

    def fit(self, features: FloatArray, seed: int, initial: FloatArray | None = None) -> FittedMap:
        x = np.ascontiguousarray(features, dtype=np.float64)
        if len(x) < MIN_TSNE_ROWS:
            return _PcaMap(x)
        x = _separated(x, seed)
        # A perplexity needs three times as many other rows to choose neighbours from.
        perplexity = min(PERPLEXITY, (len(x) - 1) / 3)
        from openTSNE import TSNE  # here: importing it (and scikit-learn) costs seconds

        options: dict[str, Any] = {}
        if initial is not None:
            # Start from the earlier map at its own scale: its clusters are too far apart for
            # the early exaggeration to carry them across the map, yet it still gathers the
            # rows a better model now groups. (A fresh fit starts from the features' PCA,
            # whose axes turn with every retrain when classes are about equally far apart,
            # as class probabilities are.) Without the exaggeration, a map started from a
            # poor first round's blob stayed mixed: kNN purity 0.87 against 0.92.
            options = {"initialization": _separated(np.array(initial, dtype=np.float64), seed + 1)}
        tsne = TSNE(
            perplexity=perplexity,
            n_jobs=self.n_jobs,
            random_state=seed % (1 << 32),
            verbose=False,
            **options,
        )
        with _quiet_opentsne():
            return _TsneMap(tsne.fit(x))


def _separated(rows: FloatArray, seed: int) -> FloatArray:
    """`rows` plus seeded noise of JITTER times their widest spread (or JITTER when they all
    coincide), so that no two rows share a position."""
    spread = float(np.max(np.std(rows, axis=0))) if rows.size else 0.0
    scale = JITTER * (spread if spread > 0 else 1.0)
    noise = np.random.default_rng(seed % (1 << 32)).normal(0.0, scale, rows.shape)
    return np.asarray(rows + noise, dtype=np.float64)


@contextlib.contextmanager
def _quiet_opentsne() -> Iterator[None]:
    """openTSNE logs a warning for any starting map wider than its own tiny random one; an
    earlier converged map is meant to be that wide, so the warning would only mislead."""
    logger = logging.getLogger("openTSNE")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# What reading a damaged .npz can raise: not a zip, a truncated or corrupt member (zlib,
# EOF), an unsupported or encrypted zip entry (NotImplementedError, RuntimeError), a bad
# header (ValueError), arrays that do not make a map (MapError).
_UNREADABLE = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    zlib.error,
    MapError,
)
# The model key is a short hex digest; this bounds what its header may declare.
_KEY_CHARACTERS = 64


def _holds_a_map_of(path: Path, rows: int) -> bool:
    """Whether `path` is a zip of exactly the map's three arrays with the shapes and types a
    map of `rows` pool samples has, read from their headers alone."""
    expected = {
        "serials.npy": ((rows,), "i"),
        "positions.npy": ((rows, 2), "f"),
        "model_key.npy": ((), "U"),
    }
    with zipfile.ZipFile(path) as archive:
        if sorted(archive.namelist()) != sorted(expected):
            return False
        for name, (shape, kind) in expected.items():
            with archive.open(name) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(member)
                else:
                    return False
            declared, _, dtype = header
            if declared != shape or dtype.kind != kind or dtype.itemsize > 8 * _KEY_CHARACTERS:
                return False
    return True


class NpzMapCache:
    """The map of a workspace's current model in `<workspace>/map.npz`: serials, positions
    and the model's key, written atomically, so a crash leaves the old map or the new one."""

    def load(self, directory: Path, model_key: str | None, rows: int) -> MapLayout | None:
        path = Path(directory) / MAP_FILE
        try:
            # The headers first: an array is allocated at the size its header declares, so a
            # damaged file could otherwise ask for gigabytes before its data is read.
            if not _holds_a_map_of(path, rows):
                return None
            with np.load(path, allow_pickle=False) as data:
                stored_key = str(data["model_key"])
                if model_key is not None and stored_key != model_key:
                    return None
                return MapLayout(
                    serials=np.asarray(data["serials"], np.int64),
                    positions=np.asarray(data["positions"], np.float64),
                    model_key=stored_key,
                )
        except _UNREADABLE:
            # A cache that cannot be read is drawn again: nothing in it is the user's work.
            return None

    def save(self, directory: Path, layout: MapLayout) -> None:
        with atomic_writer(Path(directory) / MAP_FILE) as handle:
            np.savez(
                handle,
                serials=layout.serials,
                positions=layout.positions,
                model_key=np.asarray(layout.model_key),
            )


# The fields of Predictions a pool's cache keeps (reconstructions are a pool-sized image each,
# which no page reads); the first three are always there.
_PREDICTED = (
    "class_probs",
    "latent_mean",
    "certainty",
    "tau_probs",
    "ood_score",
    "responsibilities",
    "noise_sigma",
    "encoding",
)


def _declared(path: Path, rows: int) -> set[str] | None:
    """The Predictions fields `path` holds, read from the members' headers alone: None unless
    every member is a float array of `rows` rows (one or two axes), the model key a short
    string, and the arrays together declare no more bytes than the file holds (members are
    stored, not compressed), so a damaged header cannot ask for gigabytes."""
    budget = path.stat().st_size
    fields: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            field = name.removesuffix(".npy")
            with archive.open(name) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    return None
            if field == "model_key":
                if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * _KEY_CHARACTERS:
                    return None
                continue
            if field not in _PREDICTED or dtype.kind != "f" or not 1 <= len(shape) <= 2:
                return None
            if shape[0] != rows:
                return None
            budget -= int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            fields.add(field)
    if budget < 0 or not {"class_probs", "latent_mean", "certainty"} <= fields:
        return None
    return fields


class NpzPredictionCache:
    """A trained model's predictions on its pool in `<workspace>/predictions.npz`, with the
    model's key, written atomically: opening a million-row pool then reads them in seconds
    instead of predicting for minutes."""

    def load(self, directory: Path, model_key: str, rows: int) -> Predictions | None:
        path = Path(directory) / PREDICTIONS_FILE
        try:
            fields = _declared(path, rows)
            if fields is None:
                return None
            with np.load(path, allow_pickle=False) as data:
                if "model_key" not in data.files or str(data["model_key"]) != model_key:
                    return None
                return Predictions(**{field: np.asarray(data[field]) for field in fields})
        except _UNREADABLE:
            return None  # predicted again: nothing in it is the user's work

    def save(self, directory: Path, model_key: str, predictions: Predictions) -> None:
        arrays: dict[str, Any] = {
            field: np.asarray(value)
            for field in _PREDICTED
            if (value := getattr(predictions, field)) is not None
        }
        with atomic_writer(Path(directory) / PREDICTIONS_FILE) as handle:
            np.savez(handle, model_key=np.asarray(model_key), **arrays)


TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class MapTableFile:
    """`serial, x, y` per pool sample as Parquet (`.parquet`, `.pq`) or CSV (`.csv`)."""

    def check(self, path: Path) -> None:
        path = Path(path)
        if path.suffix.lower() not in TABLE_FORMATS:
            raise MapError(f"cannot write the map to {path}: name the file .parquet or .csv")
        if path.is_dir():
            raise MapError(f"cannot write the map to {path}: it is a folder; name a file")
        folder = path.parent
        if not folder.is_dir():
            raise MapError(
                f"cannot write the map to {path}: {folder} is not an existing folder; "
                "create it first"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise MapError(
                f"cannot write the map to {path}: folder {folder} is not writable; "
                "choose another --out"
            )

    def write(self, path: Path, layout: MapLayout) -> None:
        path = Path(path)
        self.check(path)
        if TABLE_FORMATS[path.suffix.lower()] == "csv":
            data = _csv_bytes(layout)
        else:
            data = _parquet_bytes(layout)
        try:
            with atomic_writer(path) as handle:
                handle.write(data)
        except OSError as error:
            raise MapError(
                f"cannot write the map to {path}: {error.strerror or error}; choose another --out"
            ) from None


def _csv_bytes(layout: MapLayout) -> bytes:
    buffer = io.StringIO()
    buffer.write("serial,x,y\n")
    table = np.column_stack([layout.serials, layout.positions])
    # %.17g keeps every float64 exactly, so a notebook reads the positions the cache holds.
    np.savetxt(buffer, table, fmt=["%d", "%.17g", "%.17g"], delimiter=",")
    return buffer.getvalue().encode("utf-8")


def _parquet_bytes(layout: MapLayout) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "serial": pa.array(layout.serials, pa.int64()),
            "x": pa.array(layout.positions[:, 0], pa.float64()),
            "y": pa.array(layout.positions[:, 1], pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())
