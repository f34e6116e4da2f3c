"""The Label page's view model: keys and groups become label changes, points become details.

Every change goes through the LabelService (so it is in the store's history and durable when
the call returns); the page only redraws the rows an update names.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.labeling import LabelService
from ssvae.domain.labels import ClassVocabulary, LabelSet
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError, PoolMap, user_codes
from ssvae.entrypoints.dashboard.viewmodels.text import PoolTexts

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
SampleLoader = Callable[[IntArray], npt.NDArray[np.float32]]
Reconstructor = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]

UNLABELLED = "(unlabelled)"
DELETE_KEYS = ("Delete", "Backspace")
# The group's class starts unchosen: a preset class (the first, or the last one used) was
# confirmed unread, and a lasso on a mixed region then labelled every point in it as that.
CHOOSE_CLASS = "(choose a class)"
REMOVE = "(remove labels)"
REVIEW_LIMIT = 48  # members of a group shown for review; a larger group shows a sample of them


def with_vocabulary(pool_map: PoolMap, vocabulary: ClassVocabulary) -> PoolMap:
    """The map over `vocabulary`, a vocabulary grown from the model's: a class added since
    the model was trained gets probability 0 in both classifiers until the next run."""
    if pool_map.vocabulary == vocabulary and pool_map.class_probs.shape[1] == len(vocabulary):
        return pool_map
    if not vocabulary.extends(pool_map.vocabulary):
        raise DashboardError(
            f"the labels' classes ({', '.join(vocabulary.names[:12])}) do not extend the "
            "model's; reload the page"
        )

    def padded(probs: FloatArray | None) -> FloatArray | None:
        if probs is None or probs.shape[1] >= len(vocabulary):
            return probs
        extra = np.zeros((probs.shape[0], len(vocabulary) - probs.shape[1]), probs.dtype)
        return np.concatenate([probs, extra], axis=1)

    class_probs = padded(pool_map.class_probs)
    assert class_probs is not None
    return attrs.evolve(
        pool_map,
        vocabulary=vocabulary,
        class_probs=class_probs,
        tau_probs=padded(pool_map.tau_probs),
    )


@attrs.frozen(eq=False)
class LabelUpdate:
    """What an action changed: the map rows to redraw with their new class codes (-1: none)."""

    rows: IntArray
    codes: IntArray
    message: str
    counts: dict[str, int]


@attrs.frozen
class GroupPreview:
    """What labelling a group would do: how many points, and the classes they hold now."""

    count: int
    target: str | None  # None: remove their labels
    previous: dict[str, int]  # class name (or UNLABELLED) -> how many hold it now

    def summary(self) -> str:
        """One line for the confirmation dialog."""
        held = ", ".join(f"{name}: {n}" for name, n in self.previous.items() if n)
        action = f"label {self.count} points as {self.target!r}"
        if self.target is None:
            action = f"remove the labels of {self.count} points"
        return f"{action}; they hold now {held or 'nothing'}"


@attrs.frozen(eq=False)
class GroupReview:
    """A drawn or searched group before it is labelled: its map rows in a seeded order whose
    first `limit` are shown for review, and how many the person dropped from it.

    A large group shows a random sample rather than its first rows: the first rows by serial
    come from wherever the data listed first, a random sample from the whole drawn area, so
    that a mixed region shows mixed thumbnails. A dropped row gives its place to the next.
    """

    order: IntArray
    limit: int = REVIEW_LIMIT
    dropped: int = 0
    how: str = "inside the drawn area"

    @classmethod
    def of(
        cls,
        rows: npt.ArrayLike,
        how: str = "inside the drawn area",
        limit: int = REVIEW_LIMIT,
        seed: int = 0,
    ) -> GroupReview:
        """The group of map rows `rows` (duplicates once), shown in row order when it fits in
        `limit`, else in an order drawn with `seed`."""
        unique = np.unique(np.asarray(rows, np.int64))
        if unique.size > limit:
            unique = np.random.default_rng(seed).permutation(unique)
        return cls(unique, limit, 0, how)

    def __len__(self) -> int:
        return int(self.order.size)

    @property
    def rows(self) -> IntArray:
        """Every row still in the group, ascending."""
        return np.sort(self.order)

    @property
    def shown(self) -> IntArray:
        """The rows the review grid shows."""
        return self.order[: self.limit]

    def without(self, row: int) -> GroupReview:
        """The group less map row `row`; DashboardError when the group does not hold it."""
        keep = self.order != row
        if keep.all():
            raise DashboardError(f"map row {row} is not in the group; draw the group again")
        return attrs.evolve(self, order=self.order[keep], dropped=self.dropped + 1)

    def summary(self) -> str:
        """One line over the grid: how many, how many dropped, what is shown."""
        count = len(self)
        noun = "point" if count == 1 else "points"
        parts = [f"{count} {noun} {self.how}"]
        if self.dropped:
            parts.append(f"{self.dropped} dropped")
        if count > self.limit:
            parts.append(f"a random {self.limit} of them shown")
        return "; ".join(parts)


def group_target(choice: object) -> str | None:
    """The class a group's class choice names (None: remove the labels); DashboardError while
    no class is chosen, so that a group is never labelled with a class nobody picked."""
    if choice is None or choice in ("", CHOOSE_CLASS):
        raise DashboardError(
            "choose the group's class first (or drop points that do not belong); "
            "nothing was labelled"
        )
    return None if choice == REMOVE else str(choice)


def most_probable(probs: npt.ArrayLike, limit: int) -> IntArray:
    """The class indices to show of the probabilities `probs`: every class in order, or
    with more than `limit` classes the `limit` most probable, most probable first (ties: the
    lower index)."""
    values = np.asarray(probs, np.float64)
    order = np.arange(values.shape[0], dtype=np.int64)
    if values.shape[0] <= limit:
        return order
    return np.asarray(np.lexsort((order, -values))[:limit], np.int64)


@attrs.frozen
class Neighbour:
    """A labelled sample near another in the latent space."""

    serial: int
    class_name: str
    distance: float


@attrs.frozen(eq=False)
class SampleDetail:
    """Everything the Label page shows about one point."""

    serial: int
    row: int
    x: npt.NDArray[np.float32]
    reconstruction: npt.NDArray[np.float32] | None
    class_names: tuple[str, ...]
    class_probs: FloatArray
    tau_probs: FloatArray | None
    predicted: str
    certainty: float
    user_label: str | None
    true_label: str | None
    neighbours: tuple[Neighbour, ...]
    text: str | None = None  # the message, for a text dataset
    extras: tuple[tuple[str, str], ...] = ()  # (column, value) of its extra display columns


class LabelBoard:
    """Labelling on the map for one browser session; group actions undo as one step."""

    def __init__(
        self,
        labels: LabelService,
        pool_map: PoolMap,
        load_samples: SampleLoader,
        reconstruct: Reconstructor | None = None,
        *,
        source: str = "dashboard",
        texts: PoolTexts | None = None,
    ) -> None:
        self._labels = labels
        self.pool_map = pool_map
        if texts is not None and not np.array_equal(texts.serials, pool_map.serials):
            raise DashboardError("the texts must be row-aligned with the map's serials")
        self.texts = texts  # None for image and vector data
        self._load_samples = load_samples
        self._reconstruct = reconstruct
        self._source = source
        # The write running now ("undoing", "saving labels"), None when idle: a press that
        # comes meanwhile is refused, not queued, so that it cannot undo something its
        # author never saw (the page runs undos off the event loop, so presses do come).
        self._writing: str | None = None
        self._writing_guard = threading.Lock()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.pool_map.vocabulary.names

    def labels(self) -> LabelSet:
        """The labels as stored now."""
        return self._labels.labels()

    def counts(self) -> dict[str, int]:
        """Labels per class, every class present."""
        return self._labels.counts()

    def codes(self) -> IntArray:
        """The user's class code of every map row (-1: unlabelled)."""
        labels = self._labels.labels()
        self.pool_map = with_vocabulary(self.pool_map, labels.vocabulary)
        return user_codes(self.pool_map, labels)

    def class_for_key(self, key: str) -> str | None:
        """The class a key gives: a class named by the key, else digit i for the i-th of at
        most ten classes; None when the key names no class."""
        names = self.class_names
        if key in names:
            return key
        if len(key) == 1 and key.isdigit() and int(key) < len(names) <= 10:
            return names[int(key)]
        return None

    def press(self, serial: int | None, key: str, ctrl: bool = False) -> LabelUpdate | None:
        """A key pressed on the page: a class key labels `serial`, Delete unlabels it, Ctrl+Z
        undoes. None when the key does nothing."""
        if ctrl:
            return self.undo() if key.lower() == "z" else None
        if serial is None:
            return None
        if key in DELETE_KEYS:
            return self.remove([serial])
        class_name = self.class_for_key(key)
        if class_name is None:
            return None
        return self.assign([serial], class_name)

    def assign(self, serials: Sequence[int] | IntArray, class_name: str) -> LabelUpdate:
        """Give every serial the class `class_name` (one undo step)."""
        if class_name not in self.pool_map.vocabulary:
            self.pool_map.vocabulary.index(class_name)  # LabelError listing the classes
        return self._change(serials, class_name)

    def add_class(self, class_name: str, serials: Sequence[int] | IntArray = ()) -> LabelUpdate:
        """Add `class_name` to the vocabulary, stored with the labels, and give it to
        `serials` (one undo step; none: only add it). The model learns it at its next run."""
        chosen = np.unique(np.asarray(serials, np.int64))
        rows = self.pool_map.rows_of(chosen) if chosen.size else np.zeros(0, np.int64)
        with self._write("saving labels"):
            if chosen.size:
                after = self._labels.set(chosen.tolist(), class_name, self._source, new_class=True)
            else:
                self._labels.add_class(class_name, self._source)
                after = self._labels.labels()
        self.pool_map = with_vocabulary(self.pool_map, after.vocabulary)
        given = f"; {chosen.size} point(s) labelled with it" if chosen.size else ""
        return self._update(
            rows,
            chosen,
            after,
            f"added class {class_name!r} ({len(after.vocabulary)} classes){given}; "
            f"{len(after)} labels; train to teach the model",
        )

    def remove(self, serials: Sequence[int] | IntArray) -> LabelUpdate:
        """Remove the labels of every serial (one undo step)."""
        return self._change(serials, None)

    def _change(self, serials: Sequence[int] | IntArray, class_name: str | None) -> LabelUpdate:
        chosen = np.unique(np.asarray(serials, np.int64))
        if chosen.size == 0:
            raise DashboardError("no point is selected; click a point or draw around a group")
        rows = self.pool_map.rows_of(chosen)
        with self._write("saving labels"):
            if class_name is None:
                after = self._labels.unset(chosen.tolist(), self._source)
            else:
                after = self._labels.set(chosen.tolist(), class_name, self._source)
        what = f"as {class_name!r}" if class_name is not None else "unlabelled"
        noun = "point" if chosen.size == 1 else "points"
        detail = f" (serial {int(chosen[0])})" if chosen.size == 1 else ""
        return self._update(
            rows, chosen, after, f"{chosen.size} {noun} {what}{detail}; {len(after)} labels"
        )

    def label_group(self, review: GroupReview, choice: object) -> LabelUpdate:
        """Label the rows left in a reviewed group with the chosen class (REMOVE: unlabel
        them), as one undo step; DashboardError while no class is chosen."""
        target = group_target(choice)
        serials = self.pool_map.serials[review.rows]
        return self.remove(serials) if target is None else self.assign(serials, target)

    def undo(self) -> LabelUpdate:
        """Undo the latest batch not undone yet, whoever wrote it: a group labelled at once
        is undone at once, in one write."""
        return self.reserve_undo()()

    def reserve_undo(self) -> Callable[[], LabelUpdate]:
        """Claim the board for an undo now, and return the undo to run on any thread; a
        DashboardError while another write runs. The claim ends when the undo returns."""
        self._claim("undoing")
        return self._undo

    def _undo(self) -> LabelUpdate:
        try:
            undone = self._labels.undo(self._source)
        finally:
            self._writing = None
        labels = undone.labels
        serials = np.asarray(undone.serials(), np.int64)
        if not serials.size:
            empty = np.zeros(0, np.int64)
            return LabelUpdate(empty, empty, "nothing to undo", labels.counts())
        inside = serials[np.isin(serials, self.pool_map.serials)]
        rows = self.pool_map.rows_of(inside) if inside.size else np.zeros(0, np.int64)
        if serials.size == 1:
            label = labels.get(int(serials[0]))
            state = "unlabelled" if label is None else repr(label)
            message = f"undone: serial {int(serials[0])} is {state} again"
        else:
            message = f"undone: {serials.size} points"
        return self._update(rows, inside, labels, message)

    def _claim(self, what: str) -> None:
        with self._writing_guard:
            if self._writing is not None:
                raise DashboardError(
                    f"still {self._writing}; press again when it is done (nothing was changed)"
                )
            self._writing = what

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[None]:
        self._claim(what)
        try:
            yield
        finally:
            self._writing = None

    def _update(
        self, rows: IntArray, serials: IntArray, labels: LabelSet, message: str
    ) -> LabelUpdate:
        # Another session or the CLI may have added a class since this map was made.
        self.pool_map = with_vocabulary(self.pool_map, labels.vocabulary)
        vocabulary = self.pool_map.vocabulary
        codes = np.array(
            [
                -1 if (name := labels.get(int(s))) is None else vocabulary.index(name)
                for s in serials
            ],
            np.int64,
        )
        return LabelUpdate(rows, codes, message, labels.counts())

    def preview(self, serials: Sequence[int] | IntArray, class_name: str | None) -> GroupPreview:
        """What labelling `serials` as `class_name` (None: removing) would overwrite."""
        chosen = np.unique(np.asarray(serials, np.int64))
        self.pool_map.rows_of(chosen)
        labels = self._labels.labels()
        previous = dict.fromkeys((*self.class_names, UNLABELLED), 0)
        for serial in chosen.tolist():
            previous[labels.get(serial) or UNLABELLED] += 1
        return GroupPreview(int(chosen.size), class_name, previous)

    def code_in(self, update: LabelUpdate, serial: int) -> int | None:
        """The class code `update` gave `serial` (-1: unlabelled); None when it left the
        serial as it was."""
        changed = self.pool_map.serials[update.rows]
        at = np.flatnonzero(changed == serial)
        return int(update.codes[int(at[0])]) if at.size else None

    def load_samples(self, serials: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The inputs of pool samples `serials`, in that order (one read for a group)."""
        return self._load_samples(np.atleast_1d(np.asarray(serials, np.int64)))

    def load_sample(self, serial: int) -> npt.NDArray[np.float32]:
        """The input of one pool sample."""
        sample: npt.NDArray[np.float32] = self._load_samples(np.array([serial], np.int64))[0]
        return sample

    def sample_text(self, serial: int) -> str | None:
        """The message of one pool sample (None when the data holds no texts)."""
        if self.texts is None:
            return None
        return self.texts.text(int(self.pool_map.rows_of([serial])[0]))

    def search(self, query: str) -> IntArray:
        """Map rows whose message contains `query`, case-insensitive (none for non-text data)."""
        if self.texts is None:
            raise DashboardError("this dataset holds no texts to search; search is for text data")
        return self.texts.search(query)

    def detail(self, serial: int, neighbours: int = 5) -> SampleDetail:
        """The sample (and its message for text data), its reconstruction, both classifiers'
        probabilities and its nearest labelled neighbours in the latent space."""
        pool_map = self.pool_map
        row = int(pool_map.rows_of([serial])[0])
        x = self._load_samples(np.array([serial], np.int64))
        reconstruction = None
        if self._reconstruct is not None:
            reconstruction = self._reconstruct(x)[0]
        text: str | None = None
        extras: tuple[tuple[str, str], ...] = ()
        if self.texts is not None:
            text, extras = self.texts.text(row), self.texts.extras_of(row)
        labels = self._labels.labels()
        names = self.class_names
        truth = None
        if pool_map.true_classes is not None and pool_map.true_classes[row] >= 0:
            truth = names[int(pool_map.true_classes[row])]
        return SampleDetail(
            serial=int(serial),
            row=row,
            x=x[0],
            reconstruction=reconstruction,
            class_names=names,
            class_probs=pool_map.class_probs[row],
            tau_probs=None if pool_map.tau_probs is None else pool_map.tau_probs[row],
            predicted=names[int(pool_map.class_probs[row].argmax())],
            certainty=float(pool_map.certainty[row]),
            user_label=labels.get(int(serial)),
            true_label=truth,
            neighbours=self._neighbours(row, labels, neighbours),
            text=text,
            extras=extras,
        )

    def _neighbours(self, row: int, labels: LabelSet, count: int) -> tuple[Neighbour, ...]:
        serials = labels.serials()
        serials = serials[np.isin(serials, self.pool_map.serials)]
        serials = serials[serials != self.pool_map.serials[row]]
        if serials.size == 0 or count <= 0:
            return ()
        rows = self.pool_map.rows_of(serials)
        distances = np.linalg.norm(self.pool_map.latent[rows] - self.pool_map.latent[row], axis=1)
        nearest = np.lexsort((serials, distances))[:count]  # ties: lower serial first
        return tuple(
            Neighbour(int(serials[i]), str(labels.get(int(serials[i]))), float(distances[i]))
            for i in nearest
        )
