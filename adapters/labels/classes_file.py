"""The classes a user added to a label store, kept beside it in `<labels>.classes.json`.

A dataset names its own classes; a person labelling it can meet one it does not have (a new
system sending messages). The store's vocabulary is then the dataset's classes followed by
the added ones, in the order they were added, so every class keeps its index and a trained
model's outputs keep their meaning. The file lists the whole vocabulary:

    {"format_version": 1, "classes": ["0", "1", ..., "NewSystem"]}

No file means no class was added: label stores written before classes could be added read
as they always did. The file is replaced atomically, and before any label that uses a new
class is written (see `_store.py`), so a crash never leaves a label whose class it lacks.
"""

from __future__ import annotations

import json
from pathlib import Path

from ssvae.adapters.files import atomic_write_bytes
from ssvae.adapters.json_limits import load_json_bounded
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary

FORMAT_VERSION = 1
SUFFIX = ".classes.json"


def classes_path(labels_path: Path) -> Path:
    """Where the added classes of the label store at `labels_path` live."""
    return labels_path.with_name(labels_path.name + SUFFIX)


def read_vocabulary(path: Path, base: ClassVocabulary) -> ClassVocabulary:
    """The vocabulary stored in `path`, or `base` (the dataset's) when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return base
    except OSError as error:
        raise LabelError(
            f"cannot read {path}: {error.strerror or error}; check that it is a readable file"
        ) from None
    try:
        fields = load_json_bounded(data)
        if not isinstance(fields, dict) or fields.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"expected an object with format_version {FORMAT_VERSION}")
        names = fields.get("classes")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("'classes' must be a list of class names")
        vocabulary = ClassVocabulary(names)
    except (ValueError, UnicodeDecodeError) as error:  # JSON, UTF-8 and LabelError alike
        raise LabelError(
            f"{path} is damaged ({error}); restore it: it lists the classes added to the "
            f"labels {path.name.removesuffix(SUFFIX)}"
        ) from None
    if not vocabulary.extends(base):
        raise LabelError(
            f"{path} lists the classes {_shown(vocabulary)}, which do not begin with the "
            f"dataset's ({_shown(base)}); open these labels with the dataset they were made for"
        )
    return vocabulary


def write_vocabulary(path: Path, vocabulary: ClassVocabulary) -> None:
    """Replace `path` with `vocabulary` atomically (OSError when the disk refuses)."""
    document = {"format_version": FORMAT_VERSION, "classes": list(vocabulary.names)}
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def _shown(vocabulary: ClassVocabulary, limit: int = 12) -> str:
    names = vocabulary.names
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
