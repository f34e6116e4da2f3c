"""Application settings: read at the edges (CLI flags, YAML, environment), validated once here,
then handed to the container as plain values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from ssvae.domain.errors import SsvaeError

DATA_KINDS = ("idx", "vectors")
IDX_DATASETS = ("mnist", "fashion_mnist")
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


def _path(value: object) -> Path:
    return Path(str(value)).expanduser()


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "ssvae"


@attrs.frozen(kw_only=True)
class DataSettings:
    """Which dataset to read and where."""

    kind: str = attrs.field(default="idx", validator=_one_of(DATA_KINDS))
    name: str = attrs.field(default="mnist")
    directory: Path | None = attrs.field(default=None, converter=_optional_path)
    cache_dir: Path = attrs.field(factory=_default_cache_dir, converter=_path)
    download: bool = False
    train_path: Path | None = attrs.field(default=None, converter=_optional_path)
    test_path: Path | None = attrs.field(default=None, converter=_optional_path)
    classes: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_names)

    def __attrs_post_init__(self) -> None:
        if self.kind == "idx" and self.name not in IDX_DATASETS:
            raise SettingsError(
                f"dataset {self.name!r} is unknown: built-in datasets are "
                f"{', '.join(IDX_DATASETS)}; for your own vectors use kind 'vectors' "
                "with a train_path"
            )
        if self.kind == "vectors" and self.train_path is None:
            raise SettingsError(
                "a 'vectors' dataset needs train_path: an .npy, .npz or .parquet file"
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
    artifacts_dir: Path = attrs.field(default=Path("artifacts"), converter=_path)

    def as_config(self) -> dict[str, Any]:
        """The plain dictionary that the container's Configuration provider reads."""
        config: dict[str, Any] = attrs.asdict(self, recurse=True)
        config["labels"]["format"] = self.labels.resolved_format()
        return config
