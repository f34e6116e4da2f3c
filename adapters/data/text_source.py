"""Text datasets: a table of messages turned into a DataSource by an Embedder.

Splits: 'train' (the pool) and 'test', from a second file or held out of the labelled rows
(stratified by class, chosen by a seed). Vectors come from an Embedder through the embedding
cache: `tfidf` is fitted on the train split, `minilm` reads a local sentence-transformers
folder. The vectors are then scaled for the Gaussian likelihood (`ssvae.adapters.text.scaling`).
A workspace keeps the fitted embedder and the scaling statistics (`save_state`) and reopens the
dataset from them (`state_dir`), so its messages always embed the same way.

Everything a source needs arrives as one `TextSourceSettings` value; the container builds it
from the application's data settings (`open_text_source`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.adapters.data.loghub import ID_COLUMN, TEXT_COLUMN, loghub_sample
from ssvae.adapters.data.text_table import TextColumns, TextTable, read_text_table
from ssvae.adapters.text.cache import cached_embed
from ssvae.adapters.text.scaling import Scaling
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.echo import short_repr
from ssvae.domain.errors import DataError, LabelError
from ssvae.domain.labels import ClassVocabulary
from ssvae.domain.text import EMBEDDERS, SCALINGS, Embedder, texts_fingerprint

TFIDF_FILE = "tfidf.npz"
SCALING_FILE = "scaling.npz"
EMBEDDINGS_CACHE = "embeddings"
MODELS_CACHE = "text-models"

if TYPE_CHECKING:  # scikit-learn and scipy load only when a tfidf model is fitted or read
    from ssvae.adapters.text.tfidf import TfidfEmbedder

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _path(value: Path | str) -> Path:
    return Path(value).expanduser()


def _optional_path(value: Path | str | None) -> Path | None:
    return None if value is None else _path(value)


def _optional_names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen(kw_only=True)
class TextSourceSettings:
    """What a TextDataSource reads and how: the file(s), their columns and classes, the split,
    the embedder and the scaling; state_dir keeps a workspace's fitted embedder and scaling
    statistics, cache_dir keeps embeddings. Checked once, here (DataError)."""

    train_path: Path = attrs.field(converter=_path)
    test_path: Path | None = attrs.field(default=None, converter=_optional_path)
    name: str | None = None  # None: the train file's stem
    id_column: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    classes: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_names)
    min_class_size: int = 1
    test_fraction: float = 0.2
    split_seed: int = 0
    embedder: str = "tfidf"
    embedder_dim: int | None = None
    embedder_folder: Path | None = attrs.field(default=None, converter=_optional_path)
    scaling: str = "l2"
    state_dir: Path | None = attrs.field(default=None, converter=_optional_path)
    cache_dir: Path | None = attrs.field(default=None, converter=_optional_path)

    def __attrs_post_init__(self) -> None:
        if self.embedder not in EMBEDDERS:
            raise DataError(
                f"embedder {self.embedder!r} is unknown; use one of {', '.join(EMBEDDERS)}"
            )
        if self.scaling not in SCALINGS:
            raise DataError(
                f"scaling {self.scaling!r} is unknown; use one of {', '.join(SCALINGS)}"
            )
        if not 0 <= self.test_fraction < 1:
            raise DataError(f"test fraction {self.test_fraction} must be in [0, 1)")
        if self.min_class_size < 1:
            raise DataError(f"minimum class size {self.min_class_size} must be at least 1")
        if self.embedder == "minilm" and self.embedder_folder is None:
            from ssvae.adapters.text.minilm import HOW_TO_PROVIDE

            raise DataError(f"the minilm embedder needs a model folder: {HOW_TO_PROVIDE}")

    @property
    def columns(self) -> TextColumns:
        """The columns to read (None: the first default name present)."""
        return TextColumns(self.id_column, self.text_column, self.label_column)


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


# -- the data source ---------------------------------------------------------------------------


class TextDataSource:
    """A DataSource and TextCatalog for messages: splits 'train' (the pool) and maybe 'test'."""

    def __init__(self, settings: TextSourceSettings) -> None:
        self.settings = settings
        self.name = settings.name or settings.train_path.stem
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
            if self.settings.embedder == "tfidf":
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
                self._embedder = (
                    self._tfidf() if self.settings.embedder == "tfidf" else self._minilm()
                )
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
            train = read_text_table(self.settings.train_path, *attrs.astuple(self.settings.columns))
            vocabulary = _vocabulary(train, self.settings.classes, self.settings.min_class_size)
            found = set(train.labels or ()) - {""}
            dropped = found - set(vocabulary.names) if self.settings.classes is None else set()
            train_labels = _class_indices(train, vocabulary, dropped)
            splits: dict[str, _TextSplit] = {}
            if self.settings.test_path is not None:
                test = read_text_table(
                    self.settings.test_path, *attrs.astuple(self.settings.columns)
                )
                test_labels = _class_indices(test, vocabulary, dropped)
                splits["train"] = _split(train, np.arange(len(train.ids)), train_labels)
                splits["test"] = _split(test, np.arange(len(test.ids)), test_labels)
            else:
                held = np.zeros(0, np.int64)
                if train_labels is not None:
                    held = held_out_rows(
                        train_labels, self.settings.test_fraction, self.settings.split_seed
                    )
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
        if self.settings.embedder == "tfidf":
            width = self._tfidf_width()
            if width is not None and not self._saved_tfidf_present():
                return width
            return self.embedder().dimension  # fitted (or read back) to learn its width
        from ssvae.adapters.text.minilm import read_config

        assert self.settings.embedder_folder is not None
        config = read_config(self.settings.embedder_folder)
        return config.hidden_size * len(config.pooling_modes)

    def _tfidf_width(self) -> int | None:
        """The tfidf width to fit: the one asked for, else the default where the pool holds
        enough messages for it; None for as many as a smaller pool allows.

        Only a small pool is fitted to learn its width, so describing a large dataset stays
        cheap (fitting 20,000 messages takes seconds).
        """
        from ssvae.adapters.text.tfidf import DEFAULT_DIM

        if self.settings.embedder_dim is not None:
            return self.settings.embedder_dim
        return DEFAULT_DIM if len(self._splits["train"].rows) >= DEFAULT_DIM else None

    def _width_notes(self, dimension: int) -> tuple[str, ...]:
        from ssvae.adapters.text.tfidf import DEFAULT_DIM, narrowed_note

        if self.settings.embedder != "tfidf" or self.settings.embedder_dim is not None:
            return ()
        if dimension >= DEFAULT_DIM or self._saved_tfidf_present():
            return ()  # a workspace's saved width was told when it was created
        return (narrowed_note(len(self._splits["train"].rows), dimension),)

    def _saved_tfidf_present(self) -> bool:
        return (
            self.settings.state_dir is not None and (self.settings.state_dir / TFIDF_FILE).is_file()
        )

    def _pool_texts(self) -> list[str]:
        if not self._splits:  # while _read() runs, the splits are already there
            self._read()
        data = self._splits["train"]
        return [data.table.texts[row] for row in data.rows]

    def _tfidf(self) -> Embedder:
        from ssvae.adapters.text.tfidf import TfidfEmbedder

        saved = None if self.settings.state_dir is None else self.settings.state_dir / TFIDF_FILE
        if saved is not None and saved.is_file():
            embedder = TfidfEmbedder.load(saved)
            if (
                self.settings.embedder_dim is not None
                and embedder.dimension != self.settings.embedder_dim
            ):
                raise DataError(
                    f"{saved}: the saved tfidf model gives {embedder.dimension}-D vectors but "
                    f"the dataset settings ask for {self.settings.embedder_dim}; use the same "
                    "--embedder-dim or a new workspace"
                )
            return embedder
        return fitted_tfidf(self._pool_texts(), self._tfidf_width(), self.settings.cache_dir)

    def _minilm(self) -> Embedder:
        assert self.settings.embedder_folder is not None
        return open_minilm(self.settings.embedder_folder)

    def _embed(self, texts: Sequence[str]) -> FloatArray:
        embedder = self.embedder()
        if self.settings.cache_dir is None:
            return np.asarray(embedder.embed(texts), np.float32)
        return cached_embed(embedder, texts, self.settings.cache_dir / EMBEDDINGS_CACHE)

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
                    self.settings.scaling, self._file_vectors(pool.table)[pool.rows]
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
        if self.settings.scaling != "standardise" or self.settings.state_dir is None:
            return None
        path = self.settings.state_dir / SCALING_FILE
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

# What describes the messages themselves; the rest (split, embedder, scaling, folders) applies
# to the Loghub sample too.
_FILE_FIELDS = (
    "train_path",
    "test_path",
    "name",
    "id_column",
    "text_column",
    "label_column",
    "classes",
    "min_class_size",
)


def loghub_settings(
    task: str = "system", directory: Path | str | None = None, **options: Any
) -> TextSourceSettings:
    """The Loghub sample's settings: `system` (10 classes) or `event` (templates with >= 20
    messages); `options` are the other TextSourceSettings fields."""
    sample = loghub_sample(task, directory)
    return TextSourceSettings(
        train_path=sample.path,
        name=sample.name,
        id_column=ID_COLUMN,
        text_column=TEXT_COLUMN,
        label_column=sample.label_column,
        min_class_size=sample.min_class_size,
        **options,
    )


def loghub_source(
    task: str = "system", *, directory: Path | str | None = None, **options: Any
) -> TextDataSource:
    """The Loghub sample as a source (see `loghub_settings`)."""
    return TextDataSource(loghub_settings(task, directory, **options))


def open_text_source(data: Mapping[str, Any]) -> TextDataSource:
    """The text source that the plain values of DataSettings of kind 'text' describe: the
    built-in loghub sample, or a file. Keys that are no TextSourceSettings field are ignored."""
    fields = attrs.fields_dict(TextSourceSettings)
    values = {key: value for key, value in data.items() if key in fields}
    if data.get("name") == "loghub" and values.get("train_path") is None:
        options = {key: value for key, value in values.items() if key not in _FILE_FIELDS}
        return loghub_source(
            data.get("task") or "system", directory=data.get("directory"), **options
        )
    if values.get("train_path") is None:
        raise DataError("a text dataset needs a file of messages: pass --input FILE")
    return TextDataSource(TextSourceSettings(**values))
