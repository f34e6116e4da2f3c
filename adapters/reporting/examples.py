"""Report blocks for text data: message examples per class and per mixture component.

Reconstructions and generated samples are image grids; a decoded embedding says nothing a
reader can check, so text reports leave them out and show, in their place, the messages each
class and component holds (`ssvae.domain.text_examples`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ssvae.adapters.reporting.documents import Block, Heading, Paragraph, Table
from ssvae.domain.text_examples import ExampleGroup, TextExamples

MESSAGE_CHARACTERS = 200  # longer messages are cut (with an ellipsis) to keep tables readable

NO_IMAGE_GRIDS = (
    "Text data: reconstructions and generated samples are image grids, and a decoded "
    "embedding says nothing a reader can check, so they are left out of this report; the "
    "message examples below show instead what each class and mixture component holds."
)


def _cut(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_CHARACTERS else line[: MESSAGE_CHARACTERS - 1] + "…"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _group_cell(group: ExampleGroup) -> str:
    """Who the group is: its name, how many messages it takes, their main true class."""
    cell = f"{group.name}: {group.members} ({_pct(group.share)})"
    if group.majority is not None and group.purity is not None:
        cell += f", {_pct(group.purity)} {group.majority}"
    return cell


def examples_table(groups: Sequence[ExampleGroup], noun: str, what: str, score: str) -> Table:
    """One row per example, the group (a `noun`) named on its first row; a group without
    messages says that no test message is `what` it."""
    rows: list[tuple[str, ...]] = []
    for group in groups:
        if not group.examples:
            rows.append((_group_cell(group), "—", "—", f"no test message is {what} it"))
            continue
        for rank, example in enumerate(group.examples):
            rows.append(
                (
                    _group_cell(group) if rank == 0 else "",
                    f"{example.score:.3f}",
                    example.true_class if example.true_class is not None else "—",
                    _cut(example.text),
                )
            )
    header = (f"{noun}: messages (share), main true class", score, "true class", "message")
    return Table(header, tuple(rows), literal=(2, 3))


def example_blocks(examples: TextExamples, title: str, level: int = 2) -> list[Block]:
    """The examples of one model: a table per class and, for a mixture, per component."""
    n = examples.per_group
    blocks: list[Block] = [
        Heading(title, level),
        Paragraph(
            f"From {examples.source}. Per class: the {n} messages predicted as the class with the "
            "highest q(y|x). Per mixture component: the "
            f"{n} messages with the highest responsibility r_k(x) among those whose most "
            "responsible component it is. Each group gives how many messages it takes (and "
            "their share) and the most common true class among them."
        ),
        Heading("Per class", level + 1),
        examples_table(examples.per_class, "class", "predicted as", "q(y|x)"),
    ]
    if examples.per_component:
        blocks += [
            Heading("Per mixture component", level + 1),
            examples_table(
                examples.per_component, "component", "most responsibly assigned to", "r_k(x)"
            ),
        ]
    return blocks
