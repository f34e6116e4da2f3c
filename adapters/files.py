"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

A crash or Ctrl-C at any moment leaves either the old file or the new one, never half of one.
The new file keeps the permissions of the one it replaces (the temporary file is created
0600, which would otherwise take a shared 664 label file away from its group).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only when the block finishes without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(staged: Path, path: Path) -> None:
    """Move `staged`, a file written whole by other means (a Parquet writer), to `path` as
    `atomic_writer` does: its bytes on disk first, then the rename, then the rename itself."""
    with staged.open("rb+") as handle:
        os.fsync(handle.fileno())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, path)
    _fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


MAX_RUNS_PER_SECOND = 10_000


def create_timestamped_directory(root: Path, stamp: str, what: str, option: str) -> Path:
    """`root/<stamp>`, or `<stamp>-2`, `-3`... when taken.

    mkdir is atomic, so two runs starting in the same second, even in two processes, never
    share a folder. `what` and `option` name the folder and the flag that moves it in errors.
    """
    from ssvae.domain.errors import SsvaeError

    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, MAX_RUNS_PER_SECOND):
            candidate = root / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                os.mkdir(candidate)
            except FileExistsError:
                continue
            return candidate
    except OSError as error:
        raise SsvaeError(
            f"cannot create the {what} folder under {root}: {error.strerror or error}; "
            f"choose a writable folder with {option}"
        ) from None
    raise SsvaeError(f"too many {what}s started in one second under {root}; retry")
