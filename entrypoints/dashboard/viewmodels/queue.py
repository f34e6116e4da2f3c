"""The Queue page's view model: the next k samples a policy proposes, labelled one by one.

The batch is chosen by the active-learning functions the CLI's `ssvae query` uses
(`ssvae.application.query.choose`), on the predictions the map already holds, so a refresh
costs a selection, not a pass of the model over the pool.
"""

from __future__ import annotations

import attrs
import numpy as np

from ssvae.application.query import (
    PREDICTION_POLICIES,
    PoolOutputs,
    QueryRow,
    batch_rows,
    choose,
)
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard, LabelUpdate
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError, PoolMap

NEXT_KEYS = ("ArrowRight", "ArrowDown", " ")
PREVIOUS_KEYS = ("ArrowLeft", "ArrowUp")


def pool_outputs(pool_map: PoolMap) -> PoolOutputs:
    """The map's predictions in the form the query functions take."""
    responsibilities = pool_map.responsibilities
    return PoolOutputs(
        serials=pool_map.serials,
        probs=np.asarray(pool_map.class_probs, np.float32),
        features=np.asarray(pool_map.latent, np.float32),
        encodings=pool_map.encodings,
        ood=None if pool_map.ood is None else np.asarray(pool_map.ood, np.float32),
        responsibilities=None
        if responsibilities is None
        else np.asarray(responsibilities, np.float32),
        inputs=pool_map.inputs,
    )


@attrs.frozen
class QueueItem:
    """One proposed sample, with the label it holds now (None: not yet labelled)."""

    row: QueryRow
    label: str | None


class QueueBoard:
    """The queue of one browser session: a batch, a highlighted item, keys that label it."""

    # bald and elbo need a pass of the model over the pool, which the queue does not hold.
    policies: tuple[str, ...] = PREDICTION_POLICIES

    def __init__(self, board: LabelBoard, *, seed: int = 0) -> None:
        self.board = board
        self._seed = seed
        self.policy = "margin" if "margin" in self.policies else self.policies[0]
        self.k = 12
        self.rows: tuple[QueryRow, ...] = ()
        self.position = 0

    def refresh(self, policy: str | None = None, k: int | None = None) -> tuple[QueueItem, ...]:
        """Rerun the policy on the current labels; the first item is highlighted."""
        policy = self.policy if policy is None else policy
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise DashboardError(f"k = {k!r} is invalid: ask for at least 1 sample")
        outputs = pool_outputs(self.board.pool_map)
        labels = self.board.labels()
        selection = choose(
            outputs,
            labels.serials(),
            policy,
            k,
            self._seed,
            labelled_classes=labels.class_indices(),
        )
        texts = None
        if self.board.texts is not None:
            rows = self.board.pool_map.rows_of(selection.serials)
            texts = self.board.texts.texts_of(rows)
        self.rows = batch_rows(outputs, selection, self.board.pool_map.vocabulary, texts)
        self.policy, self.k, self.position = policy, k, 0
        return self.items()

    def items(self) -> tuple[QueueItem, ...]:
        """The batch with each sample's current label."""
        labels = self.board.labels()
        return tuple(QueueItem(row, labels.get(row.serial)) for row in self.rows)

    @property
    def highlighted(self) -> int | None:
        """The serial the keyboard labels now; None for an empty queue."""
        if not self.rows:
            return None
        return self.rows[self.position].serial

    def move(self, step: int) -> None:
        """Highlight the item `step` places further (clamped to the strip)."""
        if self.rows:
            self.position = int(np.clip(self.position + step, 0, len(self.rows) - 1))

    def select(self, position: int) -> None:
        """Highlight the item at `position`."""
        if not 0 <= position < len(self.rows):
            raise DashboardError(f"the queue has no item {position}; refresh the queue")
        self.position = position

    def assign(self, class_name: str) -> LabelUpdate:
        """Label the highlighted sample as `class_name` and move to the next (the class
        picker: vocabularies too large for keys)."""
        serial = self.highlighted
        if serial is None:
            raise DashboardError("the queue is empty: refresh the queue first")
        update = self.board.assign([serial], class_name)
        self.move(1)
        return update

    def press(self, key: str, ctrl: bool = False) -> LabelUpdate | None:
        """Arrows move; a class key labels the highlighted sample and moves to the next;
        Delete and Ctrl+Z work as on the Label page."""
        if not ctrl and key in NEXT_KEYS:
            self.move(1)
            return None
        if not ctrl and key in PREVIOUS_KEYS:
            self.move(-1)
            return None
        update = self.board.press(self.highlighted, key, ctrl)
        if update is not None and not ctrl and self.board.class_for_key(key) is not None:
            self.move(1)
        return update
