"""Checkpoints: parameters, optimizer state, step, PRNG state, spec and data fingerprint.

Layout of a checkpoint directory:
- `arrays.npz`: every leaf of (parameters, optimizer state) in tree order, the root PRNG key
  and the component-to-label map tau;
- `meta.json`: format version, the `ModelSpec` fields, step, epoch, fingerprint and history.

Why npz + JSON: orbax-checkpoint, the ecosystem standard, is not installed here; npz and JSON
need only numpy and the standard library, are readable without JAX, and the tree structure
is rebuilt from the spec, so nothing executable (no pickle) is ever loaded.

Atomicity: both files are written into a fresh temporary directory beside the target
(`.NAME.tmp-*`) and flushed; the previous checkpoint is moved aside (`.NAME.old-*/previous`),
the new directory renamed into place, and the moved-aside copy deleted last. Two renames
cannot be one atomic step, so a crash between them leaves no directory at the target, only
the two complete copies beside it. Loading therefore falls back, when the target is missing,
to the newest complete copy beside it; it only reads, so a reader never races a writer's
renames. The next save deletes every leftover copy once its own checkpoint is in place.
A crash thus leaves the old checkpoint or the new one, complete, never a mix and never none.

Reading is bounded by the files' sizes: arrays must be stored uncompressed (as this module
writes them) and each array's declared shape must fit its stored bytes, so corrupt files
raise `CheckpointError` instead of asking for gigabytes.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import attrs
import jax
import numpy as np

from ssvae.adapters.json_limits import JsonLimitError, load_json_bounded
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
    """The spec by flat field names, the form spec files use: checkpoints written before the
    fields were grouped hold the same mapping, so old and new checkpoints read alike."""
    return spec.to_fields()


def spec_from_json(fields: dict[str, Any]) -> ModelSpec:
    return ModelSpec.from_fields(**fields)


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
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(directory), dir=directory.parent))
    try:
        _write_file(staging / ARRAYS, buffer.getvalue())
        _write_file(staging / META, json.dumps(meta, indent=1).encode("utf-8"))
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=_aside_prefix(directory), dir=directory.parent))
            os.replace(directory, old / "previous")
            os.replace(staging, directory)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Only now, with the new checkpoint in place, are the copies a crash may have left
    # beside it (this save's moved-aside one included) no longer needed for recovery.
    for leftover in _leftovers(directory):
        shutil.rmtree(leftover, ignore_errors=True)


def _staging_prefix(directory: Path) -> str:
    return f".{directory.name}.tmp-"


def _aside_prefix(directory: Path) -> str:
    return f".{directory.name}.old-"


def _leftovers(directory: Path) -> list[Path]:
    """The staging and moved-aside directories of `directory`'s saves that remain beside it."""
    prefixes = (_staging_prefix(directory), _aside_prefix(directory))
    try:
        return [
            entry
            for entry in directory.parent.iterdir()
            if entry.name.startswith(prefixes) and entry.is_dir()
        ]
    except OSError:
        return []


def _recovery_candidates(directory: Path) -> list[Path]:
    """Copies a save interrupted between its renames left beside a missing `directory`:
    its new staging directory and the previous checkpoint moved aside, newest first."""
    candidates = []
    for leftover in _leftovers(directory):
        staged = leftover.name.startswith(_staging_prefix(directory))
        copy = leftover if staged else leftover / "previous"
        try:
            written = (copy / META).stat().st_mtime_ns
        except OSError:
            continue  # no metadata: a staging directory the crash left half written
        # Within one save the staged copy is the newer, even where the clock's grain
        # gives both the same time.
        candidates.append((written, staged, copy))
    return [copy for _, _, copy in sorted(candidates, reverse=True)]


def load_checkpoint(directory: Path) -> CheckpointContent:
    """Read a checkpoint; CheckpointError with the reason when it cannot be used.

    When `directory` is missing because a save was interrupted between its two renames, the
    newest complete copy that save left beside it is read instead (see the module docstring).
    """
    directory = Path(directory)
    if not directory.exists():
        for copy in _recovery_candidates(directory):
            try:
                return _read_checkpoint(copy)
            except CheckpointError:
                continue  # incomplete: try the next newest
    return _read_checkpoint(directory)


def _read_checkpoint(directory: Path) -> CheckpointContent:
    meta_path, arrays_path = directory / META, directory / ARRAYS
    if not meta_path.is_file() or not arrays_path.is_file():
        raise CheckpointError(
            f"{directory}: no model checkpoint here (expected {META} and {ARRAYS}); "
            "train and save a model first"
        )
    meta = _read_meta(meta_path)
    try:
        spec = spec_from_json(meta["spec"])
    except (SsvaeError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{meta_path}: the checkpoint's model spec is invalid ({_first_line(error)}); "
            "retrain the model"
        ) from None
    num_leaves, step, epoch = (meta[name] for name in ("num_leaves", "step", "epoch"))
    names = [f"leaf_{i:05d}" for i in range(num_leaves)]
    arrays = _read_arrays(arrays_path, [*names, "prng_key"], optional=("tau",))
    _check_arrays(arrays_path, arrays, names, spec)
    return CheckpointContent(
        spec=spec,
        leaves=[arrays[name] for name in names],
        key=arrays["prng_key"],
        step=step,
        epoch=epoch,
        tau=arrays.get("tau"),
        meta=meta,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:200]


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """meta.json as a dict whose format version, counters and spec have the right types."""
    try:
        meta = load_json_bounded(meta_path.read_bytes())
    except (OSError, JsonLimitError) as error:
        raise CheckpointError(
            f"{meta_path}: unreadable checkpoint metadata ({_first_line(error)}); retrain the model"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{meta_path}: checkpoint metadata is not an object; retrain the model"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        shown = repr(meta.get("format_version"))[:40]
        raise CheckpointError(
            f"{meta_path.parent}: checkpoint format {shown} is not supported "
            f"(this version reads {FORMAT_VERSION}); retrain the model"
        )
    for name in ("num_leaves", "step", "epoch"):
        value = meta.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(
                f"{meta_path}: {name} must be a count, not {repr(value)[:40]}; retrain the model"
            )
    if not isinstance(meta.get("spec"), dict):
        raise CheckpointError(f"{meta_path}: the model spec is missing; retrain the model")
    if not isinstance(meta.get("fingerprint", ""), str) or not _is_history(meta.get("history", [])):
        raise CheckpointError(
            f"{meta_path}: the fingerprint or training history is malformed; retrain the model"
        )
    return meta


def _is_history(history: Any) -> bool:
    """Whether `history` is a list of {"epoch": int, "metrics": {name: number}}."""

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    return isinstance(history, list) and all(
        isinstance(record, dict)
        and isinstance(record.get("epoch"), int)
        and isinstance(record.get("metrics"), dict)
        and all(number(v) for v in record["metrics"].values())
        for record in history
    )


def _check_arrays(
    path: Path, arrays: dict[str, np.ndarray], names: list[str], spec: ModelSpec
) -> None:
    """Numbers of the kinds and shapes the model reads, so a restored model can run."""
    for name in names:
        if arrays[name].dtype.kind not in "biuf":
            raise CheckpointError(
                f"{path}: {name} holds {arrays[name].dtype} values, not numbers; retrain the model"
            )
    key = arrays["prng_key"]
    if key.shape != (2,) or key.dtype.kind not in "iu":
        raise CheckpointError(
            f"{path}: the PRNG key has shape {key.shape} and type {key.dtype}, not two "
            "unsigned integers; retrain the model"
        )
    tau = arrays.get("tau")
    wanted = (spec.network.num_components, spec.network.num_classes)
    if tau is not None and (tau.shape != wanted or tau.dtype.kind != "f"):
        raise CheckpointError(
            f"{path}: the component-label map has shape {tau.shape} ({tau.dtype}), the model "
            f"needs {wanted} floats; retrain the model"
        )


def _read_arrays(path: Path, names: list[str], optional: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of an npz file, reading no more than the file holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            arrays: dict[str, np.ndarray] = {}
            for name in [*names, *(n for n in optional if f"{n}.npy" in members)]:
                info = members.get(f"{name}.npy")
                if info is None:
                    raise CheckpointError(
                        f"{path}: corrupt checkpoint arrays ({name} is missing); retrain the model"
                    )
                arrays[name] = _read_member(archive, info, path)
            return arrays
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError) as error:
        raise CheckpointError(
            f"{path}: corrupt checkpoint arrays ({_first_line(error)}); retrain the model"
        ) from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One stored .npy member, after checking that its declared shape fits its bytes."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(
            f"{path}: checkpoint array {info.filename} is compressed, but checkpoints store "
            "arrays uncompressed; retrain the model"
        )
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject:
            raise ValueError(f"{info.filename} holds Python objects")
        needed = math.prod(shape) * dtype.itemsize
        if needed > info.file_size:
            raise ValueError(
                f"{info.filename} declares {needed:,} bytes but stores {info.file_size:,}"
            )
        data = member.read(needed)
        if len(data) != needed:
            raise ValueError(f"{info.filename} is truncated")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C").copy()


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
