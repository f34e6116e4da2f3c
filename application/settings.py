"""Application settings: read at the edges (CLI flags, YAML, environment), validated once here,
then handed to the container as plain values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from ssvae.domain.errors import SsvaeError
from ssvae.domain.text import EMBEDDERS, LOGHUB_TASKS, SCALINGS

# Where workspaces, reports and checkpoints go unless a flag or a setting says otherwise.
DEFAULT_ARTIFACTS = Path("artifacts")

DATA_KINDS = ("idx", "vectors", "text")
IDX_DATASETS = ("mnist", "fashion_mnist")
TEXT_DATASETS = ("loghub",)  # built in; other text datasets are files (train_path)
LABEL_FORMATS = ("csv", "parquet")


class SettingsError(SsvaeError, ValueError):
    """An invalid setting."""


def _one_of(options: tuple[str, ...]) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in options:
            raise SettingsError(
                f"setting '{attribute.name}' = {value!r} is invalid: "
                f"must be one of {', '.join(options)}"
            )

    return check


def _optional_path(value: object) -> Path | None:
    if value is None or value == "":
        return None
    return Path(str(value)).expanduser()


def _optional_names(value: object) -> tuple[str, ...] | None:
    """Class names for vector data: a sequence or one comma-separated string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(","))
    if isinstance(value, list | tuple):
        return tuple(str(name) for name in value)
    raise SettingsError(f"setting 'classes' = {value!r} is invalid: give a list of class names")


def _optional_text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _fraction(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
        raise SettingsError(
            f"setting '{attribute.name}' = {value!r} is invalid: must be a number in [0, 1)"
        )


def _at_least(low: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SettingsError(
                f"setting '{attribute.name}' = {value!r} is invalid: must be an integer >= {low}"
            )

    return check


def _path(value: object) -> Path:
    return Path(str(value)).expanduser()


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "ssvae"


@attrs.frozen(kw_only=True)
class DataSettings:
    """Which dataset to read and where.

    kind 'idx': a built-in image dataset (name). kind 'vectors': your own vectors
    (train_path, test_path; id_column, vector_column, label_column name the columns).
    kind 'text': messages, either the built-in `loghub` sample (name, task) or your own file
    (train_path, optional test_path; id_column, text_column, label_column), embedded by
    `embedder` (tfidf of embedder_dim values, or minilm read from embedder_folder), scaled by
    `scaling`; without a test file, test_fraction of the labelled messages is held out as the
    test split (stratified, chosen by split_seed). state_dir keeps the fitted embedder and
    scaling statistics (a workspace's `embedder/` folder); cache_dir keeps embeddings.
    """

    kind: str = attrs.field(default="idx", validator=_one_of(DATA_KINDS))
    name: str = attrs.field(default="mnist")
    directory: Path | None = attrs.field(default=None, converter=_optional_path)
    cache_dir: Path = attrs.field(factory=_default_cache_dir, converter=_path)
    download: bool = False
    train_path: Path | None = attrs.field(default=None, converter=_optional_path)
    test_path: Path | None = attrs.field(default=None, converter=_optional_path)
    classes: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_names)
    id_column: str | None = attrs.field(default=None, converter=_optional_text)
    text_column: str | None = attrs.field(default=None, converter=_optional_text)
    label_column: str | None = attrs.field(default=None, converter=_optional_text)
    vector_column: str | None = attrs.field(default=None, converter=_optional_text)
    task: str | None = attrs.field(default=None, converter=_optional_text)
    embedder: str = attrs.field(default="tfidf", validator=_one_of(EMBEDDERS))
    # None: 256 tfidf values, or as many as a small pool allows (a workspace records the width)
    embedder_dim: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_at_least(2))
    )
    embedder_folder: Path | None = attrs.field(default=None, converter=_optional_path)
    scaling: str = attrs.field(default="l2", validator=_one_of(SCALINGS))
    test_fraction: float = attrs.field(default=0.2, validator=_fraction)
    split_seed: int = attrs.field(default=0, validator=_at_least(0))
    min_class_size: int = attrs.field(default=1, validator=_at_least(1))
    state_dir: Path | None = attrs.field(default=None, converter=_optional_path)

    def __attrs_post_init__(self) -> None:
        if self.kind == "text":
            self._check_text()
        if self.kind == "idx" and self.name not in IDX_DATASETS:
            raise SettingsError(
                f"dataset {self.name!r} is unknown: built-in datasets are "
                f"{', '.join((*IDX_DATASETS, *TEXT_DATASETS))}; for your own data give a "
                "file (--vectors FILE for vectors, --input FILE for messages)"
            )
        if self.kind == "vectors" and self.train_path is None:
            raise SettingsError(
                "a 'vectors' dataset needs train_path: an .npy, .npz, .parquet or .csv file"
            )

    def _check_text(self) -> None:
        builtin = self.name in TEXT_DATASETS and self.train_path is None
        if builtin and self.task not in LOGHUB_TASKS:
            raise SettingsError(
                f"dataset {self.name!r} needs a task: --task {' or --task '.join(LOGHUB_TASKS)} "
                f"(got {self.task!r})"
            )
        if not builtin and self.train_path is None:
            raise SettingsError(
                "a text dataset needs a file of messages: --input FILE (.csv, .jsonl or .parquet) "
                f"or a built-in one: --dataset {' or '.join(TEXT_DATASETS)}"
            )
        if not builtin and self.task is not None:
            raise SettingsError(
                f"--task {self.task} is for the built-in {', '.join(TEXT_DATASETS)} dataset; "
                "for your own file name the class column with --label-column"
            )
        if self.embedder == "minilm" and self.embedder_folder is None:
            raise SettingsError(
                "the minilm embedder needs a local sentence-transformers folder (nothing is "
                "downloaded): pass --embedder-folder PATH, e.g. a copy of all-MiniLM-L6-v2 "
                "holding config.json, tokenizer.json, model.safetensors and modules.json"
            )


def _format_from_path(path: Path) -> str:
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


@attrs.frozen(kw_only=True)
class LabelSettings:
    """Where the labels live; the format follows the file extension unless given."""

    path: Path = attrs.field(default=Path("labels.csv"), converter=_path)
    format: str = attrs.field(default="", validator=_one_of((*LABEL_FORMATS, "")))
    lock_timeout: float = 10.0

    def resolved_format(self) -> str:
        return self.format or _format_from_path(self.path)


@attrs.frozen(kw_only=True)
class AppSettings:
    """Everything the container needs, as one validated value."""

    data: DataSettings = attrs.field(factory=DataSettings)
    labels: LabelSettings = attrs.field(factory=LabelSettings)
    artifacts_dir: Path = attrs.field(default=DEFAULT_ARTIFACTS, converter=_path)

    def as_config(self) -> dict[str, Any]:
        """The plain dictionary that the container's Configuration provider reads."""
        config: dict[str, Any] = attrs.asdict(self, recurse=True)
        config["labels"]["format"] = self.labels.resolved_format()
        return config
