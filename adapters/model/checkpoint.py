"""Checkpoints: parameters, optimizer state, step, PRNG state, spec and data fingerprint.

Layout of a checkpoint directory:
- `arrays.npz`: every leaf of (parameters, optimizer state) in tree order, the root PRNG key
  and the component-to-label map tau;
- `meta.json`: format version, the `ModelSpec` fields, step, epoch, fingerprint and history.

Why npz + JSON: orbax-checkpoint, the ecosystem standard, is not installed here; npz and JSON
need only numpy and the standard library, are readable without JAX, and the tree structure
is rebuilt from the spec, so nothing executable (no pickle) is ever loaded.

Atomicity: both files are written into a fresh temporary directory beside the target,
flushed, then the directory is renamed into place (the previous checkpoint is moved aside
first and deleted last). A crash leaves the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import attrs
import jax
import numpy as np

from ssvae.domain.errors import SsvaeError
from ssvae.domain.spec import ModelSpec

FORMAT_VERSION = 1
ARRAYS = "arrays.npz"
META = "meta.json"


class CheckpointError(SsvaeError):
    """A missing, incomplete or incompatible checkpoint."""


@attrs.frozen(eq=False)
class CheckpointContent:
    """What a checkpoint holds, as plain values."""

    spec: ModelSpec
    leaves: list[np.ndarray]  # parameters then optimizer state, in tree order
    key: np.ndarray
    step: int
    epoch: int
    tau: np.ndarray | None
    meta: dict[str, Any]


def spec_to_json(spec: ModelSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.field_names()}


def spec_from_json(fields: dict[str, Any]) -> ModelSpec:
    return ModelSpec(**fields)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def save_checkpoint(
    directory: Path,
    *,
    spec: ModelSpec,
    tree: Any,
    key: Any,
    step: int,
    epoch: int,
    tau: np.ndarray | None,
    extra: dict[str, Any],
) -> None:
    """Write the checkpoint into `directory` atomically (replacing any previous one)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(jax.device_get(tree))]
    arrays = {f"leaf_{i:05d}": leaf for i, leaf in enumerate(leaves)}
    arrays["prng_key"] = np.asarray(jax.device_get(key))
    if tau is not None:
        arrays["tau"] = np.asarray(tau, np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # uncompressed: floats barely compress
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": spec_to_json(spec),
        "step": step,
        "epoch": epoch,
        "num_leaves": len(leaves),
        **extra,
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        _write_file(staging / ARRAYS, buffer.getvalue())
        _write_file(staging / META, json.dumps(meta, indent=1).encode("utf-8"))
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
            os.replace(directory, old / "previous")
            os.replace(staging, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_checkpoint(directory: Path) -> CheckpointContent:
    """Read a checkpoint; CheckpointError with the reason when it cannot be used."""
    directory = Path(directory)
    meta_path, arrays_path = directory / META, directory / ARRAYS
    if not meta_path.is_file() or not arrays_path.is_file():
        raise CheckpointError(
            f"{directory}: no model checkpoint here (expected {META} and {ARRAYS}); "
            "train and save a model first"
        )
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata ({error})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: checkpoint format {meta.get('format_version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION}); retrain the model"
        )
    spec = spec_from_json(meta["spec"])
    try:
        with np.load(arrays_path, allow_pickle=False) as stored:
            leaves = [stored[f"leaf_{i:05d}"] for i in range(int(meta["num_leaves"]))]
            key = stored["prng_key"]
            tau = stored.get("tau", None)
    except (OSError, KeyError, ValueError) as error:
        raise CheckpointError(f"{arrays_path}: corrupt checkpoint arrays ({error})") from None
    return CheckpointContent(
        spec=spec,
        leaves=leaves,
        key=key,
        step=int(meta["step"]),
        epoch=int(meta["epoch"]),
        tau=tau,
        meta=meta,
    )


def restore_tree(template: Any, leaves: list[np.ndarray], directory: Path) -> Any:
    """`leaves` in the structure of `template`; CheckpointError if they do not fit."""
    template_leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(template_leaves) != len(leaves):
        raise CheckpointError(
            f"{directory}: checkpoint has {len(leaves)} arrays, the model needs "
            f"{len(template_leaves)}; it was written by an incompatible version"
        )
    for i, (want, got) in enumerate(zip(template_leaves, leaves, strict=True)):
        if tuple(np.shape(want)) != tuple(got.shape):
            raise CheckpointError(
                f"{directory}: array {i} has shape {got.shape}, the model needs "
                f"{tuple(np.shape(want))}; the checkpoint does not match its spec"
            )
    return jax.tree_util.tree_unflatten(
        treedef,
        [
            np.asarray(g, dtype=np.asarray(w).dtype)
            for w, g in zip(template_leaves, leaves, strict=True)
        ],
    )
