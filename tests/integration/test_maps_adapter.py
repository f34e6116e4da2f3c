"""The openTSNE projector, the map's cache in the workspace and the map's table files."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssvae.adapters.maps import MAP_FILE, MapTableFile, NpzMapCache, OpenTsneProjector
from ssvae.domain.maps import MapError, MapLayout, map_purity


def _clusters(n_per: int = 60, classes: int = 4, dims: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian clusters, one a class."""
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 10, (classes, dims))
    y = np.repeat(np.arange(classes), n_per)
    return centres[y] + rng.normal(0, 1, (len(y), dims)), y


@pytest.fixture(scope="module")
def fitted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = _clusters()
    return x, y, OpenTsneProjector(n_jobs=1).fit(x, seed=5).positions


def test_separate_clusters_stay_separate_on_the_map(fitted: tuple) -> None:
    _, y, positions = fitted
    assert positions.shape == (len(y), 2) and np.all(np.isfinite(positions))
    assert map_purity(positions, y) >= 0.9


def test_the_same_rows_and_seed_give_the_same_map(fitted: tuple) -> None:
    x, _, positions = fitted
    assert np.array_equal(OpenTsneProjector(n_jobs=1).fit(x, seed=5).positions, positions)
    # On every core, as `ssvae map` runs it, too: the threads do not change the map.
    first, second = (OpenTsneProjector().fit(x, seed=5) for _ in range(2))
    assert np.array_equal(first.positions, second.positions)
    assert not np.array_equal(OpenTsneProjector().fit(x, seed=6).positions, first.positions)


def test_transform_places_a_fitted_row_next_to_its_own_position(fitted: tuple) -> None:
    x, _, _ = fitted
    fitted_map = OpenTsneProjector(n_jobs=1).fit(x, seed=5)
    placed = fitted_map.transform(x[:5])
    positions = fitted_map.positions
    spread = np.median(np.linalg.norm(positions - positions.mean(axis=0), axis=1))
    # Each row lands among the rows of its class: nearer its own position than a class apart.
    assert np.all(np.linalg.norm(placed - positions[:5], axis=1) < 0.25 * spread)
    assert fitted_map.transform(x[:0]).shape == (0, 2)


def test_a_handful_of_rows_gets_a_map_too() -> None:
    x, _ = _clusters(n_per=1, classes=3)
    fitted_map = OpenTsneProjector(n_jobs=1).fit(x, seed=0)
    assert fitted_map.positions.shape == (3, 2)
    assert fitted_map.transform(x).shape == (3, 2)


def _simplex_features(seed: int, n: int = 480, classes: int = 8) -> np.ndarray:
    """Rows near the corners of a simplex, as class probabilities are: every class about as
    far from every other, so the features' PCA (a fresh fit's start) has no preferred axes."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return 4.0 * np.eye(classes)[y] + rng.normal(0, 0.5, (n, classes))


def test_a_retrained_models_map_stays_where_the_previous_one_was() -> None:
    projector = OpenTsneProjector(n_jobs=1)
    previous = projector.fit(_simplex_features(0), seed=1).positions
    retrained = _simplex_features(1)  # the same rows, a little moved by another round
    spread = np.median(np.linalg.norm(previous - np.median(previous, axis=0), axis=1))

    def displacement(positions: np.ndarray) -> float:
        return float(np.median(np.linalg.norm(positions - previous, axis=1)) / spread)

    # A fresh layout of the retrained rows puts the clusters elsewhere; one started from the
    # previous map keeps them (each row moves a small part of the map's spread).
    assert displacement(projector.fit(retrained, seed=1).positions) > 0.5
    kept = projector.fit(retrained, seed=1, initial=previous).positions
    assert displacement(kept) < 0.3


def test_a_map_started_from_a_poor_rounds_blob_still_groups_the_classes() -> None:
    # A first round on few labels maps the pool as one blob; the next, better model must still
    # pull its classes apart from there, as a fresh layout would.
    rng = np.random.default_rng(0)
    classes = np.arange(2000) % 10
    features = 4.0 * np.eye(10)[classes] + rng.normal(0, 1.2, (2000, 10))
    blob = rng.normal(0, 20, (2000, 2))
    positions = OpenTsneProjector(n_jobs=1).fit(features, seed=1, initial=blob).positions
    assert map_purity(positions, classes) >= 0.85


def _map(n: int = 5, key: str = "model-a") -> MapLayout:
    positions = np.arange(2 * n, dtype=np.float64).reshape(n, 2) / 3
    return MapLayout(
        serials=np.arange(10, 10 + n, dtype=np.int64), positions=positions, model_key=key
    )


def test_the_cache_serves_its_model_only_and_redraws_a_damaged_file(tmp_path: Path) -> None:
    cache = NpzMapCache()
    assert cache.load(tmp_path, "model-a", 5) is None
    cache.save(tmp_path, _map())
    loaded = cache.load(tmp_path, "model-a", 5)
    assert loaded is not None and loaded.model_key == "model-a"
    assert np.array_equal(loaded.serials, _map().serials)
    assert np.array_equal(loaded.positions, _map().positions)
    assert cache.load(tmp_path, "model-b", 5) is None  # a retrained model
    previous = cache.load(tmp_path, None, 5)  # the map a retrained model's map starts from
    assert previous is not None and previous.model_key == "model-a"
    assert cache.load(tmp_path, "model-a", 6) is None  # another pool
    (tmp_path / MAP_FILE).write_bytes(b"PK\x03\x04 not a zip")
    assert cache.load(tmp_path, "model-a", 5) is None
    assert [p.name for p in tmp_path.iterdir()] == [MAP_FILE]  # no temporary file left


def test_the_table_is_parquet_or_csv_by_its_name(tmp_path: Path) -> None:
    writer = MapTableFile()
    writer.write(tmp_path / "map.parquet", _map())
    table = pq.read_table(tmp_path / "map.parquet")
    assert table.column_names == ["serial", "x", "y"]
    assert table.column("serial").to_pylist() == _map().serials.tolist()
    assert np.array_equal(table.column("y").to_numpy(), _map().positions[:, 1])
    writer.write(tmp_path / "map.csv", _map())
    lines = (tmp_path / "map.csv").read_text().splitlines()
    assert lines[0] == "serial,x,y" and len(lines) == 6
    csv = np.loadtxt(tmp_path / "map.csv", delimiter=",", skiprows=1)
    assert np.array_equal(csv[:, 1:], _map().positions)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/map.parquet", "is not an existing folder"),
        ("plain.txt/map.csv", "is not an existing folder"),
        ("map.txt", ".parquet or .csv"),
        ("folder.csv", "is a folder"),
    ],
)
def test_an_unwritable_table_is_refused_with_one_line_and_nothing_written(
    tmp_path: Path, name: str, message: str
) -> None:
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "plain.txt").write_text("a file, not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(MapError, match=message) as error:
        MapTableFile().write(tmp_path / name, _map())
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _npz_bytes(layout: MapLayout) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        serials=layout.serials,
        positions=layout.positions,
        model_key=np.asarray(layout.model_key),
    )
    return buffer.getvalue()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_a_damaged_cache_gives_a_map_or_none_never_an_error(
    tmp_path: Path, flips: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(_npz_bytes(_map()))
    for offset, value in flips:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    (tmp_path / MAP_FILE).write_bytes(bytes(data))
    loaded = NpzMapCache().load(tmp_path, "model-a", 5)
    assert loaded is None or (loaded.positions.shape == (5, 2) and loaded.serials.shape == (5,))


def test_a_header_that_declares_a_huge_map_is_not_allocated(tmp_path: Path) -> None:
    # A well formed zip whose positions header claims 10^11 rows (1.6 TB of float64).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in (
            ("serials", np.arange(5, dtype=np.int64)),
            ("model_key", np.asarray("model-a")),
        ):
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 2)}
        )
        archive.writestr("positions.npy", header.getvalue())
    (tmp_path / MAP_FILE).write_bytes(buffer.getvalue())
    tracemalloc.start()
    try:
        assert NpzMapCache().load(tmp_path, "model-a", 10**11) is None
        assert NpzMapCache().load(tmp_path, "model-a", 5) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
