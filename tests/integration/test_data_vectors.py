"""VectorDataSource on real NPY, NPZ and Parquet files: round trips and every malformed row."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.data.vectors import VectorDataSource
from ssvae.domain.errors import DataError


def _vectors(rows: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)


def _parquet(path: Path, columns: dict[str, pa.Array | list[object]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _list_column(x: np.ndarray, fixed: bool = False) -> pa.Array:
    if fixed:
        return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    return pa.array(list(x), type=pa.list_(pa.float32()))


def test_npy_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((10, 7))  # float64 on disk
    np.save(tmp_path / "emb.npy", x)
    source = VectorDataSource(tmp_path / "emb.npy", classes=["ok", "faulty"])
    info = source.describe()
    assert info.name == "emb" and info.kind == "vector" and not info.has_true_labels
    assert info.sample_shape == (7,) and info.split_sizes == (("train", 10),)
    assert info.vocabulary.names == ("ok", "faulty")
    np.testing.assert_array_equal(source.serials("train"), np.arange(10))
    samples = source.load("train")
    assert samples.x.dtype == np.float32 and samples.y is None
    np.testing.assert_array_equal(samples.x, x.astype(np.float32))


def test_npy_without_classes_asks_for_them(tmp_path: Path) -> None:
    np.save(tmp_path / "emb.npy", _vectors(4, 3))
    with pytest.raises(DataError, match="classes are unknown; give the class names"):
        VectorDataSource(tmp_path / "emb.npy").describe()


def test_npz_with_ids_and_class_names(tmp_path: Path) -> None:
    x = _vectors(5, 4)
    ids = np.array([40, 10, 30, 20, 50])
    names = np.array(["sshd", "hdfs", "", "sshd", "apache"])  # "" : truth unknown
    np.savez(tmp_path / "d.npz", x=x, ids=ids, y=names)
    source = VectorDataSource(tmp_path / "d.npz")
    info = source.describe()
    assert info.vocabulary.names == ("apache", "hdfs", "sshd")  # sorted distinct names
    assert info.has_true_labels
    np.testing.assert_array_equal(source.serials("train"), [10, 20, 30, 40, 50])
    everything = source.load("train")
    np.testing.assert_array_equal(everything.x, x[[1, 3, 2, 0, 4]])
    assert everything.y is not None
    assert everything.y.tolist() == [1, 2, -1, 2, 0]
    picked = source.load("train", np.array([50, 10], dtype=np.int64))
    np.testing.assert_array_equal(picked.serials, [50, 10])
    np.testing.assert_array_equal(picked.x, x[[4, 1]])
    assert picked.y is not None and picked.y.tolist() == [0, 1]


def test_npz_embeddings_with_class_indices(tmp_path: Path) -> None:
    x = _vectors(4, 3)
    np.savez(tmp_path / "d.npz", embeddings=x, labels=np.array([2, 0, -1, 2]))
    source = VectorDataSource(tmp_path / "d.npz")
    assert source.describe().vocabulary.names == ("0", "1", "2")
    samples = source.load("train")
    assert samples.y is not None and samples.y.tolist() == [2, 0, -1, 2]
    named = VectorDataSource(tmp_path / "d.npz", classes=["a", "b", "c", "d"])
    assert named.describe().vocabulary.names == ("a", "b", "c", "d")


@pytest.mark.parametrize("fixed", [False, True], ids=["list", "fixed_size_list"])
def test_parquet_1536_dimensions_with_a_test_split(tmp_path: Path, fixed: bool) -> None:
    train_x, test_x = _vectors(60, 1536, seed=1), _vectors(9, 1536, seed=2)
    labels = ["OpenSSH", "HDFS", "Apache"] * 20
    _parquet(
        tmp_path / "train.parquet",
        {
            "id": pa.array(np.arange(100, 160)[::-1]),
            "embedding": _list_column(train_x, fixed),
            "label": labels,
        },
    )
    _parquet(
        tmp_path / "test.parquet",
        {
            "id": pa.array(np.arange(9)),
            "embedding": _list_column(test_x, fixed),
            "label": ["Linux"] + [None] * 8,
        },
    )
    source = VectorDataSource(tmp_path / "train.parquet", tmp_path / "test.parquet", name="logs")
    info = source.describe()
    assert info.name == "logs" and info.sample_shape == (1536,)
    assert info.split_sizes == (("train", 60), ("test", 9))
    assert info.vocabulary.names == ("Apache", "HDFS", "Linux", "OpenSSH")
    train = source.load("train")
    np.testing.assert_array_equal(train.serials, np.arange(100, 160))
    np.testing.assert_array_equal(train.x, train_x[::-1])
    assert train.y is not None
    assert [info.vocabulary.names[i] for i in train.y[:3]] == labels[::-1][:3]
    test = source.load("test")
    np.testing.assert_array_equal(test.x, test_x)
    assert test.y is not None and test.y.tolist() == [2] + [-1] * 8


def test_parquet_custom_column_names_and_dictionary_labels(tmp_path: Path) -> None:
    x = _vectors(3, 2)
    _parquet(
        tmp_path / "t.parquet",
        {
            "msg_id": pa.array([7, 8, 9], type=pa.uint32()),
            "vec": pa.array(list(x.astype(np.float64)), type=pa.list_(pa.float64())),
            "system": pa.array(["b", "a", "b"]).dictionary_encode(),
        },
    )
    source = VectorDataSource(
        tmp_path / "t.parquet", id_column="msg_id", vector_column="vec", label_column="system"
    )
    samples = source.load("train")
    np.testing.assert_array_equal(samples.serials, [7, 8, 9])
    np.testing.assert_allclose(samples.x, x)
    assert samples.y is not None and samples.y.tolist() == [1, 0, 1]


def _npy(tmp_path: Path, array: np.ndarray) -> Path:
    np.save(tmp_path / "bad.npy", array)
    return tmp_path / "bad.npy"


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    np.savez(tmp_path / "bad.npz", **arrays)  # type: ignore[arg-type]
    return tmp_path / "bad.npz"


def _with(x: np.ndarray, row: int, value: float) -> np.ndarray:
    x = x.astype(np.float64)
    x[row, 1] = value
    return x


MALFORMED_ARRAYS = {
    "3-D": (lambda p: _npy(p, np.zeros((2, 3, 4))), "shape (2, 3, 4); expected a 2-D array"),
    "1-D": (lambda p: _npy(p, np.zeros(5)), "shape (5,); expected a 2-D array"),
    "no rows": (lambda p: _npy(p, np.zeros((0, 3))), "holds no vectors"),
    "text": (lambda p: _npy(p, np.array([["a", "b"]])), "expected numbers"),
    "NaN": (lambda p: _npy(p, _with(_vectors(6, 3), 3, np.nan)), "row 3: vector has NaN"),
    "Inf": (lambda p: _npy(p, _with(_vectors(6, 3), 5, -np.inf)), "row 5: vector has NaN"),
    "too large": (
        lambda p: _npy(p, _with(_vectors(6, 3), 2, 1e300)),
        "row 2: vector has NaN or infinite values (or values too large for float32)",
    ),
    "duplicate id": (
        lambda p: _npz(p, x=_vectors(4, 2), ids=np.array([5, 1, 7, 1])),
        "row 3: id 1 repeats row 1",
    ),
    "negative id": (
        lambda p: _npz(p, x=_vectors(3, 2), ids=np.array([0, -4, 2])),
        "row 1: id -4 is negative",
    ),
    "float ids": (
        lambda p: _npz(p, x=_vectors(2, 2), ids=np.array([0.0, 1.0])),
        "ids must be non-negative integers",
    ),
    "too few ids": (
        lambda p: _npz(p, x=_vectors(3, 2), ids=np.array([0, 1])),
        "3 vectors but ids of shape",
    ),
    "no x": (lambda p: _npz(p, vectors=_vectors(3, 2)), "no array 'x' or 'embeddings'"),
    "too few labels": (
        lambda p: _npz(p, x=_vectors(3, 2), y=np.array(["a", "b"])),
        "3 vectors but labels of shape",
    ),
    "bad class index": (
        lambda p: _npz(p, x=_vectors(3, 2), y=np.array([0, 1, -2])),
        "row 2: label -2 is not a class index",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED_ARRAYS))
def test_malformed_npy_and_npz_are_rejected(tmp_path: Path, case: str) -> None:
    make, message = MALFORMED_ARRAYS[case]
    path = make(tmp_path)
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        VectorDataSource(path, classes=["a", "b"]).describe()
    assert str(path) in str(caught.value)


def _table(**overrides: object) -> dict[str, object]:
    columns: dict[str, object] = {
        "id": pa.array([0, 1, 2, 3, 4], type=pa.int64()),
        "vector": pa.array([[0.0, 1.0, 2.0]] * 5, type=pa.list_(pa.float32())),
        "label": ["a", "b", "a", "b", "a"],
    }
    columns.update(overrides)
    return columns


MALFORMED_TABLES = {
    "missing id": (_table(id=pa.array([0, 1, None, 3, 4])), "row 2: id is missing"),
    "duplicate id": (_table(id=pa.array([0, 1, 2, 0, 4])), "row 3: id 0 repeats row 0"),
    "negative id": (_table(id=pa.array([0, 1, 2, 3, -9])), "row 4: id -9 is negative"),
    "text ids": (_table(id=["a", "b", "c", "d", "e"]), "ids must be non-negative integers"),
    "ragged": (
        _table(vector=[[0.0, 1.0, 2.0]] * 4 + [[1.0, 2.0]]),
        "row 4: vector has 2 values but row 0 has 3",
    ),
    "missing vector": (
        _table(vector=[[0.0, 1.0, 2.0], None] * 2 + [[1.0, 2.0, 3.0]]),
        "row 1: vector is missing",
    ),
    "missing value": (
        _table(vector=[[0.0, 1.0, 2.0]] * 2 + [[0.0, None, 2.0]] + [[0.0, 1.0, 2.0]] * 2),
        "row 2: vector has a missing value",
    ),
    "NaN": (
        _table(vector=[[0.0, 1.0, 2.0]] * 3 + [[0.0, float("nan"), 2.0]] + [[0.0, 1.0, 2.0]]),
        "row 3: vector has NaN",
    ),
    "text vectors": (_table(vector=[["x"]] * 5), "holds lists of string"),
    "scalar vectors": (_table(vector=[1.0] * 5), "expected a list of numbers per row"),
    "unknown label": (_table(label=["a", "b", "zebra", "a", "b"]), "row 2: label 'zebra'"),
    "float labels": (_table(label=[0.5] * 5), "use class names or class indices"),
}


@pytest.mark.parametrize("case", list(MALFORMED_TABLES))
def test_malformed_parquet_rows_are_named(tmp_path: Path, case: str) -> None:
    columns, message = MALFORMED_TABLES[case]
    path = _parquet(tmp_path / "bad.parquet", columns)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        VectorDataSource(path, classes=["a", "b"]).describe()
    assert str(path) in str(caught.value)


def test_parquet_without_the_needed_columns_lists_those_found(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "t.parquet", {"key": [1, 2], "vector": [[1.0], [2.0]]})
    with pytest.raises(DataError, match="no id column 'id' or 'serial' \\(columns: key, vector\\)"):
        VectorDataSource(path, classes=["a", "b"]).describe()
    with pytest.raises(DataError, match="no label column 'kind'"):
        VectorDataSource(path, id_column="key", label_column="kind").describe()


def test_unreadable_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="vector file not found"):
        VectorDataSource(tmp_path / "absent.npy").describe()
    (tmp_path / "v.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=re.escape("unknown vector file type '.txt'")):
        VectorDataSource(tmp_path / "v.txt").describe()
    (tmp_path / "v.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        VectorDataSource(tmp_path / "v.parquet").describe()
    (tmp_path / "v.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(DataError, match=re.escape("not a readable .npy array")):
        VectorDataSource(tmp_path / "v.npy").describe()


def test_splits_must_have_the_same_width(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _vectors(3, 4))
    np.save(tmp_path / "b.npy", _vectors(3, 5))
    with pytest.raises(DataError, match=r"vectors have 5 values but those in .* have 4"):
        VectorDataSource(tmp_path / "a.npy", tmp_path / "b.npy", classes=["a", "b"]).describe()


def test_unknown_serial_and_split(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=_vectors(3, 2), ids=np.array([3, 6, 9]))
    source = VectorDataSource(tmp_path / "d.npz", classes=["a", "b"])
    for wanted in ([4], [10], [0], [9, 2]):
        with pytest.raises(DataError, match="is not in split 'train'"):
            source.load("train", np.array(wanted, dtype=np.int64))
    with pytest.raises(DataError, match="no split 'test'"):
        source.load("test")
    assert source.load("train", np.array([], dtype=np.int64)).x.shape == (0, 2)


def test_a_file_gone_after_it_was_described_is_one_line(tmp_path: Path) -> None:
    """Vectors are read from the file when asked for (a pool may not fit in memory), so a
    file deleted since the dataset was described is a clear error, not a traceback."""
    np.save(tmp_path / "e.npy", _vectors(3, 2))
    source = VectorDataSource(tmp_path / "e.npy", classes=["a", "b"])
    np.testing.assert_array_equal(source.load("train").x, _vectors(3, 2))
    (tmp_path / "e.npy").unlink()
    with pytest.raises(DataError, match=r"cannot be read any more .* put it back") as caught:
        source.load("train")
    assert "\n" not in str(caught.value)
