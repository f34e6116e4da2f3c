"""The JSON files beside labels, workspaces, checkpoints and text embedders, made hostile:
nesting 100,000 deep and a 5,000-digit number are one line of the reader's own error class,
never a RecursionError or int()'s digit-limit ValueError (whose advice,
sys.set_int_max_str_digits, helps no user).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssvae.adapters.json_limits import (
    MAX_JSON_DIGITS,
    MAX_JSON_NESTING,
    JsonLimitError,
    load_json_bounded,
)
from ssvae.adapters.labels.classes_file import read_vocabulary
from ssvae.adapters.labels.csv_store import CsvLabelStore
from ssvae.adapters.model.checkpoint import ARRAYS, META, CheckpointError, load_checkpoint
from ssvae.adapters.workspace_files import FileWorkspaceStore
from ssvae.domain.errors import DataError, LabelError, SsvaeError
from ssvae.domain.labels import ClassVocabulary, LabelChange
from ssvae.domain.spec import preset
from ssvae.domain.workspace import WorkspaceError, WorkspaceMetadata

VOCABULARY = ClassVocabulary(("cat", "dog"))
SERIALS = np.arange(100, 110, dtype=np.int64)
DEEP = "[" * 100_000 + "]" * 100_000
LONG = "7" * 5_000
# What each hostile document must be told as.
HOSTILE = {
    "deep": (DEEP, f"nest more than {MAX_JSON_NESTING} levels"),
    "long number": ('{"format_version": ' + LONG + "}", f"at most {MAX_JSON_DIGITS} digits"),
}


def _history(tmp_path: Path, document: str) -> None:
    store = CsvLabelStore(tmp_path / "labels.csv", VOCABULARY, SERIALS)
    store.apply([LabelChange(101, "dog")], source="test")
    with store.history_path.open("a", encoding="utf-8") as handle:
        handle.write(document + "\n")  # a complete line: not a torn append
    CsvLabelStore(tmp_path / "labels.csv", VOCABULARY, SERIALS).undo(source="test")


def _classes(tmp_path: Path, document: str) -> None:
    path = tmp_path / "labels.csv.classes.json"
    path.write_text(document, encoding="utf-8")
    read_vocabulary(path, VOCABULARY)


def _workspace(tmp_path: Path, document: str) -> None:
    store = FileWorkspaceStore()
    metadata = WorkspaceMetadata(
        id="w",
        preset="mixture_k10",
        dataset={"kind": "idx", "name": "mnist", "directory": None, "classes": None},
        created="2025-01-02T03:04:05",
        pool_size=10,
        pool_seed=1,
        pool_fingerprint="abc",
        subset=True,
    )
    store.create(tmp_path / "w", preset("mixture_k10", latent_dim=4), metadata)
    (tmp_path / "w" / "metadata.json").write_text(document, encoding="utf-8")
    store.read(tmp_path / "w")


def _checkpoint(tmp_path: Path, document: str) -> None:
    (tmp_path / META).write_text(document, encoding="utf-8")
    (tmp_path / ARRAYS).write_bytes(b"")
    load_checkpoint(tmp_path)


def _tfidf_model(tmp_path: Path, document: str) -> None:
    from ssvae.adapters.text.tfidf import TfidfEmbedder

    np.savez(tmp_path / "tfidf.npz", metadata=np.frombuffer(document.encode(), np.uint8))
    TfidfEmbedder.load(tmp_path / "tfidf.npz")


def _minilm_config(tmp_path: Path, document: str) -> None:
    from ssvae.adapters.text.minilm import REQUIRED_FILES, read_config

    for name in REQUIRED_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}", encoding="utf-8")
    (tmp_path / "config.json").write_text(document, encoding="utf-8")
    read_config(tmp_path)


READERS: dict[str, tuple[Callable[[Path, str], None], type[SsvaeError]]] = {
    "label history": (_history, LabelError),
    "classes file": (_classes, LabelError),
    "workspace metadata": (_workspace, WorkspaceError),
    "checkpoint meta.json": (_checkpoint, CheckpointError),
    "tfidf model": (_tfidf_model, DataError),
    "minilm config.json": (_minilm_config, DataError),
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_hostile_json_file_is_one_line_of_the_readers_error(
    tmp_path: Path, reader: str, hostile: str
) -> None:
    read, error_class = READERS[reader]
    document, told = HOSTILE[hostile]
    with pytest.raises(SsvaeError) as caught:
        read(tmp_path, document)
    assert type(caught.value) is error_class
    message = str(caught.value)
    assert "\n" not in message and len(message) < 500, message
    assert told in message and "sys.set_int" not in message


def test_brackets_in_strings_do_not_nest_and_shallow_documents_parse() -> None:
    text = "[" * 1_000 + '\\"{'
    document = json.dumps({"a": [[1, 2], {"b": text}], "n": -(10**99)})
    assert load_json_bounded(document.encode("utf-8")) == json.loads(document)
    assert load_json_bounded(b"\xef\xbb\xbf[1]") == [1]  # a byte-order mark is allowed
    limit = "[" * MAX_JSON_NESTING + "]" * MAX_JSON_NESTING
    assert json.dumps(load_json_bounded(limit)) == json.dumps(json.loads(limit))


@pytest.mark.parametrize(
    ("data", "told"),
    [
        ("[" * (MAX_JSON_NESTING + 1) + "]" * (MAX_JSON_NESTING + 1), "nest more than"),
        ("-" + "1" * (MAX_JSON_DIGITS + 1), f"{MAX_JSON_DIGITS + 2:,} characters"),
        (b"\xff[]", "not UTF-8"),
        ("{" + "x" * 10_000, "not valid JSON"),
    ],
)
def test_past_the_limits_is_one_short_line(data: str | bytes, told: str) -> None:
    with pytest.raises(JsonLimitError, match=told) as caught:
        load_json_bounded(data)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_label_undo_with_a_hostile_history_exits_with_one_line(tmp_path: Path) -> None:
    def ssvae(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).parent / "ssvae"), "label", *args]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert ssvae("set", "1", "--class", "3").returncode == 0
    history = tmp_path / "labels.csv.history.jsonl"
    with history.open("a", encoding="utf-8") as handle:
        handle.write(DEEP + "\n")
    kept = (tmp_path / "labels.csv").read_bytes(), history.read_bytes()
    done = ssvae("undo")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"nest more than {MAX_JSON_NESTING} levels" in done.stderr
    assert ((tmp_path / "labels.csv").read_bytes(), history.read_bytes()) == kept


_PIECES = st.sampled_from(["[", "]", "{", "}", '"', "\\\\", ",", ":", "1", "-", "7" * 60, " ", "x"])


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.lists(_PIECES, max_size=300).map("".join),
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_any_input_is_a_value_or_one_short_line(data: str | bytes) -> None:
    tracemalloc.start()
    try:
        value = load_json_bounded(data)
    except JsonLimitError as error:
        message = str(error)
        assert "\n" not in message and len(message) < 300
    else:  # what it returns is what json returns
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        assert json.dumps(value) == json.dumps(json.loads(text))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 2**20
