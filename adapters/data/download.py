"""Verified downloads with the standard library only.

A download streams into a temporary file beside its destination, is checked against a known
checksum and only then renamed into place: a failed, corrupt or interrupted download leaves
nothing behind (no partial file, no temporary file, no folder it had to create).
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ssvae.adapters.files import atomic_writer
from ssvae.domain.errors import DataError

_CHUNK = 1 << 20
_USER_AGENT = "ssvae-al"


class _AttemptFailed(Exception):
    """One mirror did not deliver the expected bytes; the next one is tried."""


def download_verified(
    urls: str | Sequence[str],
    destination: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch `destination` from the first of `urls` that serves bytes with the given checksum."""
    candidates = [urls] if isinstance(urls, str) else list(urls)
    algorithm, expected = _checksum(destination, md5, sha256)
    if not candidates:
        raise DataError(f"no download address is configured for {destination.name}")
    created = _missing_folders(destination.parent)
    failures: list[str] = []
    for url in candidates:
        try:
            _fetch(url, destination, algorithm, expected, timeout)
        except _AttemptFailed as failure:
            failures.append(f"{url}: {failure}")
            continue
        return destination
    _remove_empty(created)
    raise DataError(
        f"could not download {destination.name} ({'; '.join(failures)}); check the network "
        f"connection or put the file in {destination.parent} yourself"
    )


def _checksum(destination: Path, md5: str | None, sha256: str | None) -> tuple[str, str]:
    if sha256:
        return "sha256", sha256.lower()
    if md5:
        return "md5", md5.lower()
    raise DataError(
        f"no checksum is known for {destination.name}, so a download cannot be verified; "
        "give its md5 or sha256"
    )


def _fetch(url: str, destination: Path, algorithm: str, expected: str, timeout: float) -> None:
    """Stream `url` into `destination` through a temporary file; _AttemptFailed on any failure."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with (
            urllib.request.urlopen(request, timeout=timeout) as response,
            atomic_writer(destination) as handle,
        ):
            announced = response.headers.get("Content-Length")
            received = 0
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
                received += len(chunk)
            if announced is not None and announced.isdigit() and received != int(announced):
                # Raising inside the block makes atomic_writer delete the temporary file.
                raise _AttemptFailed(f"incomplete: {received} of {announced} bytes")
            if digest.hexdigest() != expected:
                raise _AttemptFailed(
                    f"{algorithm} checksum mismatch: got {digest.hexdigest()}, "
                    f"expected {expected} (corrupt or altered file)"
                )
    except urllib.error.HTTPError as error:
        raise _AttemptFailed(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _AttemptFailed(f"unreachable ({error.reason})") from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise _AttemptFailed(f"{type(error).__name__}: {error}") from None


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders a failed download created, deepest first, if they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
