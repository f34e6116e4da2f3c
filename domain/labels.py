"""Labels: a class vocabulary, immutable label sets, changes and their history.

A label is (serial, class name). Serials are the integer ids of samples in a dataset's pool;
class names come from a `ClassVocabulary` (digits for MNIST, strings such as 'OpenSSH' for
text), never hard-coded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.domain.errors import LabelError
from ssvae.domain.serials import MAX_SERIAL


def _to_names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _check_names(_: object, __: object, names: tuple[str, ...]) -> None:
    if len(names) < 2:
        raise LabelError(f"a class vocabulary needs at least 2 classes, got {list(names)}")
    for name in names:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise LabelError(
                f"class name {name!r} is invalid: names are non-empty strings "
                "without surrounding spaces"
            )
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise LabelError(f"class names must be unique; repeated: {', '.join(repeated)}")


@attrs.frozen
class ClassVocabulary:
    """The ordered class names of a dataset; a class's index is its position."""

    names: tuple[str, ...] = attrs.field(converter=_to_names, validator=_check_names)
    _positions: Mapping[str, int] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        positions: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        object.__setattr__(self, "_positions", MappingProxyType(positions))

    @classmethod
    def digits(cls, count: int = 10) -> ClassVocabulary:
        return cls(tuple(str(i) for i in range(count)))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._positions

    def with_class(self, name: str) -> ClassVocabulary:
        """This vocabulary with the new class `name` appended (the others keep their index);
        LabelError when `name` is empty, badly spaced or already a class."""
        if not isinstance(name, str) or not name.strip():
            raise LabelError(
                f"a new class needs a name, got {name!r}; give it a name that is not empty"
            )
        if name in self:
            raise LabelError(
                f"class {name!r} already exists (class {self.index(name)} of {len(self)}); "
                "label with it without adding it again"
            )
        return ClassVocabulary((*self.names, name))

    def with_classes(self, names: Iterable[str]) -> ClassVocabulary:
        """This vocabulary with every name of `names` added in order (see `with_class`)."""
        grown = self
        for name in names:
            grown = grown.with_class(name)
        return grown

    def extends(self, base: ClassVocabulary) -> bool:
        """Whether this vocabulary is `base` with classes added after it (or `base` itself)."""
        return self.names[: len(base)] == base.names

    def index(self, name: str) -> int:
        """The position of `name`; LabelError naming the vocabulary when it is unknown."""
        try:
            return self._positions[name]
        except KeyError:
            shown = ", ".join(self.names[:20]) + (", ..." if len(self.names) > 20 else "")
            raise LabelError(f"class {name!r} is not in the vocabulary ({shown})") from None


@attrs.frozen
class LabelChange:
    """Set (`new` is a class name) or unset (`new` is None) one serial's label."""

    serial: int
    new: str | None
    undoes: int | None = None  # index of the history entry this change reverts


@attrs.frozen
class HistoryEntry:
    """One applied change: when, what the label was before and after, and who made it."""

    index: int
    timestamp: float
    serial: int
    previous: str | None
    new: str | None
    source: str
    undoes: int | None = None
    # The index of the first entry written by the same write (one `apply`, one undo): a
    # group labelled at once is undone at once. None: the entry is a batch of its own.
    batch: int | None = None

    @property
    def batch_id(self) -> int:
        return self.index if self.batch is None else self.batch


@attrs.frozen
class Undone:
    """What one undo did: the labels after it and its entries, one per reverted entry
    (none when nothing was left to undo)."""

    labels: LabelSet
    entries: tuple[HistoryEntry, ...]

    def serials(self) -> list[int]:
        """The serials whose label the undo restored, ascending."""
        return sorted({entry.serial for entry in self.entries})


def _frozen_mapping(value: Mapping[int, str]) -> Mapping[int, str]:
    return MappingProxyType(dict(value))


@attrs.frozen(eq=False)
class LabelSet:
    """An immutable set of labels over one vocabulary."""

    vocabulary: ClassVocabulary
    _by_serial: Mapping[int, str] = attrs.field(factory=dict, converter=_frozen_mapping)

    def __attrs_post_init__(self) -> None:
        for serial, name in self._by_serial.items():
            if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
                raise LabelError(f"serial {serial!r} is invalid: serials are integers >= 0")
            if name not in self.vocabulary:
                self.vocabulary.index(name)  # raises with the vocabulary listed

    @classmethod
    def from_pairs(cls, vocabulary: ClassVocabulary, pairs: Iterable[tuple[int, str]]) -> LabelSet:
        """A label set from (serial, class) pairs; a repeated serial is an error."""
        by_serial: dict[int, str] = {}
        for serial, name in pairs:
            if serial in by_serial:
                raise LabelError(f"serial {serial} is labelled twice; keep one row per serial")
            by_serial[serial] = name
        return cls(vocabulary, by_serial)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSet):
            return NotImplemented
        return self.vocabulary == other.vocabulary and dict(self._by_serial) == dict(
            other._by_serial
        )

    def __hash__(self) -> int:
        return hash((self.vocabulary, frozenset(self._by_serial.items())))

    def __len__(self) -> int:
        return len(self._by_serial)

    def __contains__(self, serial: object) -> bool:
        return serial in self._by_serial

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(sorted(self._by_serial.items()))

    def get(self, serial: int) -> str | None:
        return self._by_serial.get(serial)

    def with_change(self, change: LabelChange) -> LabelSet:
        if change.new is None:
            return LabelSet(
                self.vocabulary, {s: c for s, c in self._by_serial.items() if s != change.serial}
            )
        return LabelSet(self.vocabulary, {**self._by_serial, change.serial: change.new})

    def serials(self) -> npt.NDArray[np.int64]:
        """Labelled serials in ascending order."""
        return np.array(sorted(self._by_serial), dtype=np.int64)

    def class_indices(self) -> npt.NDArray[np.int64]:
        """Class indices aligned with `serials()`."""
        return np.array(
            [self.vocabulary.index(self._by_serial[s]) for s in sorted(self._by_serial)],
            dtype=np.int64,
        )

    def counts(self) -> dict[str, int]:
        """Labels per class name, every class of the vocabulary present."""
        out = dict.fromkeys(self.vocabulary.names, 0)
        for name in self._by_serial.values():
            out[name] += 1
        return out


def apply_changes(labels: LabelSet, changes: Sequence[LabelChange]) -> LabelSet:
    """The label set after `changes`, in order; classes are checked against the vocabulary."""
    for change in changes:
        if change.new is not None:
            labels.vocabulary.index(change.new)
        labels = labels.with_change(change)
    return labels


def undo_batch(newest_first: Iterable[HistoryEntry]) -> list[LabelChange]:
    """The changes that revert the latest batch not yet undone, as a whole; [] when nothing
    is left to undo.

    `newest_first` is read lazily and only as far as needed, so a store can parse its
    history backwards from the end. Undo entries themselves are never undone, and an entry
    reverted once is skipped, so repeated undos walk back through the history batch by
    batch. An undo entry always follows the entry it reverts, so by the time the walk
    reaches an entry it has seen every undo of it. The changes come newest first: when a
    batch changed a serial twice, the earliest label is the one that stays.
    """
    undone: set[int] = set()
    batch: int | None = None
    changes: list[LabelChange] = []
    for entry in newest_first:
        if batch is not None and entry.batch_id != batch:
            break  # a batch is written in one append: its entries are contiguous
        if entry.undoes is not None:
            undone.add(entry.undoes)
        elif entry.index not in undone:
            batch = entry.batch_id
            changes.append(LabelChange(entry.serial, entry.previous, undoes=entry.index))
    return changes


def replay(vocabulary: ClassVocabulary, history: Sequence[HistoryEntry]) -> LabelSet:
    """The label set that `history` produces from nothing (used to check stores)."""
    by_serial: dict[int, str] = {}
    for entry in history:  # a dict, not LabelSet.with_change: linear in the history's length
        if entry.new is None:
            by_serial.pop(entry.serial, None)
        else:
            by_serial[entry.serial] = entry.new
    return LabelSet(vocabulary, by_serial)


def describe_serials(valid_serials: npt.NDArray[np.int64]) -> str:
    """A short description of a dataset's serials for error messages."""
    if valid_serials.size == 0:
        return "the dataset has no serials"
    return (
        f"the dataset has {valid_serials.size} serials, "
        f"from {int(valid_serials.min())} to {int(valid_serials.max())}"
    )


def ascending_unique(serials: npt.NDArray[np.integer]) -> bool:
    """Whether `serials` (1-D) increase strictly: sorted, none repeated. A pool's serials
    usually are, and checking so is one comparison a row, where np.unique's sorted copy of
    10M serials took seconds and 0.2 GB."""
    return bool(np.all(serials[1:] > serials[:-1]))


def shown_serial(serial: int) -> str:
    """`serial` for a message, cut short when it is long (an integer past Python's
    4,300-digit limit cannot even be printed, and a message stays one readable line)."""
    digits = int(abs(serial).bit_length() * 0.30103) + 1  # log10(2): the decimal length
    if digits <= 40:
        return str(serial)
    return f"<a number of about {digits} digits>"


def validate_changes(
    changes: Sequence[LabelChange],
    vocabulary: ClassVocabulary,
    valid_serials: npt.NDArray[np.int64],
) -> None:
    """LabelError naming a change whose serial or class the dataset does not have."""
    for change in changes:
        serial = change.serial
        if isinstance(serial, bool) or not isinstance(serial, int | np.integer) or serial < 0:
            raise LabelError(f"serial {serial!r} is invalid: serials are integers >= 0")
        if serial > MAX_SERIAL:
            raise LabelError(
                f"serial {shown_serial(int(serial))} is not in the dataset "
                f"({describe_serials(valid_serials)}); use serials of the dataset's training pool"
            )
        if change.new is not None and (
            not isinstance(change.new, str) or change.new not in vocabulary
        ):
            shown = ", ".join(vocabulary.names[:20]) + (", ..." if len(vocabulary) > 20 else "")
            raise LabelError(
                f"cannot label serial {int(serial)} as {change.new!r}: that class is not in "
                f"the vocabulary; use one of {shown}, or add --new-class to create it"
            )
    serials = np.fromiter((int(c.serial) for c in changes), dtype=np.int64, count=len(changes))
    unknown = serials[~np.isin(serials, valid_serials)]
    if unknown.size:
        raise LabelError(
            f"serial {int(unknown[0])} is not in the dataset ({describe_serials(valid_serials)}); "
            "use serials of the dataset's training pool"
        )


def record_changes(
    labels: LabelSet,
    changes: Sequence[LabelChange],
    *,
    source: str,
    first_index: int,
    timestamp: float,
) -> tuple[LabelSet, tuple[HistoryEntry, ...]]:
    """The labels after `changes` and one history entry per change that did something.

    A change that leaves a label as it was is not recorded (it would make undo a no-op), except
    an undo: it is recorded even then, so that repeated undos keep walking back.
    """
    by_serial = dict(labels)  # mutated in place: linear in the number of changes
    entries: list[HistoryEntry] = []
    for change in changes:
        serial = int(change.serial)
        previous = by_serial.get(serial)
        if previous == change.new and change.undoes is None:
            continue
        if change.new is None:
            by_serial.pop(serial, None)
        else:
            labels.vocabulary.index(change.new)
            by_serial[serial] = change.new
        entries.append(
            HistoryEntry(
                index=first_index + len(entries),
                timestamp=timestamp,
                serial=serial,
                previous=previous,
                new=change.new,
                source=source,
                undoes=change.undoes,
                batch=first_index,
            )
        )
    return LabelSet(labels.vocabulary, by_serial), tuple(entries)


def changes_between(current: LabelSet, target: LabelSet) -> list[LabelChange]:
    """The changes that turn `current` into `target`, by ascending serial."""
    wanted = dict(target)
    serials = sorted({s for s, _ in current} | set(wanted))
    return [
        LabelChange(serial, wanted.get(serial))
        for serial in serials
        if current.get(serial) != wanted.get(serial)
    ]
