"""Reading the label store's files, and the one-line messages for what goes wrong."""

from __future__ import annotations

from pathlib import Path

from ssvae.domain.errors import LabelError


def read_bytes(path: Path) -> bytes | None:
    """The content of `path`; None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise read_error(path, error) from error


def read_error(path: Path, error: OSError) -> LabelError:
    return LabelError(
        f"cannot read {path}: {reason(path, error)}; check that it is a readable file"
    )


def reason(path: Path, error: OSError) -> str:
    """Why `error` happened at `path`, in words: a folder on the way that is a file is named
    (the OS says only "Not a directory" or "File exists")."""
    for parent in path.parents:
        if parent.is_file():
            return f"{parent} is a file, not a folder"
    return str(error.strerror or error)


def write_error(path: Path, error: OSError) -> LabelError:
    return LabelError(
        f"could not write the labels {path}: {reason(path, error)}; the labels are "
        "unchanged: free disk space or fix the folder's permissions, then retry"
    )
