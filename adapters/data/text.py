"""Text datasets: messages in CSV, JSONL or Parquet, turned into vectors by an Embedder.

A file holds one message per row: an integer id (column `id` or `serial`), which becomes the
sample's serial; the message (`text` or `message`); optionally a class name (`label` or
`class`, empty where unknown); any other columns are kept as strings for display. A malformed
row is refused with a DataError naming it as the file shows it: `line N` in CSV and JSONL
files (the header is line 1), `row N` counting from 0 in Parquet files.

Splits: 'train' (the pool) and 'test', from a second file or held out of the labelled rows
(stratified by class, chosen by a seed). Vectors come from an Embedder through the embedding
cache: `tfidf` is fitted on the train split, `minilm` reads a local sentence-transformers
folder. The vectors are then scaled for the Gaussian likelihood, so that values have unit
mean square (l2: every row rescaled to length sqrt(d); standardise: each feature centred and
scaled by the train split's statistics; none: as the embedder gives them). A workspace
keeps the fitted embedder and the scaling statistics (`save_state`) and reopens the dataset
from them (`state_dir`), so its messages always embed the same way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

import ssvae.adapters
from ssvae.adapters.files import atomic_write_bytes
from ssvae.adapters.json_limits import (
    JsonLimitError,
    JsonNestingError,
    JsonNumberError,
    load_json_bounded,
)
from ssvae.adapters.text.cache import cached_embed
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.echo import short_repr
from ssvae.domain.errors import DataError, LabelError
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.text import Embedder, texts_fingerprint

ID_COLUMNS = ("id", "serial")
TEXT_COLUMNS = ("text", "message")
LABEL_COLUMNS = ("label", "class")
SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet", ".pq")
EMBEDDERS = ("tfidf", "minilm")
SCALINGS = ("none", "standardise", "l2")
TFIDF_FILE = "tfidf.npz"
SCALING_FILE = "scaling.npz"
EMBEDDINGS_CACHE = "embeddings"
MODELS_CACHE = "text-models"
# Loghub tasks: the label column, and how many messages a class needs to be one.
LOGHUB_TASKS: dict[str, tuple[str, int]] = {"system": ("system", 1), "event": ("event_id", 20)}
_DIGITS = re.compile(r"\s*\+?(\d+)\s*")
_ID_LIMIT = int(np.iinfo(np.int64).max)
_ID_DIGITS = len(str(_ID_LIMIT))  # longer digit strings are out of range: never convert them
_MIN_STD = 1e-6  # features (nearly) constant on the pool are centred, not blown up

if TYPE_CHECKING:  # scikit-learn and scipy load only when a tfidf model is fitted or read
    from ssvae.adapters.text.tfidf import TfidfEmbedder

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@attrs.frozen(eq=False)
class TextTable:
    """A text file's rows in file order, validated: ids, messages, class names and extras."""

    path: Path
    ids: IntArray
    texts: list[str]
    labels: list[str] | None  # "" where the row has no class
    extras: dict[str, list[str]]
    lines: IntArray | None  # CSV and JSONL: the line each row starts on; Parquet: None

    def where(self, row: int) -> str:
        """How the file shows row `row`: 'line N' (text files) or 'row N' (Parquet)."""
        return f"line {int(self.lines[row])}" if self.lines is not None else f"row {row}"


@attrs.frozen
class _Columns:
    """Which columns to read; None means the first default name present."""

    id: str | None = None
    text: str | None = None
    label: str | None = None


# -- reading ---------------------------------------------------------------------------------


def read_text_table(
    path: Path | str,
    id_column: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> TextTable:
    """Read and validate a CSV, JSONL or Parquet file of messages (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: text file not found; check the --input path")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        names, cells, lines = _read_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        names, cells, lines = _read_jsonl(path)
    elif suffix in (".parquet", ".pq"):
        names, cells = _read_parquet(path)
        lines = None
    else:
        raise DataError(f"{path}: unknown text file type {suffix!r}; use {', '.join(SUFFIXES)}")
    return _table(path, names, cells, lines, _Columns(id_column, text_column, label_column))


def _detail(error: Exception) -> str:
    """A library's error text for a one-line message: Arrow's span lines, and may be long."""
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _read_csv(path: Path) -> tuple[list[str], dict[str, list[Any]], IntArray]:
    """Columns as strings and the line each record starts on (quoted texts may span lines)."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # long log lines are fine
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty; the first line must name the columns")
            _check_header(path, header)
            records: list[list[str]] = []
            lines: list[int] = []
            start = reader.line_num + 1
            for record in reader:
                if record:  # csv gives [] for a blank line
                    if len(record) != len(header):
                        raise DataError(
                            f"{path}: line {start}: {len(record)} fields but the header has "
                            f"{len(header)}; quote texts that hold commas or quotes"
                        )
                    records.append(record)
                    lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text ({_detail(error)}); save the file as UTF-8"
        ) from None
    except csv.Error as error:
        raise DataError(f"{path}: line {start}: not valid CSV ({_detail(error)})") from None
    columns = {name: [record[i] for record in records] for i, name in enumerate(header)}
    return header, columns, np.array(lines, dtype=np.int64)


def _check_header(path: Path, names: Sequence[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DataError(f"{path}: column(s) {_listed(repeated)} appear twice; rename one")


def _listed(names: Sequence[str], most: int = 20) -> str:
    """Column names for a message: the first `most` of them, each cut short."""
    shown = ", ".join(name[:40] for name in names[:most])
    return shown + (f", ... ({len(names):,} in all)" if len(names) > most else "")


def _read_jsonl(path: Path) -> tuple[list[str], dict[str, list[Any]], IntArray]:
    """One JSON object per line; keys missing from a line read as null."""
    objects: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = load_json_bounded(line)
                except JsonLimitError as error:
                    raise DataError(
                        f"{path}: line {number}: {error}{_json_advice(error)}"
                    ) from None
                if not isinstance(value, dict):
                    raise DataError(
                        f"{path}: line {number}: holds a {type(value).__name__}; each line "
                        'must be one JSON object such as {"id": 1, "text": "..."}'
                    )
                objects.append(value)
                lines.append(number)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text ({_detail(error)}); save the file as UTF-8"
        ) from None
    names: list[str] = list(dict.fromkeys(key for value in objects for key in value))
    columns = {name: [value.get(name) for value in objects] for name in names}
    return names, columns, np.array(lines, dtype=np.int64)


def _json_advice(error: JsonLimitError) -> str:
    """How to fix a line past the JSON limits (none for a line that is simply not JSON)."""
    if isinstance(error, JsonNestingError):
        return "; a message file holds flat values (an id, a text, a label)"
    if isinstance(error, JsonNumberError):
        return " (quote it to keep it as text)"
    return ""


def _read_parquet(path: Path) -> tuple[list[str], dict[str, list[Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({_detail(error)})") from None
    _check_header(path, table.column_names)
    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        try:
            columns[name] = table.column(name).to_pylist()
        except (OverflowError, ValueError, pa.ArrowException) as error:
            # e.g. a date or timestamp beyond Python's datetime range (years 1 to 9999)
            raise DataError(
                f"{path}: column {short_repr(name)}: its values cannot be read as Python values "
                f"({_detail(error)}); store ids as integers and messages and labels as strings"
            ) from None
    return table.column_names, columns


def _column(
    path: Path, names: Sequence[str], given: str | None, defaults: Sequence[str], role: str
) -> str | None:
    """The column playing `role`: the given name (which must exist) or the first default."""
    if given:
        if given not in names:
            raise DataError(
                f"{path}: no {role} column {short_repr(given)} (columns: {_listed(names)}); "
                f"name an existing one with --{role}-column"
            )
        return given
    return next((name for name in defaults if name in names), None)


def _table(
    path: Path,
    names: Sequence[str],
    cells: dict[str, list[Any]],
    lines: IntArray | None,
    columns: _Columns,
) -> TextTable:
    id_name = _column(path, names, columns.id, ID_COLUMNS, "id")
    text_name = _column(path, names, columns.text, TEXT_COLUMNS, "text")
    label_name = _column(path, names, columns.label, LABEL_COLUMNS, "label")
    for role, found, defaults in (("id", id_name, ID_COLUMNS), ("text", text_name, TEXT_COLUMNS)):
        if found is None:
            raise DataError(
                f"{path}: no {role} column {' or '.join(map(repr, defaults))} "
                f"(columns: {_listed(names) or 'none'}); add one or name it with --{role}-column"
            )
    assert id_name is not None and text_name is not None
    chosen = [name for name in (id_name, text_name, label_name) if name is not None]
    if len(set(chosen)) < len(chosen):
        raise DataError(f"{path}: the id, text and label columns must be different columns")
    probe = TextTable(path, np.zeros(0, np.int64), [], None, {}, lines)
    count = len(cells[id_name])
    if count == 0:
        raise DataError(f"{path}: holds no messages")
    ids = _ids(probe, cells[id_name])
    texts = _texts(probe, cells[text_name])
    labels = None if label_name is None else _labels(probe, cells[label_name])
    kept = [name for name in names if name not in (id_name, text_name, label_name)]
    extras = {name: [_display(value) for value in cells[name]] for name in kept}
    return TextTable(path, ids, texts, labels, extras, lines)


def _ids(table: TextTable, values: list[Any]) -> IntArray:
    ids = np.zeros(len(values), np.int64)
    limit = _ID_LIMIT
    for row, value in enumerate(values):
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and (match := _DIGITS.fullmatch(value)):
            digits = match.group(1).lstrip("0") or "0"
            number = int(digits) if len(digits) <= _ID_DIGITS else _ID_LIMIT + 1
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if value is None or value == "":
            raise DataError(
                f"{table.path}: {table.where(row)}: the id is missing; give every row an "
                "integer id >= 0"
            )
        if number is None or number < 0:
            raise DataError(
                f"{table.path}: {table.where(row)}: id {short_repr(value)} is not an integer "
                ">= 0; ids name the messages and must be non-negative integers"
            )
        if number > limit:
            raise DataError(
                f"{table.path}: {table.where(row)}: id {short_repr(value)} is too large; ids "
                f"go up to {limit}"
            )
        ids[row] = number
    order = np.argsort(ids, kind="stable")
    repeats = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if repeats.size:
        seconds = order[repeats + 1]
        at = int(np.argmin(seconds))  # the earliest second occurrence names the row to fix
        row, first = int(seconds[at]), int(order[repeats[at]])
        raise DataError(
            f"{table.path}: {table.where(row)}: id {int(ids[row])} repeats "
            f"{table.where(first)}; give every row its own id"
        )
    return ids


def _texts(table: TextTable, values: list[Any]) -> list[str]:
    for row, value in enumerate(values):
        if not isinstance(value, str):
            what = "missing" if value is None else f"{short_repr(value)}, not text"
            raise DataError(
                f"{table.path}: {table.where(row)}: the message is {what}; give every row a text"
            )
        if not value.strip():
            raise DataError(
                f"{table.path}: {table.where(row)}: the message is empty; remove the row or "
                "give it a text"
            )
    return list(values)


def _labels(table: TextTable, values: list[Any]) -> list[str]:
    labels: list[str] = []
    for row, value in enumerate(values):
        if value is None or value == "":
            labels.append("")
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise DataError(
                f"{table.path}: {table.where(row)}: label {short_repr(value)} is not a class "
                "name; "
                "write a class name, or leave it empty for unknown"
            )
        if value != value.strip():
            raise DataError(
                f"{table.path}: {table.where(row)}: label {short_repr(value)} has spaces around "
                "it; "
                "remove them (or leave the label empty for unknown)"
            )
        labels.append(value)
    return labels


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# -- classes and splits ----------------------------------------------------------------------


@attrs.frozen(eq=False)
class _TextSplit:
    """One split: rows of a table sorted by id, their serials and class indices (-1: none)."""

    table: TextTable
    rows: IntArray
    serials: IntArray
    labels: IntArray | None


def _vocabulary(
    table: TextTable, classes: Sequence[str] | None, min_class_size: int
) -> ClassVocabulary:
    """The classes given, or those found in `table` with at least `min_class_size` messages."""
    if classes is None:
        if table.labels is None or not any(table.labels):
            raise DataError(
                f"{table.path}: no labels, so the classes are unknown; give the class names "
                "(--classes) or a label column (--label-column)"
            )
        names, counts = np.unique([label for label in table.labels if label], return_counts=True)
        classes = [str(name) for name, count in zip(names, counts, strict=True)
                   if count >= min_class_size]  # fmt: skip
        if len(classes) < 2:
            raise DataError(
                f"{table.path}: only {len(classes)} class(es) with at least {min_class_size} "
                "labelled message(s); a classifier needs 2 or more"
            )
    try:
        return ClassVocabulary(tuple(classes))
    except LabelError as error:
        raise DataError(f"invalid classes for {table.path}: {error}") from None


def _class_indices(
    table: TextTable, vocabulary: ClassVocabulary, dropped: set[str]
) -> IntArray | None:
    """Each row's class index; names in `dropped` (too rare) count as unknown (-1)."""
    if table.labels is None:
        return None
    indices = np.full(len(table.labels), -1, np.int64)
    for row, label in enumerate(table.labels):
        if not label or label in dropped:
            continue
        if label not in vocabulary:
            shown = ", ".join(vocabulary.names[:20]) + (", ..." if len(vocabulary) > 20 else "")
            raise DataError(
                f"{table.path}: {table.where(row)}: label {short_repr(label)} is not a class "
                f"({shown}); "
                "fix the label or give the class names with --classes"
            )
        indices[row] = vocabulary.index(label)
    return indices


def held_out_rows(labels: IntArray, fraction: float, seed: int) -> IntArray:
    """Rows for a test split: round(fraction * n) of each class's n rows, chosen by `seed`."""
    if fraction <= 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng([seed, 17])
    chosen = []
    for index in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == index)
        take = math.floor(fraction * len(rows) + 0.5)
        chosen.append(rng.permutation(rows)[:take])
    if not chosen:
        return np.zeros(0, np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _split(table: TextTable, rows: IntArray, labels: IntArray | None) -> _TextSplit:
    order = rows[np.argsort(table.ids[rows], kind="stable")]
    return _TextSplit(
        table=table,
        rows=order,
        serials=table.ids[order],
        labels=None if labels is None else labels[order],
    )


# -- scaling -----------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Scaling:
    """How vectors are scaled before the model reads them; statistics from the train split."""

    kind: str
    mean: FloatArray | None = None
    scale: FloatArray | None = None

    @classmethod
    def fit(cls, kind: str, pool: FloatArray) -> Scaling:
        """Standardise: the pool's per-feature mean and standard deviation; others: no data."""
        if kind != "standardise":
            return cls(kind)
        mean = pool.mean(axis=0, dtype=np.float64)
        std = pool.std(axis=0, dtype=np.float64)
        scale = np.where(std > _MIN_STD, std, 1.0)
        return cls(kind, mean.astype(np.float32), scale.astype(np.float32))

    def apply(self, x: FloatArray) -> FloatArray:
        """`x` scaled, float32."""
        if self.kind == "standardise":
            assert self.mean is not None and self.scale is not None
            return ((x - self.mean) / self.scale).astype(np.float32)
        if self.kind == "l2":
            # Length sqrt(d): only the direction counts, and every value has unit mean square,
            # the scale that the Gaussian likelihood's sigma = 1 assumes. Unit rows would make
            # the reconstruction term negligible and the latent space collapse.
            norms = np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(x.shape[1])
            return np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
        return np.asarray(x, np.float32)

    def save(self, path: Path) -> None:
        """Write the statistics to `path` (.npz, no pickle) atomically."""
        assert self.mean is not None and self.scale is not None
        buffer = io.BytesIO()
        np.savez(buffer, kind=np.array(self.kind), mean=self.mean, scale=self.scale)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path, dimension: int) -> Scaling:
        """Statistics written by `save`; DataError when unreadable or of another width."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                kind = str(archive["kind"])
                mean = archive["mean"].astype(np.float32)
                scale = archive["scale"].astype(np.float32)
        except (OSError, ValueError, KeyError) as error:
            raise DataError(
                f"{path}: the scaling statistics are unreadable ({_detail(error)}); delete the "
                "file to recompute them from the pool"
            ) from None
        if mean.shape != (dimension,) or scale.shape != (dimension,) or not np.all(scale > 0):
            raise DataError(
                f"{path}: the scaling statistics do not fit {dimension}-D vectors; delete the "
                "file to recompute them from the pool"
            )
        return cls(kind, mean, scale)


# -- the data source ---------------------------------------------------------------------------


class TextDataSource:
    """A DataSource and TextCatalog for messages: splits 'train' (the pool) and maybe 'test'."""

    def __init__(
        self,
        train_path: Path | str,
        test_path: Path | str | None = None,
        *,
        name: str | None = None,
        id_column: str | None = None,
        text_column: str | None = None,
        label_column: str | None = None,
        classes: Sequence[str] | None = None,
        min_class_size: int = 1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        embedder: str = "tfidf",
        embedder_dim: int | None = None,
        embedder_folder: Path | str | None = None,
        scaling: str = "l2",
        state_dir: Path | str | None = None,
        cache_dir: Path | str | None = None,
    ) -> None:
        if embedder not in EMBEDDERS:
            raise DataError(f"embedder {embedder!r} is unknown; use one of {', '.join(EMBEDDERS)}")
        if scaling not in SCALINGS:
            raise DataError(f"scaling {scaling!r} is unknown; use one of {', '.join(SCALINGS)}")
        if not 0 <= test_fraction < 1:
            raise DataError(f"test fraction {test_fraction} must be in [0, 1)")
        if min_class_size < 1:
            raise DataError(f"minimum class size {min_class_size} must be at least 1")
        if embedder == "minilm" and embedder_folder is None:
            from ssvae.adapters.text.minilm import HOW_TO_PROVIDE

            raise DataError(f"the minilm embedder needs a model folder: {HOW_TO_PROVIDE}")
        self._train_path = Path(train_path).expanduser()
        self._test_path = None if test_path is None else Path(test_path).expanduser()
        self.name = name or self._train_path.stem
        self._columns = _Columns(id_column, text_column, label_column)
        self._classes = None if classes is None else tuple(classes)
        self._min_class_size = min_class_size
        self._test_fraction = test_fraction
        self._split_seed = split_seed
        self.embedder_name = embedder
        self._embedder_dim = embedder_dim
        self._embedder_folder = None if embedder_folder is None else Path(embedder_folder)
        self._scaling_kind = scaling
        self._state_dir = None if state_dir is None else Path(state_dir).expanduser()
        self._cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self._lock = threading.RLock()
        self._info: DatasetInfo | None = None
        self._splits: dict[str, _TextSplit] = {}
        self._embedder: Embedder | None = None
        self._scaling: Scaling | None = None
        self._vectors: dict[str, FloatArray] = {}

    # DataSource

    def describe(self) -> DatasetInfo:
        """Name, vector width, split sizes and classes; reads the files, embeds nothing.

        Without a tfidf width, a pool too small for the default is fitted to learn its width.
        """
        self._read()
        assert self._info is not None
        return self._info

    def serials(self, split: str) -> IntArray:
        """The ids of `split`, ascending."""
        return self._split(split).serials.copy()

    def load(self, split: str, serials: IntArray | None = None) -> Samples:
        """The scaled vectors (float32, (n, d)) of `split`, in the order of `serials`."""
        data = self._split(split)
        if serials is None:
            positions = np.arange(len(data.serials))
        else:
            positions = _positions(data, serials, split)
        x = self._split_vectors(split)[positions]
        y = None if data.labels is None else data.labels[positions]
        return Samples(serials=data.serials[positions], x=x, y=y)

    # TextCatalog

    def texts(self, split: str, serials: IntArray) -> list[str]:
        """The message of each serial of `split`, in the order given."""
        data = self._split(split)
        return [data.table.texts[row] for row in data.rows[_positions(data, serials, split)]]

    def extras(self, split: str, serials: IntArray) -> dict[str, list[str]]:
        """The file's other columns (name -> one string per serial), in the order given."""
        data = self._split(split)
        rows = data.rows[_positions(data, serials, split)]
        return {name: [values[row] for row in rows] for name, values in data.table.extras.items()}

    # Workspaces

    def save_state(self, folder: Path | str) -> None:
        """Write the fitted embedder (tfidf) and scaling statistics to `folder`."""
        folder = Path(folder)
        with self._lock:
            embedder = self.embedder()
            self._split_vectors("train")  # fits the scaling
            folder.mkdir(parents=True, exist_ok=True)
            if self.embedder_name == "tfidf":
                from ssvae.adapters.text.tfidf import TfidfEmbedder

                assert isinstance(embedder, TfidfEmbedder)
                embedder.save(folder / TFIDF_FILE)
            assert self._scaling is not None
            if self._scaling.kind == "standardise":
                self._scaling.save(folder / SCALING_FILE)

    def embedder(self) -> Embedder:
        """The embedder: tfidf fitted on the train split (or read back), or the minilm folder."""
        with self._lock:
            if self._embedder is None:
                self._embedder = self._tfidf() if self.embedder_name == "tfidf" else self._minilm()
            return self._embedder

    # internals

    def _split(self, split: str) -> _TextSplit:
        self._read()
        if split not in self._splits:
            assert self._info is not None
            self._info.size(split)  # DataError naming the known splits
        return self._splits[split]

    def _read(self) -> None:
        with self._lock:
            if self._info is not None:
                return
            train = read_text_table(self._train_path, *attrs.astuple(self._columns))
            vocabulary = _vocabulary(train, self._classes, self._min_class_size)
            found = set(train.labels or ()) - {""}
            dropped = found - set(vocabulary.names) if self._classes is None else set()
            train_labels = _class_indices(train, vocabulary, dropped)
            splits: dict[str, _TextSplit] = {}
            if self._test_path is not None:
                test = read_text_table(self._test_path, *attrs.astuple(self._columns))
                test_labels = _class_indices(test, vocabulary, dropped)
                splits["train"] = _split(train, np.arange(len(train.ids)), train_labels)
                splits["test"] = _split(test, np.arange(len(test.ids)), test_labels)
            else:
                held = np.zeros(0, np.int64)
                if train_labels is not None:
                    held = held_out_rows(train_labels, self._test_fraction, self._split_seed)
                pool = np.setdiff1d(np.arange(len(train.ids)), held)
                if len(pool) == 0:
                    raise DataError(
                        f"{train.path}: no messages left for the pool; lower --test-fraction"
                    )
                splits["train"] = _split(train, pool, train_labels)
                if len(held):
                    splits["test"] = _split(train, held, train_labels)
            self._splits = splits
            dimension = self._dimension()
            self._info = DatasetInfo(
                name=self.name,
                sample_shape=(dimension,),
                vocabulary=vocabulary,
                split_sizes=tuple((split, len(data.serials)) for split, data in splits.items()),
                has_true_labels=any(
                    data.labels is not None and bool((data.labels >= 0).any())
                    for data in splits.values()
                ),
                kind="text",
                notes=self._width_notes(dimension),
            )

    def _dimension(self) -> int:
        if self.embedder_name == "tfidf":
            width = self._tfidf_width()
            if width is not None and not self._saved_tfidf_present():
                return width
            return self.embedder().dimension  # fitted (or read back) to learn its width
        from ssvae.adapters.text.minilm import read_config

        assert self._embedder_folder is not None
        config = read_config(self._embedder_folder)
        return config.hidden_size * len(config.pooling_modes)

    def _tfidf_width(self) -> int | None:
        """The tfidf width to fit: the one asked for, else the default where the pool holds
        enough messages for it; None for as many as a smaller pool allows.

        Only a small pool is fitted to learn its width, so describing a large dataset stays
        cheap (fitting 20,000 messages takes seconds).
        """
        from ssvae.adapters.text.tfidf import DEFAULT_DIM

        if self._embedder_dim is not None:
            return self._embedder_dim
        return DEFAULT_DIM if len(self._splits["train"].rows) >= DEFAULT_DIM else None

    def _width_notes(self, dimension: int) -> tuple[str, ...]:
        from ssvae.adapters.text.tfidf import DEFAULT_DIM, narrowed_note

        if self.embedder_name != "tfidf" or self._embedder_dim is not None:
            return ()
        if dimension >= DEFAULT_DIM or self._saved_tfidf_present():
            return ()  # a workspace's saved width was told when it was created
        return (narrowed_note(len(self._splits["train"].rows), dimension),)

    def _saved_tfidf_present(self) -> bool:
        return self._state_dir is not None and (self._state_dir / TFIDF_FILE).is_file()

    def _pool_texts(self) -> list[str]:
        if not self._splits:  # while _read() runs, the splits are already there
            self._read()
        data = self._splits["train"]
        return [data.table.texts[row] for row in data.rows]

    def _tfidf(self) -> Embedder:
        from ssvae.adapters.text.tfidf import TfidfEmbedder

        saved = None if self._state_dir is None else self._state_dir / TFIDF_FILE
        if saved is not None and saved.is_file():
            embedder = TfidfEmbedder.load(saved)
            if self._embedder_dim is not None and embedder.dimension != self._embedder_dim:
                raise DataError(
                    f"{saved}: the saved tfidf model gives {embedder.dimension}-D vectors but "
                    f"the dataset settings ask for {self._embedder_dim}; use the same "
                    "--embedder-dim or a new workspace"
                )
            return embedder
        return fitted_tfidf(self._pool_texts(), self._tfidf_width(), self._cache_dir)

    def _minilm(self) -> Embedder:
        assert self._embedder_folder is not None
        return open_minilm(self._embedder_folder)

    def _embed(self, texts: Sequence[str]) -> FloatArray:
        embedder = self.embedder()
        if self._cache_dir is None:
            return np.asarray(embedder.embed(texts), np.float32)
        return cached_embed(embedder, texts, self._cache_dir / EMBEDDINGS_CACHE)

    def _split_vectors(self, split: str) -> FloatArray:
        """The scaled vectors of `split`'s rows (serial order); embeds each file once."""
        with self._lock:
            if split in self._vectors:
                return self._vectors[split]
            data = self._split(split)
            raw = self._file_vectors(data.table)[data.rows]
            if self._scaling is None:
                pool = self._split("train")
                self._scaling = self._read_scaling() or Scaling.fit(
                    self._scaling_kind, self._file_vectors(pool.table)[pool.rows]
                )
            vectors = self._vectors[split] = self._scaling.apply(raw)
            if all(name in self._vectors for name in self._splits):
                # Every split is scaled: the unscaled copies of the files are no longer needed.
                for key in [key for key in self._vectors if key.startswith("file:")]:
                    del self._vectors[key]
            return vectors

    def _file_vectors(self, table: TextTable) -> FloatArray:
        key = f"file:{table.path}"
        if key not in self._vectors:
            self._vectors[key] = self._embed(table.texts)
        return self._vectors[key]

    def _read_scaling(self) -> Scaling | None:
        if self._scaling_kind != "standardise" or self._state_dir is None:
            return None
        path = self._state_dir / SCALING_FILE
        return Scaling.load(path, self._dimension()) if path.is_file() else None


def fitted_tfidf(
    texts: Sequence[str], dim: int | None, cache_dir: Path | None = None
) -> TfidfEmbedder:
    """A TfidfEmbedder fitted on `texts`; read from (and written to) cache_dir when given.

    `dim` None: DEFAULT_DIM values, or as many as the messages allow when they allow fewer
    (a small file cannot support the default, and the user did not ask for a width).
    """
    from ssvae.adapters.text.tfidf import DEFAULT_DIM, TfidfEmbedder, TfidfWidthError

    if dim is None:
        try:
            return fitted_tfidf(texts, DEFAULT_DIM, cache_dir)
        except TfidfWidthError as error:
            if error.widest < 2:
                raise
            return fitted_tfidf(texts, error.widest, cache_dir)
    embedder = TfidfEmbedder(dim=dim)
    if cache_dir is None:
        return embedder.fit(texts)
    digest = hashlib.sha256(json.dumps(attrs.asdict(embedder.settings)).encode())
    digest.update(texts_fingerprint(texts).encode())
    cached = Path(cache_dir) / MODELS_CACHE / f"tfidf-{digest.hexdigest()}.npz"
    if cached.is_file():
        try:
            return TfidfEmbedder.load(cached)
        except DataError:
            pass  # a damaged cache entry is refitted and replaced
    embedder.fit(texts)
    embedder.save(cached)
    return embedder


def open_minilm(folder: Path) -> Embedder:
    """The minilm encoder of a local sentence-transformers folder; DataError if it is missing."""
    from ssvae.adapters.text.minilm import MiniLmEmbedder, check_folder

    check_folder(Path(folder))
    return MiniLmEmbedder(Path(folder))


def _positions(data: _TextSplit, wanted: IntArray, split: str) -> npt.NDArray[np.intp]:
    """Where each wanted serial sits in the split; DataError for an unknown one."""
    asked = np.asarray(wanted)
    if asked.ndim != 1 or (asked.size and asked.dtype.kind not in "iu"):
        raise DataError(f"serials must be a 1-D array of integers, got {asked.dtype} {asked.shape}")
    asked = asked.astype(np.int64)
    if not asked.size:
        return np.zeros(0, np.intp)
    positions = np.minimum(np.searchsorted(data.serials, asked), len(data.serials) - 1)
    unknown = np.flatnonzero(data.serials[positions] != asked)
    if unknown.size:
        raise DataError(f"serial {int(asked[unknown[0]])} is not in split {split!r}")
    return positions


# -- the built-in Loghub sample and the container's entry ---------------------------------------


def loghub_file(directory: Path | str | None = None) -> Path:
    """`messages.csv` in `directory`, or the copy shipped in the repository's data/loghub/."""
    if directory is not None:
        return Path(directory).expanduser() / "messages.csv"
    return Path(ssvae.adapters.__file__).resolve().parents[1] / "data" / "loghub" / "messages.csv"


def loghub_source(
    task: str = "system", *, directory: Path | str | None = None, **options: Any
) -> TextDataSource:
    """The Loghub sample: `system` (10 classes) or `event` (templates with >= 20 messages)."""
    if task not in LOGHUB_TASKS:
        raise DataError(f"loghub task {task!r} is unknown; use one of {', '.join(LOGHUB_TASKS)}")
    label_column, min_class_size = LOGHUB_TASKS[task]
    return TextDataSource(
        loghub_file(directory),
        name=f"loghub-{task}",
        id_column="id",
        text_column="text",
        label_column=label_column,
        min_class_size=min_class_size,
        **options,
    )


def open_text_source(
    *,
    name: str,
    train_path: Path | None,
    test_path: Path | None = None,
    directory: Path | None = None,
    task: str | None = None,
    id_column: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    classes: Sequence[str] | None = None,
    min_class_size: int = 1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    embedder: str = "tfidf",
    embedder_dim: int | None = None,
    embedder_folder: Path | None = None,
    scaling: str = "l2",
    state_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> TextDataSource:
    """The text source that DataSettings of kind 'text' describe (the built-in loghub or a file)."""
    common: dict[str, Any] = {
        "test_fraction": test_fraction,
        "split_seed": split_seed,
        "embedder": embedder,
        "embedder_dim": embedder_dim,
        "embedder_folder": embedder_folder,
        "scaling": scaling,
        "state_dir": state_dir,
        "cache_dir": cache_dir,
    }
    if name == "loghub" and train_path is None:
        return loghub_source(task or "system", directory=directory, **common)
    if train_path is None:
        raise DataError("a text dataset needs a file of messages: pass --input FILE")
    return TextDataSource(
        train_path,
        test_path,
        name=name,
        id_column=id_column,
        text_column=text_column,
        label_column=label_column,
        classes=classes,
        min_class_size=min_class_size,
        **common,
    )
