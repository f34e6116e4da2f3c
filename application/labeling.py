"""Labelling: set, unset and undo labels, add classes, import label files, count labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import LabelError
from ssvae.domain.labels import (
    ClassVocabulary,
    LabelChange,
    LabelSet,
    Undone,
    changes_between,
)
from ssvae.domain.ports import LabelFileCodec, LabelStore


class LabelService:
    """The labelling verbs over one label store; every change is in the store's history."""

    def __init__(self, store: LabelStore) -> None:
        self._store = store

    def labels(self) -> LabelSet:
        """The current labels."""
        return self._store.load()

    def counts(self) -> dict[str, int]:
        """Labels per class name, every class present."""
        return self._store.load().counts()

    def vocabulary(self) -> ClassVocabulary:
        """The classes labels can name now: the dataset's, then those added by users."""
        return self._store.load().vocabulary

    def set(
        self, serials: Iterable[int], class_name: str, source: str, *, new_class: bool = False
    ) -> LabelSet:
        """Give every serial in `serials` the class `class_name`; `new_class` adds it to the
        vocabulary first (LabelError, and nothing written, when it is already a class)."""
        changes = [LabelChange(int(s), class_name) for s in serials]
        return self._store.apply(changes, source, new_classes=(class_name,) if new_class else ())

    def add_class(self, class_name: str, source: str) -> ClassVocabulary:
        """Add `class_name` to the vocabulary without labelling anything yet."""
        return self._store.apply([], source, new_classes=(class_name,)).vocabulary

    def unset(self, serials: Iterable[int], source: str) -> LabelSet:
        """Remove the labels of `serials` (unlabelled serials are left alone)."""
        return self._store.apply([LabelChange(int(s), None) for s in serials], source)

    def undo(self, source: str) -> Undone:
        """Revert the latest batch not undone yet (a group labelled at once, an import), whoever
        wrote it, as a whole; its entries are empty when nothing is left to undo."""
        return self._store.undo(source)

    def import_labels(
        self,
        imported: LabelSet,
        source: str,
        *,
        keep_unlisted: bool = False,
        add_classes: bool = False,
    ) -> LabelSet:
        """Make the labels equal to `imported`, or only add and overwrite with `keep_unlisted`.

        `add_classes`: the classes of `imported`'s vocabulary that the store lacks are added
        to it (a clone keeps the classes its source gained); otherwise they are refused."""
        current = self._store.load()
        changes = changes_between(current, imported)
        if keep_unlisted:
            changes = [change for change in changes if change.new is not None]
        added = [n for n in imported.vocabulary.names if n not in current.vocabulary]
        return self._store.apply(changes, source, new_classes=added if add_classes else ())


class LabelExchange:
    """Import and export label files; the format follows the file's extension."""

    def __init__(
        self,
        service: LabelService,
        codecs: Mapping[str, LabelFileCodec],
        valid_serials: npt.NDArray[np.int64],
    ) -> None:
        self._service = service
        self._codecs = codecs
        self._valid_serials = valid_serials

    def import_file(self, path: Path, source: str, *, keep_unlisted: bool = False) -> LabelSet:
        """Apply the labels in `path` (validated in full, against the store's classes, before
        anything changes)."""
        vocabulary = self._service.vocabulary()
        imported = self._codec(path).read(path, vocabulary, self._valid_serials)
        return self._service.import_labels(imported, source, keep_unlisted=keep_unlisted)

    def export_file(self, path: Path) -> LabelSet:
        """Write the current labels to `path` atomically."""
        labels = self._service.labels()
        self._codec(path).write(path, labels)
        return labels

    def _codec(self, path: Path) -> LabelFileCodec:
        suffix = path.suffix.lower().lstrip(".")
        fmt = "parquet" if suffix in ("parquet", "pq") else suffix
        if fmt not in self._codecs:
            raise LabelError(
                f"{path}: unknown label file type {path.suffix!r}; "
                f"use one of: {', '.join('.' + name for name in self._codecs)}"
            )
        return self._codecs[fmt]
