"""Training from a pool read on the fly (NPY mapped by chunks, Parquet row groups): the same
batches, and so the same parameters, as the pool in memory; memory bounded by the window."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.model.batches import (
    ArrayRows,
    NpyRows,
    ParquetRows,
    VectorFileRows,
    file_rows_source,
)
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.data import Samples
from ssvae.domain.errors import DataError
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.domain.spec import ModelSpec

VOCAB = ClassVocabulary(("a", "b", "c"))
WIDTH = 8


def pool_array(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, WIDTH)).astype(np.float32) * 0.3
    x[np.arange(n), y] += 2.0
    return x, y.astype(np.int64)


def write_parquet(path: Path, x: np.ndarray, row_group: int) -> None:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    table = pa.table({"id": np.arange(len(x), dtype=np.int64), "vector": vectors})
    pq.write_table(table, path, row_group_size=row_group)


def sources(tmp_path: Path, x: np.ndarray, window: int) -> dict[str, object]:
    np.save(tmp_path / "pool.npy", x)
    write_parquet(tmp_path / "pool.parquet", x, row_group=17)
    return {
        "memory": ArrayRows(x),
        "npy": NpyRows(tmp_path / "pool.npy", window_rows=window, chunk_rows=23),
        "parquet": ParquetRows(tmp_path / "pool.parquet", window_rows=window),
    }


def test_file_sources_give_the_in_memory_batches(tmp_path: Path) -> None:
    x, _ = pool_array(200)
    rng = np.random.default_rng(1)
    batches = [rng.permutation(200)[:32] for _ in range(9)] + [np.array([199, 0, 199])]
    for name, source in sources(tmp_path, x, window=50).items():
        got = list(source.gather(batches))  # type: ignore[attr-defined]
        assert len(got) == len(batches), name
        for rows, batch in zip(batches, got, strict=True):
            np.testing.assert_array_equal(batch, x[rows], err_msg=name)
    # A window closes once it holds 50 rows: two batches of 32 each, then the last two.
    parquet = ParquetRows(tmp_path / "pool.parquet", window_rows=50)
    list(parquet.gather(batches))
    assert parquet.passes == 5


def test_the_data_adapters_vector_rows_serve_the_same_batches(tmp_path: Path) -> None:
    """The vector files as `ssvae init` reads them (rows checked as read) serve the batches."""
    from ssvae.adapters.data.vector_files import read_vector_file

    x, _ = pool_array(90)
    np.save(tmp_path / "pool.npy", x)
    write_parquet(tmp_path / "pool.parquet", x, row_group=16)
    batches = [np.random.default_rng(3).permutation(90)[:20] for _ in range(6)]
    for name in ("pool.npy", "pool.parquet"):
        rows = read_vector_file(tmp_path / name, (None, None, None)).rows
        source = VectorFileRows(rows, window_rows=45)
        assert source.shape == (90, WIDTH)
        for want, got in zip(batches, source.gather(batches), strict=True):
            np.testing.assert_array_equal(got, x[want], err_msg=name)
        assert source.passes == 2  # a window closes at 45 rows or more: 3 batches of 20


def test_file_rows_map_pool_rows_to_file_rows(tmp_path: Path) -> None:
    x, _ = pool_array(60)
    np.save(tmp_path / "pool.npy", x)
    write_parquet(tmp_path / "pool.parquet", x, row_group=7)
    file_rows = np.random.default_rng(2).permutation(60)[:40]  # a subset, shuffled
    for path in ("pool.npy", "pool.parquet"):
        source = file_rows_source(tmp_path / path, file_rows)
        assert source.shape == (40, WIDTH)
        (batch,) = source.gather([np.arange(40)[::-1]])
        np.testing.assert_array_equal(batch, x[file_rows[::-1]])


def vector_spec(**overrides: object) -> ModelSpec:
    fields: dict[str, object] = dict(
        input_shape=(WIDTH,),
        num_classes=3,
        latent_dim=2,
        hidden_sizes=(16,),
        likelihood="gaussian",
        batch_size=16,
        labeled_batch_size=8,
        patience=0,
        validation_split=0.2,
        seed=4,
    )
    fields.update(overrides)
    return ModelSpec.from_fields(**fields)


def test_training_from_files_gives_the_in_memory_parameters(tmp_path: Path) -> None:
    x, y = pool_array(120)
    serials = np.arange(120, dtype=np.int64)
    labels = LabelSet.from_pairs(VOCAB, [(i, VOCAB.names[y[i]]) for i in range(9)])
    results = {}
    for name, source in sources(tmp_path, x, window=40).items():
        model = JaxSsvaeModel(vector_spec())
        report = model.fit(Samples(serials, source, y), labels, epochs=1)  # type: ignore[arg-type]
        results[name] = (
            [r.metrics["loss"] for r in report.history],
            [r.metrics["val_loss"] for r in report.history],
            jax.device_get(jax.tree_util.tree_leaves(model.state.params)),
            model.tau,
        )
    memory = results.pop("memory")
    for name, (loss, val_loss, leaves, tau) in results.items():
        assert loss == memory[0] and val_loss == memory[1], name
        for got, want in zip(leaves, memory[2], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(tau, memory[3])


def test_a_window_bounds_the_memory_of_a_pass(tmp_path: Path) -> None:
    """Gathering a whole epoch of a 40,000-row pool holds one window, not the pool."""
    rows, width = 40_000, 64
    x = np.random.default_rng(0).normal(size=(rows, width)).astype(np.float32)
    write_parquet(tmp_path / "big.parquet", x, row_group=2_000)
    np.save(tmp_path / "big.npy", x)
    pool_bytes = x.nbytes
    del x
    order = np.random.default_rng(1).permutation(rows).reshape(-1, 200)
    for source in (
        ParquetRows(tmp_path / "big.parquet", window_rows=2_000),
        NpyRows(tmp_path / "big.npy", window_rows=2_000, chunk_rows=2_000),
    ):
        tracemalloc.start()
        total = sum(float(batch[:, 0].sum()) for batch in source.gather(order))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.isfinite(total)
        assert peak < pool_bytes / 5, (type(source).__name__, peak, pool_bytes)


def test_a_row_of_another_width_is_named(tmp_path: Path) -> None:
    vectors = [[1.0, 2.0]] * 5 + [[1.0, 2.0, 3.0]] + [[0.0, 0.0]] * 4
    table = pa.table({"vector": pa.array(vectors, pa.list_(pa.float32()))})
    pq.write_table(table, tmp_path / "ragged.parquet", row_group_size=4)
    source = ParquetRows(tmp_path / "ragged.parquet")
    with pytest.raises(DataError, match=r"row 5 has 3 values, the first row 2"):
        list(source.gather([np.arange(10)]))


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("pool.npy", lambda p: np.save(p, np.arange(6)), r"rows of floats"),
        ("pool.npy", lambda p: p.write_bytes(b"not numpy"), r"not a readable \.npy"),
        ("pool.parquet", lambda p: p.write_bytes(b"PAR1 junk"), r"not a readable Parquet"),
        (
            "pool.parquet",
            lambda p: pq.write_table(pa.table({"v": [[1.0]]}), p),
            r"no column 'vector' \(it has v\)",
        ),
        ("pool.csv", lambda p: p.write_text("1,2\n"), r"use \.npy or \.parquet"),
    ],
)
def test_unreadable_pool_files_are_one_line(
    tmp_path: Path, name: str, write: object, message: str
) -> None:
    path = tmp_path / name
    write(path)  # type: ignore[operator]
    with pytest.raises(DataError, match=message) as caught:
        file_rows_source(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
