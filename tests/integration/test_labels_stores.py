"""CSV and Parquet label stores on real files: persistence, history, bad files, crashes, locks."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import filelock
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import InMemoryLabelStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssvae.adapters.labels._store import EXTERNAL_SOURCE
from ssvae.adapters.labels.csv_store import CsvLabelFile, CsvLabelStore
from ssvae.adapters.labels.parquet_store import ParquetLabelFile, ParquetLabelStore
from ssvae.application.labeling import LabelService
from ssvae.domain.errors import ConcurrentWriteError, LabelError
from ssvae.domain.labels import ClassVocabulary, LabelChange, LabelSet, replay

VOCABULARY = ClassVocabulary(("cat", "dog", "bird"))
SERIALS = np.arange(1000, 1200, dtype=np.int64)
STORES = [
    pytest.param(CsvLabelStore, "labels.csv", id="csv"),
    pytest.param(ParquetLabelStore, "labels.parquet", id="parquet"),
]


def _clock() -> float:
    return 1_700_000_000.25


def _open(store_class, path, **options):
    return store_class(path, VOCABULARY, SERIALS, clock=_clock, **options)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file in `folder` with its bytes (lock files are empty and carry no data)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _parquet(columns: dict[str, pa.Array]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


# Any sequence of operations, checked against the in-memory reference store.

serials = st.lists(st.integers(1000, 1011), min_size=1, max_size=4)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), serials, st.sampled_from(VOCABULARY.names)),
        st.tuples(st.just("unset"), serials),
        st.tuples(st.just("undo")),
    ),
    max_size=10,
)


def _run(service: LabelService, operation: tuple) -> object:
    if operation[0] == "set":
        return service.set(operation[1], operation[2], source="test")
    if operation[0] == "unset":
        return service.unset(operation[1], source="test")
    return service.undo(source="test")


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=operations)
def test_any_operations_reload_like_the_in_memory_reference(
    tmp_path_factory, store_class, file_name, operations
):
    path = tmp_path_factory.mktemp("store") / file_name
    real = LabelService(_open(store_class, path))
    reference_store = InMemoryLabelStore(VOCABULARY, SERIALS, clock=_clock)
    reference = LabelService(reference_store)
    for operation in operations:
        assert _run(real, operation) == _run(reference, operation)
    reopened = _open(store_class, path)
    assert reopened.load() == reference_store.load()
    assert tuple(reopened.history()) == tuple(reference_store.history())
    assert replay(VOCABULARY, reopened.history()) == reopened.load()


# The file formats.


def test_csv_file_has_the_established_layout(tmp_path):
    store = _open(CsvLabelStore, tmp_path / "labels.csv")
    store.apply([LabelChange(1010, "dog"), LabelChange(1002, "cat")], source="test")
    assert (tmp_path / "labels.csv").read_bytes() == b"Serial,label\n1002,cat\n1010,dog\n"


def test_parquet_file_has_typed_columns_sorted_by_serial(tmp_path):
    store = _open(ParquetLabelStore, tmp_path / "labels.parquet")
    store.apply([LabelChange(1010, "dog"), LabelChange(1002, "cat")], source="test")
    table = pq.read_table(tmp_path / "labels.parquet")
    assert table.schema.field("Serial").type == pa.int64()
    assert table.schema.field("label").type == pa.string()
    assert table.to_pydict() == {"Serial": [1002, 1010], "label": ["cat", "dog"]}


@pytest.mark.parametrize("codec", [CsvLabelFile(), ParquetLabelFile()], ids=["csv", "parquet"])
def test_codecs_round_trip_awkward_class_names(tmp_path, codec):
    vocabulary = ClassVocabulary(("a,b", 'say "hi"', "ünï"))
    labels = LabelSet(vocabulary, {1000: "a,b", 1001: 'say "hi"', 1199: "ünï"})
    codec.write(tmp_path / "export", labels)
    assert codec.read(tmp_path / "export", vocabulary, SERIALS) == labels
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_csv_tolerates_a_byte_order_mark_crlf_spaces_and_blank_lines(tmp_path):
    path = tmp_path / "hand.csv"
    path.write_bytes(b"\xef\xbb\xbfSerial,label\r\n1001, dog \r\n\r\n1000,cat\r\n\r\n")
    expected = LabelSet(VOCABULARY, {1000: "cat", 1001: "dog"})
    assert CsvLabelFile().read(path, VOCABULARY, SERIALS) == expected


@pytest.mark.parametrize("codec", [CsvLabelFile(), ParquetLabelFile()], ids=["csv", "parquet"])
def test_reading_a_missing_label_file_says_so(tmp_path, codec):
    with pytest.raises(LabelError, match="does not exist"):
        codec.read(tmp_path / "nope", VOCABULARY, SERIALS)


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_missing_store_has_no_labels_and_creates_nothing_when_read(
    tmp_path, store_class, file_name
):
    store = _open(store_class, tmp_path / "sub" / file_name)
    assert store.load() == LabelSet(VOCABULARY) and tuple(store.history()) == ()
    assert store.apply([LabelChange(1000, None)], source="test") == LabelSet(VOCABULARY)
    assert not (tmp_path / "sub" / file_name).exists()


# Bad files: LabelError naming the file and the line or row; nothing is written.

CSV_HEADER = b"Serial,label\n"
BAD_FILES = [
    ("csv", b"serial,label\n1000,cat\n", "line 1: the header is 'serial,label'"),
    ("csv", b"", "line 1: the header is ''"),
    ("csv", CSV_HEADER + b"1000,cat,x\n", "line 2: expected 2 fields"),
    ("csv", CSV_HEADER + b"1000\n", "line 2: expected 2 fields"),
    ("csv", CSV_HEADER + b"1000,cat\n1x,dog\n", "line 3: serial '1x' is not a non-negative"),
    ("csv", CSV_HEADER + b"-5,dog\n", "line 2: serial '-5' is not a non-negative"),
    ("csv", CSV_HEADER + b"1000,cat\n5,dog\n", "line 3: serial 5 is not in the dataset"),
    ("csv", CSV_HEADER + b"1000,cow\n", "line 2: class 'cow' is not in the vocabulary"),
    ("csv", CSV_HEADER + b"1000,cat\n1001,dog\n1000,dog\n", r"line 4: .*first at line 2"),
    ("csv", CSV_HEADER + b"1000,\xff\xfe\n", "is not UTF-8 text"),
    ("csv", CSV_HEADER + b'1000,"ca"t\n', "line 2: not valid CSV"),
    ("parquet", b"PAR1 not really", "is not a readable Parquet file"),
    ("parquet", b"", "is not a readable Parquet file"),
    (
        "parquet",
        _parquet({"serial": pa.array([1000]), "label": pa.array(["cat"])}),
        "has the columns",
    ),
    (
        "parquet",
        _parquet({"Serial": pa.array(["1000"]), "label": pa.array(["cat"])}),
        "column Serial has type string",
    ),
    (
        "parquet",
        _parquet({"Serial": pa.array([1000]), "label": pa.array([3])}),
        "column label has type int64",
    ),
    (
        "parquet",
        _parquet({"Serial": pa.array([1000, None]), "label": pa.array(["cat", "dog"])}),
        "row 2: the serial or the label is empty",
    ),
    (
        "parquet",
        _parquet({"Serial": pa.array([1000, 5]), "label": pa.array(["cat", "dog"])}),
        "row 2: serial 5 is not in the dataset",
    ),
    (
        "parquet",
        _parquet({"Serial": pa.array([1000]), "label": pa.array(["cow"])}),
        "row 1: class 'cow' is not in the vocabulary",
    ),
    (
        "parquet",
        _parquet({"Serial": pa.array([1000, 1001, 1000]), "label": pa.array(["cat"] * 3)}),
        r"row 3: .*first at row 1",
    ),
]
FORMAT = {"csv": (CsvLabelStore, "labels.csv"), "parquet": (ParquetLabelStore, "labels.parquet")}


@pytest.mark.parametrize(("kind", "content", "message"), BAD_FILES)
def test_bad_label_files_are_rejected_and_left_untouched(tmp_path, kind, content, message):
    store_class, file_name = FORMAT[kind]
    path = tmp_path / file_name
    path.write_bytes(content)
    store = _open(store_class, path)
    for attempt in (
        store.load,
        store.history,
        lambda: store.apply([LabelChange(1001, "dog")], source="test"),
        lambda: store.label_file.read(path, VOCABULARY, SERIALS),
    ):
        with pytest.raises(LabelError, match=message) as raised:
            attempt()
        assert str(path) in str(raised.value) and "\n" not in str(raised.value)
    assert path.read_bytes() == content
    assert not store.history_path.exists()


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (LabelChange(5, "dog"), "serial 5 is not in the dataset"),
        (LabelChange(1001, "cow"), "cannot label serial 1001 as 'cow'"),
    ],
)
def test_a_bad_change_writes_nothing(tmp_path, store_class, file_name, change, message):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    before = _files(tmp_path)
    with pytest.raises(LabelError, match=message):
        store.apply([LabelChange(1002, "bird"), change], source="test")
    assert _files(tmp_path) == before


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_corrupt_history_line_is_reported_with_its_line(tmp_path, store_class, file_name):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat"), LabelChange(1001, "dog")], source="test")
    store.apply([LabelChange(1002, "dog")], source="test")
    lines = store.history_path.read_bytes().splitlines(keepends=True)
    store.history_path.write_bytes(lines[0] + b"{not json\n" + lines[2])
    before = _files(tmp_path)
    with pytest.raises(LabelError, match=r"history .*history\.jsonl line 2 .*delete it"):
        store.history()
    assert _files(tmp_path) == before


# Crashes and failures while writing.


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
@pytest.mark.parametrize(
    ("failure", "expected"),
    [(OSError(errno.ENOSPC, "No space left on device"), LabelError), (KeyboardInterrupt(), None)],
    ids=["disk-full", "interrupt"],
)
def test_a_failed_replace_leaves_every_file_as_it_was(
    tmp_path, monkeypatch, store_class, file_name, failure, expected
):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    before = _files(tmp_path)

    def failing_replace(source, destination):
        raise failure

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(expected or type(failure)) as raised:
        store.apply([LabelChange(1001, "dog")], source="test")
    monkeypatch.undo()
    if expected is LabelError:
        assert "No space left on device" in str(raised.value)
    assert _files(tmp_path) == before  # no temporary file, history rolled back
    assert _open(store_class, tmp_path / file_name).load() == LabelSet(VOCABULARY, {1000: "cat"})


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_the_history_is_durable_before_the_label_file_is_replaced(
    tmp_path, monkeypatch, store_class, file_name
):
    store = _open(store_class, tmp_path / file_name)
    history_at_replace: list[bytes] = []
    real_replace = os.replace

    def observing_replace(source, destination):
        if Path(destination) == store.path:
            history_at_replace.append(store.history_path.read_bytes())
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", observing_replace)
    store.apply([LabelChange(1001, "dog")], source="test")
    assert len(history_at_replace) == 1 and b'"serial":1001' in history_at_replace[0]


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_crash_after_the_history_append_loses_only_the_unacknowledged_batch(
    tmp_path, store_class, file_name
):
    path = tmp_path / file_name
    store = _open(store_class, path)
    store.apply([LabelChange(1000, "cat")], source="test")
    old_labels, old_history = path.read_bytes(), store.history_path.read_bytes()
    store.apply([LabelChange(1000, "dog"), LabelChange(1001, "bird")], source="test")
    path.write_bytes(old_labels)  # as if the process died before replacing the label file

    reopened = _open(store_class, path)
    assert reopened.load() == LabelSet(VOCABULARY, {1000: "cat"})
    assert [(e.serial, e.new) for e in reopened.history()] == [(1000, "cat")]
    reopened.apply([LabelChange(1002, "dog")], source="test")
    assert store.history_path.read_bytes().startswith(old_history)
    assert [(e.index, e.serial, e.new) for e in reopened.history()] == [
        (0, 1000, "cat"),
        (1, 1002, "dog"),
    ]
    assert replay(VOCABULARY, reopened.history()) == reopened.load()


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_torn_history_line_is_ignored_then_truncated(tmp_path, store_class, file_name):
    store = _open(store_class, tmp_path / file_name)
    store.apply([LabelChange(1000, "cat")], source="test")
    with store.history_path.open("ab") as history:
        history.write(b'{"index":1,"times')
    assert [(e.serial, e.new) for e in store.history()] == [(1000, "cat")]
    store.apply([LabelChange(1001, "dog")], source="test")
    assert store.history_path.read_bytes().endswith(b"\n")
    assert [(e.index, e.serial) for e in store.history()] == [(0, 1000), (1, 1001)]


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_edits_outside_the_store_enter_the_history(tmp_path, store_class, file_name):
    path = tmp_path / file_name
    store = _open(store_class, path)
    store.apply([LabelChange(1000, "cat"), LabelChange(1001, "dog")], source="test")
    store.label_file.write(path, LabelSet(VOCABULARY, {1000: "bird", 1005: "cat"}))

    external = [e for e in store.history() if e.source == EXTERNAL_SOURCE]
    assert [(e.serial, e.previous, e.new) for e in external] == [
        (1000, "cat", "bird"),
        (1001, "dog", None),
        (1005, None, "cat"),
    ]
    store.apply([LabelChange(1006, "dog")], source="test")
    history = store.history()
    assert [e.index for e in history] == list(range(6))
    assert sum(e.source == EXTERNAL_SOURCE for e in history) == 3
    assert replay(VOCABULARY, history) == store.load()
    assert LabelService(store).undo(source="test").serials() == [1006]


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_label_file_without_history_gets_one(tmp_path, store_class, file_name):
    path = tmp_path / file_name
    store = _open(store_class, path)
    store.label_file.write(path, LabelSet(VOCABULARY, {1003: "cat", 1001: "dog"}))
    assert [(e.serial, e.new, e.source) for e in store.history()] == [
        (1001, "dog", EXTERNAL_SOURCE),
        (1003, "cat", EXTERNAL_SOURCE),
    ]


# Concurrent writers.

WORKER = textwrap.dedent(
    """
    import pathlib, sys, time
    import numpy as np
    from ssvae.adapters.labels.csv_store import CsvLabelStore
    from ssvae.adapters.labels.parquet_store import ParquetLabelStore
    from ssvae.domain.labels import ClassVocabulary, LabelChange

    kind, path, first, sync = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    store_class = {"csv": CsvLabelStore, "parquet": ParquetLabelStore}[kind]
    store = store_class(path, ClassVocabulary(("cat", "dog", "bird")), np.arange(1000, 1200),
                        lock_timeout=60)
    pathlib.Path(sync, str(first)).touch()
    deadline = time.monotonic() + 60
    while len(list(pathlib.Path(sync).iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)  # start writing together, once both processes have imported
    for serial in range(first, first + 50):
        store.apply([LabelChange(serial, "dog")], source=f"worker {first}")
    """
)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_two_processes_writing_together_lose_no_label(tmp_path, kind):
    store_class, file_name = FORMAT[kind]
    path = tmp_path / "store" / file_name
    sync = tmp_path / "sync"
    sync.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, str(path), str(first), str(sync)],
            stderr=subprocess.PIPE,
        )
        for first in (1000, 1100)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr.decode()
    store = _open(store_class, path)
    expected = {s: "dog" for s in [*range(1000, 1050), *range(1100, 1150)]}
    assert store.load() == LabelSet(VOCABULARY, expected)
    history = store.history()
    assert len(history) == 100 and replay(VOCABULARY, history) == store.load()
    assert {e.source for e in history} == {"worker 1000", "worker 1100"}


@pytest.mark.parametrize(("store_class", "file_name"), STORES)
def test_a_held_lock_makes_a_second_writer_give_up(tmp_path, store_class, file_name):
    store = _open(store_class, tmp_path / file_name, lock_timeout=0.1)
    store.apply([LabelChange(1000, "cat")], source="test")
    before = _files(tmp_path)
    with filelock.FileLock(store.lock_path):
        with pytest.raises(ConcurrentWriteError, match=r"another process .* 0\.1 s"):
            store.apply([LabelChange(1001, "dog")], source="test")
        with pytest.raises(ConcurrentWriteError):
            store.history()
        assert store.load() == LabelSet(VOCABULARY, {1000: "cat"})  # reading needs no lock
    assert _files(tmp_path) == before
