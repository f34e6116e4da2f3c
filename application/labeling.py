"""Labelling: set, unset and undo labels, import label files, count labels per class."""

from __future__ import annotations

from collections.abc import Iterable

from ssvae.domain.labels import HistoryEntry, LabelChange, LabelSet, changes_between, undo_change
from ssvae.domain.ports import LabelStore


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

    def set(self, serials: Iterable[int], class_name: str, source: str) -> LabelSet:
        """Give every serial in `serials` the class `class_name`."""
        return self._store.apply([LabelChange(int(s), class_name) for s in serials], source)

    def unset(self, serials: Iterable[int], source: str) -> LabelSet:
        """Remove the labels of `serials` (unlabelled serials are left alone)."""
        return self._store.apply([LabelChange(int(s), None) for s in serials], source)

    def undo(self, source: str) -> HistoryEntry | None:
        """Revert the latest change not undone yet, whoever made it; None when there is none."""
        change = undo_change(self._store.history())
        if change is None:
            return None
        self._store.apply([change], source)
        for entry in reversed(self._store.history()):
            if entry.undoes == change.undoes:
                return entry
        return None  # not reached: apply records every undo

    def import_labels(
        self, imported: LabelSet, source: str, *, keep_unlisted: bool = False
    ) -> LabelSet:
        """Make the labels equal to `imported`, or only add and overwrite with `keep_unlisted`."""
        current = self._store.load()
        changes = changes_between(current, imported)
        if keep_unlisted:
            changes = [change for change in changes if change.new is not None]
        return self._store.apply(changes, source)
