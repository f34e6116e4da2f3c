"""The Queue page's view model: the next k samples a policy proposes, labelled one by one.

The batch is chosen by the active-learning functions the CLI's `ssvae query` uses
(`ssvae.application.query.choose`), on the predictions the map already holds, so a refresh
costs a selection, not a pass of the model over the pool.

The policy is asked for OVERFETCH times more candidates than the strip shows, and the
near-duplicates among them are left out (`distinct`): an uncertainty policy ranks copies of
one log template, or four 9s written alike, side by side, and a label on one of them teaches
the model what a label on the others would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

from ssvae.application.pool_scan import PoolOutputs
from ssvae.application.query import PREDICTION_POLICIES, QueryRow, batch_rows, choose
from ssvae.domain.policies import REGISTRY
from ssvae.entrypoints.dashboard.viewmodels.label import LabelBoard, LabelUpdate
from ssvae.entrypoints.dashboard.viewmodels.map import DashboardError, PoolMap

NEXT_KEYS = ("ArrowRight", "ArrowDown", " ")
PREVIOUS_KEYS = ("ArrowLeft", "ArrowUp")
COLD_START = "cold_start"
TRAINED_DEFAULT = "margin"
OVERFETCH = 4  # candidates asked of the policy per sample shown; near-duplicates are left out
# Policies that choose their batch jointly, spread over the pool: their k picks are apart
# already, and the first k of a larger batch of theirs are not the batch they would choose.
JOINT_POLICIES = frozenset({"kcenter", COLD_START, "typiclust", "typiclust_margin"})
# Two inputs at least this cosine-similar are near-duplicates (benchmarks/queue_duplicates.py:
# on MNIST and Loghub nearly every pair this close holds one class, while still few samples
# have such a twin, so the strip keeps its ranking and loses only copies).
DUPLICATE_COSINE = 0.93
# Runs of digits, hexadecimal ids and the names of days and months in timestamps: a log
# template's messages differ only in these.
_VARIABLE = re.compile(
    r"-?(?:0x)?[0-9a-f]*[0-9][0-9a-f]*"
    r"|\b(?:mon|tue|wed|thu|fri|sat|sun|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\b",
    re.IGNORECASE,
)

# What each policy's score measures, one line each: the strip shows it above the samples.
SCORE_MEANINGS = {
    "random": "a uniform random draw: the score measures nothing about the sample",
    "least_confidence": "1 - the probability of the predicted class: high when the model "
    "doubts its best guess",
    "margin": "1 - the gap between the two likeliest classes' probabilities: near 1, the "
    "model cannot tell the predicted class from the runner-up",
    "entropy": "the entropy of the class probabilities: high when they are spread over many "
    "classes",
    "tau_ood": "how little the sample's mixture components are tied to any labelled class",
    "novelty": "how unlike every labelled sample the input and its encoding are",
    "bald": "the mutual information between the class and the model's latent draws",
    "elbo": "-ELBO: how badly the model explains the input",
    "kcenter": "the latent distance to the nearest labelled or already proposed sample: "
    "picks spread over the pool",
    "diverse_margin": "margin (1 - the gap between the two likeliest classes), picked spread "
    "out among the most uncertain",
    "diverse_entropy": "the entropy of the class probabilities, picked spread out among the "
    "most uncertain",
    COLD_START: "how typical the sample is of its region (mixture component) of the latent, "
    "then the distance to the picks before it: needs no trained classifier",
    "typiclust": "how dense the sample's neighbourhood of encodings is, in the cluster the "
    "labels cover least",
    "typiclust_margin": "typicality (as typiclust) while a class has fewer than 3 labels, then "
    "margin",
}


def masked(text: str) -> str:
    """`text` with its numbers, hexadecimal ids and day and month names replaced and its
    whitespace and case folded: two messages of one log template mask to the same string."""
    return " ".join(_VARIABLE.sub("#", text).casefold().split())


def distinct(
    count: int,
    candidates: int,
    vectors: npt.ArrayLike | None = None,
    texts: Sequence[str] | None = None,
    threshold: float = DUPLICATE_COSINE,
) -> list[int]:
    """Indices of up to `count` of `candidates` (given best first) none of which is a
    near-duplicate of one kept before it: the same text once masked (`masked`), or a cosine
    similarity of their vectors (one row per candidate) of at least `threshold`."""
    kept: list[int] = []
    seen: set[str] = set()
    units = None
    if vectors is not None:
        matrix = np.asarray(vectors, np.float64)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        units = matrix / np.where(norms > 0, norms, 1.0)
    for index in range(candidates):
        if len(kept) == count:
            break
        if texts is not None:
            key = masked(texts[index])
            if key in seen:
                continue
        if units is not None and kept and float((units[kept] @ units[index]).max()) >= threshold:
            continue
        kept.append(index)
        if texts is not None:
            seen.add(key)
    return kept


def key_legend(board: LabelBoard) -> tuple[tuple[str, str], ...]:
    """(key, class) for every class a key labels whose name is not that key (named classes
    take digit keys by position): empty when every key is its class's name."""
    pairs = []
    for index, name in enumerate(board.class_names):
        key = name if len(name) == 1 and board.class_for_key(name) == name else str(index)
        if board.class_for_key(key) == name and key != name:
            pairs.append((key, name))
    return tuple(pairs)


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
    """One proposed sample, with the label it holds now (None: not yet labelled) and the
    class the model ranks second, with its probability: why the sample is uncertain."""

    row: QueryRow
    label: str | None
    runner_up: str | None = None  # None with a single class
    runner_up_probability: float = 0.0


class QueueBoard:
    """The queue of one browser session: a batch, a highlighted item, keys that label it."""

    # bald and elbo need a pass of the model over the pool, which the queue does not hold.
    policies: tuple[str, ...] = PREDICTION_POLICIES

    def __init__(self, board: LabelBoard, *, seed: int = 0, trained: bool = True) -> None:
        self.board = board
        self._seed = seed
        self.trained = trained
        self.policy = self.suggested_policy()
        self.k = 12
        self.rows: tuple[QueryRow, ...] = ()
        self.position = 0
        self.left_out = 0  # near-duplicates left out of the last batch
        self.asked = False  # whether the policy was asked since the predictions changed

    def suggested_policy(self) -> str:
        """cold_start before any training (an untrained classifier's probabilities are
        noise: margin would score every sample about 1), margin after."""
        wanted = TRAINED_DEFAULT if self.trained else COLD_START
        return wanted if wanted in self.policies else self.policies[0]

    def new_predictions(self, board: LabelBoard, trained: bool = True) -> None:
        """A training run's predictions: the batch is asked again, and a cold start gives
        way to margin now that the classifier has learnt from labels."""
        was_cold = self.policy == COLD_START and not self.trained
        self.board, self.trained = board, trained
        if was_cold and trained:
            self.policy = self.suggested_policy()
        self.asked = False

    def untrained_warning(self) -> str:
        """A line when the policy ranks by class probabilities the model has not learnt."""
        if self.trained or not {"probs", "ood"} & set(REGISTRY[self.policy].needs):
            return ""
        return (
            f"the model is not trained yet: its class probabilities are noise, so "
            f"{self.policy} ranks noise; {COLD_START} picks typical samples of each region "
            "instead, or train first"
        )

    def meaning(self) -> str:
        """What the policy's score measures, one line."""
        return f"{self.policy}: {SCORE_MEANINGS.get(self.policy, 'its score ranks the pool')}"

    @property
    def finished(self) -> bool:
        """Whether every proposed sample holds a label (or none was proposed)."""
        return all(item.label is not None for item in self.items())

    def refresh(self, policy: str | None = None, k: int | None = None) -> tuple[QueueItem, ...]:
        """Rerun the policy on the current labels; the first item is highlighted."""
        policy = self.policy if policy is None else policy
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise DashboardError(f"k = {k!r} is invalid: ask for at least 1 sample")
        pool_map = self.board.pool_map
        outputs = pool_outputs(pool_map)
        labels = self.board.labels()
        selection = choose(
            outputs,
            labels.serials(),
            policy,
            k if policy in JOINT_POLICIES else k * OVERFETCH,
            self._seed,
            labelled_classes=labels.class_indices(),
        )
        rows = pool_map.rows_of(selection.serials) if len(selection.serials) else selection.serials
        texts = None if self.board.texts is None else self.board.texts.texts_of(rows)
        vectors = pool_map.inputs if pool_map.inputs is not None else pool_map.encodings
        kept = (
            list(range(len(rows)))
            if policy in JOINT_POLICIES
            else distinct(k, len(rows), None if vectors is None else vectors[rows], texts)
        )
        self.left_out = kept[-1] + 1 - len(kept) if kept else 0  # skipped before the last
        shown = attrs.evolve(
            selection,
            serials=np.asarray(selection.serials)[kept],
            scores=np.asarray(selection.scores)[kept],
        )
        shown_texts = None if texts is None else [texts[i] for i in kept]
        self.rows = batch_rows(outputs, shown, pool_map.vocabulary, shown_texts)
        self.policy, self.k, self.position, self.asked = policy, k, 0, True
        return self.items()

    def items(self) -> tuple[QueueItem, ...]:
        """The batch with each sample's current label and the model's runner-up class."""
        labels = self.board.labels()
        pool_map = self.board.pool_map
        if not self.rows:
            return ()
        probs = pool_map.class_probs[pool_map.rows_of([row.serial for row in self.rows])]
        names = pool_map.vocabulary.names
        items = []
        for row, p in zip(self.rows, probs, strict=True):
            runner_up, probability = None, 0.0
            if p.size > 1:
                second = int(np.argsort(-p, kind="stable")[1])
                runner_up, probability = names[second], float(p[second])
            items.append(QueueItem(row, labels.get(row.serial), runner_up, probability))
        return tuple(items)

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
