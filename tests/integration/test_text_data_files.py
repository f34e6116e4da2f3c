"""TextDataSource on real CSV, JSONL and Parquet files: columns, splits, vectors, bad rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssvae.adapters.data.text_source import TextDataSource, TextSourceSettings, held_out_rows
from ssvae.adapters.data.text_table import read_text_table
from ssvae.domain.errors import DataError
from ssvae.domain.ports import text_catalog

SYSTEMS = ("sshd", "kernel", "disk")
WORDS = {
    "sshd": "Accepted password for user {n} from 10.0.{n}.1 port {p} ssh2",
    "kernel": "kernel: CPU{n} temperature above threshold, cpu clock throttled {p}",
    "disk": "disk sda{n} I/O error, dev sda, sector {p} read failed",
}


def _rows(count: int = 60) -> list[dict[str, object]]:
    rows = []
    for i in range(count):
        system = SYSTEMS[i % 3]
        text = WORDS[system].format(n=i % 7, p=1000 + 37 * i)
        rows.append({"id": 100 + i, "text": text, "label": system, "host": f"h{i % 4}"})
    return rows


def _csv(path: Path, rows: list[dict[str, object]], header: str = "id,text,label,host") -> Path:
    names = header.split(",")
    lines = [header]
    for row in rows:
        cells = []
        for name in names:
            value = str(row.get(name, ""))
            cells.append('"' + value.replace('"', '""') + '"' if "," in value else value)
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _source(path: Path, tmp_path: Path, **options: object) -> TextDataSource:
    settings: dict[str, object] = {"embedder_dim": 8, "cache_dir": tmp_path / "cache"}
    settings.update(options)
    return TextDataSource(TextSourceSettings(train_path=path, **settings))  # type: ignore[arg-type]


def test_csv_splits_texts_extras_and_vectors(tmp_path: Path) -> None:
    source = _source(
        _csv(tmp_path / "m.csv", _rows()), tmp_path, split_seed=3, scaling="standardise"
    )
    info = source.describe()
    assert info.kind == "text" and info.name == "m" and info.sample_shape == (8,)
    assert info.vocabulary.names == ("disk", "kernel", "sshd")
    assert info.split_sizes == (("train", 48), ("test", 12))  # 4 of each class's 20 held out
    assert text_catalog(source) is source
    train, test = source.serials("train"), source.serials("test")
    assert set(train).isdisjoint(test) and sorted([*train, *test]) == list(range(100, 160))
    picked = np.array([test[1], test[0]], dtype=np.int64)
    rows = {int(r["id"]): r for r in _rows()}  # type: ignore[call-overload]
    assert source.texts("test", picked) == [rows[int(s)]["text"] for s in picked]
    assert source.extras("test", picked) == {"host": [rows[int(s)]["host"] for s in picked]}
    samples = source.load("train")
    assert samples.x.shape == (48, 8) and samples.x.dtype == np.float32
    np.testing.assert_allclose(samples.x.mean(axis=0), 0.0, atol=1e-5)  # standardised on pool
    np.testing.assert_allclose(samples.x.std(axis=0), 1.0, atol=1e-3)
    assert samples.y is not None
    names = [info.vocabulary.names[i] for i in samples.y]
    assert names == [rows[int(s)]["label"] for s in samples.serials]
    again = source.load("test", picked)
    np.testing.assert_array_equal(again.serials, picked)
    np.testing.assert_array_equal(again.x, source.load("test").x[[1, 0]])


def test_the_same_seed_holds_out_the_same_rows_and_another_seed_others(tmp_path: Path) -> None:
    path = _csv(tmp_path / "m.csv", _rows())
    first = _source(path, tmp_path, split_seed=1).serials("test")
    np.testing.assert_array_equal(first, _source(path, tmp_path, split_seed=1).serials("test"))
    assert not np.array_equal(first, _source(path, tmp_path, split_seed=2).serials("test"))
    labels = np.array([0] * 10 + [1] * 5 + [-1] * 7 + [2] * 3)
    held = held_out_rows(labels, 0.2, seed=0)
    assert [int((labels[held] == c).sum()) for c in (0, 1, 2, -1)] == [2, 1, 1, 0]
    assert held_out_rows(labels, 0.0, seed=0).size == 0


def test_jsonl_and_parquet_read_like_csv(tmp_path: Path) -> None:
    rows = _rows()
    csv_source = _source(_csv(tmp_path / "m.csv", rows), tmp_path)
    json_source = _source(_jsonl(tmp_path / "m.jsonl", rows), tmp_path)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    parquet_source = _source(tmp_path / "m.parquet", tmp_path)
    expected = csv_source.load("train")
    for other in (json_source, parquet_source):
        assert other.describe().split_sizes == csv_source.describe().split_sizes
        got = other.load("train")
        np.testing.assert_array_equal(got.serials, expected.serials)
        np.testing.assert_allclose(got.x, expected.x, atol=1e-6)
        serials = other.serials("test")
        assert other.texts("test", serials) == csv_source.texts("test", serials)
        assert other.extras("test", serials) == csv_source.extras("test", serials)


def test_named_columns_unlabelled_rows_rare_classes_and_a_test_file(tmp_path: Path) -> None:
    rows = [
        {"key": r["id"], "message": r["text"], "kind": r["label"] if i % 5 else ""}
        for i, r in enumerate(_rows())
    ]
    rows[0]["kind"] = "rare"  # one message only: below --min-class-size 2, so unknown
    train = _jsonl(tmp_path / "train.jsonl", rows[:45])
    test = _jsonl(tmp_path / "test.jsonl", rows[45:])
    source = _source(
        train, tmp_path, test_path=test, id_column="key", text_column="message",
        label_column="kind", min_class_size=2,
    )  # fmt: skip
    info = source.describe()
    assert info.vocabulary.names == ("disk", "kernel", "sshd")
    assert info.split_sizes == (("train", 45), ("test", 15))
    y = source.load("train").y
    assert y is not None and y[0] == -1 and int((y == -1).sum()) == 9  # rows 0, 5, ... 40
    assert source.extras("train", source.serials("train")[:2]) == {}


def test_unlabelled_file_needs_classes_and_then_has_no_test_split(tmp_path: Path) -> None:
    rows = [{"id": r["id"], "text": r["text"]} for r in _rows()]
    path = _csv(tmp_path / "m.csv", rows, header="id,text")
    with pytest.raises(DataError, match=r"no labels, so the classes are unknown.*--classes"):
        _source(path, tmp_path).describe()
    source = _source(path, tmp_path, classes=["ok", "fault"])
    info = source.describe()
    assert info.split_sizes == (("train", 60),) and not info.has_true_labels
    assert source.load("train").y is None


BAD_CSV = {
    "duplicate id": ("id,text\n1,a b\n2,c d\n1,e f\n", "line 4: id 1 repeats line 2"),
    "missing id": ("id,text\n1,a b\n,c d\n", "line 3: the id is missing"),
    "negative id": ("id,text\n-4,a b\n", "line 2: id '-4' is not an integer >= 0"),
    "word id": ("id,text\nabc,a b\n", "line 2: id 'abc' is not an integer"),
    "empty text": ('id,text\n1,a b\n2,"   "\n', "line 3: the message is empty"),
    # The quoted text spans lines 2-3, so the next record starts on line 4.
    "multi-line text": ('id,text\n1,"a\nb"\n2,\n', "line 4: the message is empty"),
    "short record": ("id,text,label\n1,a b,x\n2,c d\n", "line 3: 2 fields but the header has 3"),
    "spaced label": ("id,text,label\n1,a b,x\n2,c d, y\n", "line 3: label ' y' has spaces"),
    "one class": ("id,text,label\n1,a b,x\n2,c d,x\n", "only 1 class"),
    "no text column": ("id,body\n1,a b\n", "no text column 'text' or 'message'"),
    "repeated column": ("id,text,text\n1,a,b\n", "column(s) text appear twice"),
    "empty file": ("", "the file is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_malformed_csv_names_the_line(tmp_path: Path, case: str) -> None:
    content, message = BAD_CSV[case]
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        _source(path, tmp_path, classes=None if "label" in content else ["a", "b"]).describe()
    assert str(path) in str(caught.value)


BAD_JSONL = {
    "not json": ('{"id": 1, "text": "a b"}\n\n{"id": 2, text}\n', "line 3: not valid JSON"),
    "not an object": ('{"id": 1, "text": "a b"}\n[2, "c"]\n', "line 2: holds a list"),
    "null text": ('{"id":1,"text":"a"}\n{"id":2,"text":null}\n', "line 2: the message is missing"),
    "number text": ('{"id": 1, "text": 5}\n', "line 1: the message is 5, not text"),
    "float id": ('{"id": 1.5, "text": "a"}\n', "line 1: id 1.5 is not an integer"),
    "bool id": ('{"id": true, "text": "a"}\n', "line 1: id True is not an integer"),
    "list label": ('{"id": 1, "text": "a", "label": [1]}\n', "line 1: label [1] is not a class"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_JSONL))
def test_malformed_jsonl_names_the_line(tmp_path: Path, case: str) -> None:
    content, message = BAD_JSONL[case]
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)):
        _source(path, tmp_path, classes=["a", "b"]).describe()


def test_malformed_parquet_names_the_row_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": [5, 6, 5], "text": ["a", "b", "c"]}), path)
    with pytest.raises(DataError, match=re.escape("row 2: id 5 repeats row 0")):
        read_text_table(path)
    pq.write_table(pa.table({"id": [5, None], "text": ["a", "b"]}), path)
    with pytest.raises(DataError, match=re.escape("row 1: the id is missing")):
        read_text_table(path)
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_text_table(path)


def test_labels_outside_the_given_classes_and_unknown_files(tmp_path: Path) -> None:
    path = _csv(tmp_path / "m.csv", _rows())
    with pytest.raises(DataError, match=re.escape("line 2: label 'sshd' is not a class")):
        _source(path, tmp_path, classes=["disk", "kernel"]).describe()
    with pytest.raises(DataError, match="text file not found"):
        _source(tmp_path / "absent.csv", tmp_path).describe()
    (tmp_path / "m.txt").write_text("id,text\n")
    with pytest.raises(DataError, match=re.escape("unknown text file type '.txt'")):
        _source(tmp_path / "m.txt", tmp_path).describe()
    (tmp_path / "latin.csv").write_bytes("id,text\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        _source(tmp_path / "latin.csv", tmp_path, classes=["a", "b"]).describe()
    with pytest.raises(DataError, match="--embedder-folder PATH"):
        _source(path, tmp_path, embedder="minilm")
    with pytest.raises(DataError, match="no such folder"):
        _source(path, tmp_path, embedder="minilm", embedder_folder=tmp_path / "nope").describe()


def test_scalings_and_a_too_small_pool_for_the_tfidf_dimension(tmp_path: Path) -> None:
    path = _csv(tmp_path / "m.csv", _rows())
    scaled = _source(path, tmp_path, scaling="l2").load("train").x
    np.testing.assert_allclose(np.mean(scaled**2, axis=1), 1.0, atol=1e-5)  # length sqrt(8)
    raw = _source(path, tmp_path, scaling="none").load("train").x
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-5)  # tfidf: unit rows
    np.testing.assert_allclose(scaled, raw * np.sqrt(8), atol=1e-5)
    with pytest.raises(DataError, match="--embedder-dim"):
        _source(path, tmp_path, embedder_dim=200).load("train")
