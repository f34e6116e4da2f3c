"""Message examples per class and per mixture component: what a model holds, in words.

For text data a decoded embedding shows nothing a person can read, so reports and the
dashboard show, for each class, the messages the classifier is surest belong to it and, for
each mixture component, the messages it is most responsible for, with their true classes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
EXAMPLES_PER_GROUP = 5
# Templated logs repeat messages word for word, and equal texts score alike: the top rows are
# fetched this many times over so that the examples can be `count` different texts.
CANDIDATES_PER_EXAMPLE = 4
TextLookup = Callable[[IntArray], Sequence[str]]  # serials -> their messages, in that order


@attrs.frozen
class MessageExample:
    """One message shown for a class or component, with the score that ranked it."""

    serial: int
    text: str
    score: float  # q(y=c|x) for a class, r_k(x) for a component
    true_class: str | None  # None where the data has no truth for it


@attrs.frozen
class ExampleGroup:
    """A class or component: how many messages it takes, their main true class, examples."""

    name: str
    members: int  # messages predicted as the class / whose most responsible component it is
    share: float  # members / all messages
    majority: str | None  # the most common true class among the members (None: no truth)
    purity: float | None  # the share of members whose true class is `majority`
    examples: tuple[MessageExample, ...]


@attrs.frozen
class TextExamples:
    """Examples of every class and component of one model, and which messages they came from."""

    per_class: tuple[ExampleGroup, ...]
    per_component: tuple[ExampleGroup, ...]  # empty for a single-component prior
    source: str  # e.g. "the 4,000 test messages, final model of margin, seed 0"
    per_group: int = EXAMPLES_PER_GROUP


def top_rows(members: IntArray, scores: npt.ArrayLike, count: int) -> IntArray:
    """Up to `count` of `members` with the highest `scores`; ties go to the lower row."""
    if members.size == 0 or count <= 0:
        return np.zeros(0, np.int64)
    values = np.asarray(scores, np.float64)[members]
    order = np.lexsort((members, -values))
    return np.asarray(members[order[:count]], np.int64)


def _group(
    name: str,
    members: IntArray,
    scores: FloatArray,
    total: int,
    true_classes: IntArray | None,
    class_names: tuple[str, ...],
    serials: IntArray,
    lookup: dict[int, str],
    count: int,
) -> ExampleGroup:
    majority: str | None = None
    purity: float | None = None
    if true_classes is not None:
        known = true_classes[members]
        known = known[known >= 0]
        if known.size:
            top, hits = Counter(known.tolist()).most_common(1)[0]
            majority, purity = class_names[int(top)], hits / known.size

    def truth(row: int) -> str | None:
        if true_classes is None or true_classes[row] < 0:
            return None
        return class_names[int(true_classes[row])]

    examples: list[MessageExample] = []
    shown: set[str] = set()
    for row in top_rows(members, scores, count * CANDIDATES_PER_EXAMPLE).tolist():
        text = lookup[int(serials[row])]
        if text in shown:
            continue
        shown.add(text)
        examples.append(
            MessageExample(
                serial=int(serials[row]),
                text=text,
                score=float(scores[row]),
                true_class=truth(int(row)),
            )
        )
        if len(examples) == count:
            break
    return ExampleGroup(
        name=name,
        members=int(members.size),
        share=members.size / total if total else 0.0,
        majority=majority,
        purity=purity,
        examples=tuple(examples),
    )


def text_examples(
    serials: npt.ArrayLike,
    class_probs: npt.ArrayLike,
    responsibilities: npt.ArrayLike | None,
    true_classes: npt.ArrayLike | None,
    class_names: Sequence[str],
    texts: TextLookup,
    *,
    source: str,
    count: int = EXAMPLES_PER_GROUP,
) -> TextExamples:
    """For each class, the `count` messages predicted as it with the highest q(y|x); for each
    mixture component (more than one), the `count` messages it is most responsible for among
    those it is the most responsible component of. A text repeated word for word is shown once
    (the next best different ones fill in, from the top `count` x `CANDIDATES_PER_EXAMPLE`).
    Messages are looked up once, together."""
    serial_array = np.asarray(serials, np.int64)
    probs = np.asarray(class_probs, np.float64)
    names = tuple(class_names)
    truth = None if true_classes is None else np.asarray(true_classes, np.int64)
    total = int(serial_array.size)
    predicted = probs.argmax(axis=1) if total else np.zeros(0, np.int64)
    class_members = [np.flatnonzero(predicted == c) for c in range(len(names))]
    fetch = count * CANDIDATES_PER_EXAMPLE
    chosen = [top_rows(m, probs[:, c], fetch) for c, m in enumerate(class_members)]
    component_members: list[IntArray] = []
    resp = None if responsibilities is None else np.asarray(responsibilities, np.float64)
    if resp is not None and resp.shape[1] > 1:
        best = resp.argmax(axis=1) if total else np.zeros(0, np.int64)
        component_members = [np.flatnonzero(best == k) for k in range(resp.shape[1])]
        chosen += [top_rows(m, resp[:, k], fetch) for k, m in enumerate(component_members)]
    wanted = np.unique(np.concatenate([np.zeros(0, np.int64), *chosen]))
    found = list(texts(serial_array[wanted])) if wanted.size else []
    lookup = {int(s): str(t) for s, t in zip(serial_array[wanted], found, strict=True)}
    per_class = tuple(
        _group(
            name, class_members[c], probs[:, c], total, truth, names, serial_array, lookup, count
        )
        for c, name in enumerate(names)
    )
    per_component: tuple[ExampleGroup, ...] = ()
    if resp is not None and component_members:
        per_component = tuple(
            _group(
                f"component {k}",
                members,
                resp[:, k],
                total,
                truth,
                names,
                serial_array,
                lookup,
                count,
            )
            for k, members in enumerate(component_members)
        )
    return TextExamples(per_class, per_component, source, count)
