"""Where tests find reference material that the repository does not ship.

The pretrained sentence encoder (90 MB) and its reference vectors live in the workplace's
`shared/models/`, beside the checkout (CI puts a copy of shared/ beside its clone). Looked up
in order: $SSVAE_SHARED_DIR, `<repository>/../shared`, and for a local clone (such as the
fresh-clone check) `<origin>/../shared`. A missing folder fails loudly, never skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGHUB_MESSAGES = ROOT / "data" / "loghub" / "messages.csv"


def _origin_checkout() -> Path | None:
    try:
        url = subprocess.run(
            ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except OSError:
        return None
    return Path(url) if url and Path(url).is_dir() else None


def shared_dir() -> Path:
    """The shared/ folder with the reference model; AssertionError saying how to provide it."""
    candidates = []
    if os.environ.get("SSVAE_SHARED_DIR"):
        candidates.append(Path(os.environ["SSVAE_SHARED_DIR"]))
    candidates.append(ROOT.parent / "shared")
    origin = _origin_checkout()
    if origin is not None:
        candidates.append(origin.resolve().parent / "shared")
    for candidate in candidates:
        if (candidate / "models" / "all-MiniLM-L6-v2").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise AssertionError(
        f"reference model folder not found (looked in {tried}); set SSVAE_SHARED_DIR to a "
        "folder holding models/all-MiniLM-L6-v2 and models/reference-embeddings.npz"
    )
