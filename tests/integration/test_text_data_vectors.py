"""Precomputed embeddings: VectorDataSource reads CSV and any width (1,536-D) in every format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.data.vectors import VectorDataSource
from ssvae.domain.errors import DataError
from ssvae.domain.spec import preset

WIDTH = 1536


def _embeddings(rows: int = 12, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(5).standard_normal((rows, width)).astype(np.float32)


def _csv(path: Path, x: np.ndarray, style: str, labels: list[str] | None = None) -> Path:
    lines = ["id,vector" + (",label" if labels else "")]
    for row, vector in enumerate(x):
        values = [repr(float(v)) for v in vector]
        cell = '"' + json.dumps([float(v) for v in vector]) + '"' if style == "json" else (
            " ".join(values)
        )  # fmt: skip
        lines.append(f"{10 * row},{cell}" + (f",{labels[row]}" if labels else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("style", ["json", "spaces"])
def test_csv_vectors_of_1536_values_round_trip(tmp_path: Path, style: str) -> None:
    x = _embeddings()
    labels = ["login", "disk", ""] * 4
    source = VectorDataSource(_csv(tmp_path / "e.csv", x, style, labels))
    info = source.describe()
    assert info.sample_shape == (WIDTH,) and info.vocabulary.names == ("disk", "login")
    samples = source.load("train", np.array([30, 0], dtype=np.int64))
    np.testing.assert_array_equal(samples.x, x[[3, 0]])  # repr() round-trips float32 exactly
    assert samples.y is not None and samples.y.tolist() == [1, 1]
    assert source.load("train").y.tolist() == [1, 0, -1] * 4  # type: ignore[union-attr]


def test_every_format_reads_1536_dimensional_vectors(tmp_path: Path) -> None:
    x = _embeddings()
    ids = np.arange(12) * 3
    np.save(tmp_path / "e.npy", x)
    np.savez(tmp_path / "e.npz", x=x, ids=ids)
    column = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), WIDTH)
    pq.write_table(pa.table({"id": ids, "embedding": column}), tmp_path / "e.parquet")
    for name in ("e.npy", "e.npz", "e.parquet"):
        source = VectorDataSource(tmp_path / name, classes=["a", "b"])
        assert source.describe().sample_shape == (WIDTH,)
        np.testing.assert_array_equal(source.load("train").x, x)
    spec = preset("text_standard").evolve(input_shape=(WIDTH,), num_classes=2)
    assert spec.network.input_shape == (WIDTH,) and spec.network.encoder_type == "dense"


BAD = {
    "ragged": ("id,vector\n1,1 2 3\n2,1 2\n", "line 3: vector has 2 values but line 2 has 3"),
    "nan": ('id,vector\n1,"[1, 2]"\n2,"[nan, 2]"\n', "line 3: vector has NaN or infinite"),
    "inf": ("id,vector\n1,1 2\n2,1 inf\n", "line 3: vector has NaN or infinite"),
    "too large": ("id,vector\n1,1 2\n2,1 1e50\n", "line 3: vector has NaN or infinite"),
    "word": ("id,vector\n1,1 2\n2,1 two\n", "line 3: vector value 'two' is not a number"),
    "empty vector": ("id,vector\n1,1 2\n2,\n", "line 3: vector is missing"),
    "duplicate id": ("id,vector\n1,1 2\n1,3 4\n", "line 3: id 1 repeats line 2"),
    "missing id": ("id,vector\n,1 2\n", "line 2: id is missing"),
    "bad id": ("id,vector\nx7,1 2\n", "line 2: id 'x7' is not an integer >= 0"),
    "short record": ("id,vector,label\n1,1 2\n", "line 2: 2 fields but the header has 3"),
    "bad label": ("id,vector,label\n1,1 2,a\n2,3 4,z\n", "line 3: label 'z' is not a class"),
    "no vector column": ("id,values\n1,1 2\n", "no vector column 'vector' or 'embedding'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_csv_vectors_name_the_line(tmp_path: Path, case: str) -> None:
    content, message = BAD[case]
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=re.escape(message)):
        VectorDataSource(path, classes=["a", "b"]).describe()
