"""The built-in Loghub sample: a file of log messages shipped in the repository's data/loghub/.

Two tasks read the same file: `system` (which of 10 systems wrote a message) and `event`
(which template a message follows, kept where a template has at least 20 messages, since a
rarer one gives a classifier too little to learn from).
"""

from __future__ import annotations

from pathlib import Path

import attrs

import ssvae.adapters
from ssvae.domain.errors import DataError
from ssvae.domain.text import LOGHUB_TASKS

ID_COLUMN = "id"
TEXT_COLUMN = "text"


@attrs.frozen
class LoghubSample:
    """Where a Loghub task's messages are and how to read them."""

    path: Path
    name: str
    label_column: str
    min_class_size: int


def loghub_file(directory: Path | str | None = None) -> Path:
    """`messages.csv` in `directory`, or the copy shipped in the repository's data/loghub/."""
    if directory is not None:
        return Path(directory).expanduser() / "messages.csv"
    return Path(ssvae.adapters.__file__).resolve().parents[1] / "data" / "loghub" / "messages.csv"


def loghub_sample(task: str, directory: Path | str | None = None) -> LoghubSample:
    """The file, name, label column and minimum class size of `task`; DataError if unknown."""
    if task not in LOGHUB_TASKS:
        raise DataError(f"loghub task {task!r} is unknown; use one of {', '.join(LOGHUB_TASKS)}")
    chosen = LOGHUB_TASKS[task]
    return LoghubSample(
        loghub_file(directory), f"loghub-{task}", chosen.label_column, chosen.min_class_size
    )
