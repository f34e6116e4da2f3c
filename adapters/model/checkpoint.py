"""Checkpoints: parameters, optimizer state, step, PRNG state, spec and data fingerprint.

Layout of a checkpoint directory (format 2):
- `state/`: an orbax-checkpoint composite of two items, `leaves` (every leaf of (parameters,
  optimizer state) in tree order) and `extras` (the root PRNG key and, once labels exist, the
  component-to-label map tau);
- `meta.json`: format version, the `ModelSpec` fields, step, epoch, fingerprint and history.

Why orbax: it is the JAX ecosystem's checkpointer, and it saves and restores arrays sharded
over many processes: under `jax.distributed` every process calls `save_checkpoint` with its
global arrays, writes its own shards, and orbax's primary process commits the folder. The
tree structure is rebuilt from the spec, so nothing executable (no pickle) is ever loaded.
meta.json stays JSON: it is read before any array, and by tools without JAX.

Format 1 (`arrays.npz` beside `meta.json`, every leaf, the key and tau as .npy members) is
still read, so models trained before keep working; a new save writes format 2.

Atomicity: orbax writes its folder under a temporary name and renames it when complete; the
whole checkpoint (that folder and meta.json) is written into a fresh temporary directory
beside the target (`.NAME.tmp-*`) and flushed; the previous checkpoint is moved aside
(`.NAME.old-*/previous`), the new directory renamed into place, and the moved-aside copy
deleted last. Two renames cannot be one atomic step, so a crash between them leaves no
directory at the target, only the two complete copies beside it. Loading therefore falls
back, when the target is missing, to the newest complete copy beside it; it only reads, so a
reader never races a writer's renames. The next save deletes every leftover copy once its own
checkpoint is in place. A crash thus leaves the old checkpoint or the new one, complete, never
a mix and never none. With several processes, process 0 alone writes meta.json and renames,
between barriers, in a staging directory whose name it shares with the others.

Reading is bounded: format 1 arrays must be stored uncompressed (as that format wrote them)
and each array's declared shape must fit its stored bytes. Format 2 arrays are read only
after orbax's metadata shows the shapes the model needs (the key and tau against the spec at
load, the leaves against the model's own tree in `restore_tree`), so a checkpoint never makes
the reader allocate what it declares. Anything orbax or its storage raises on a damaged
folder becomes one `CheckpointError` line.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import attrs
import jax
import numpy as np

from ssvae.adapters.json_limits import JsonLimitError, load_json_bounded
from ssvae.domain.errors import SsvaeError
from ssvae.domain.spec import ModelSpec

FORMAT_VERSION = 2  # orbax; what a save writes
NPZ_FORMAT_VERSION = 1  # arrays.npz; still read
ARRAYS = "arrays.npz"
META = "meta.json"
STATE = "state"


class CheckpointError(SsvaeError):
    """A missing, incomplete or incompatible checkpoint."""


@attrs.frozen(eq=False)
class CheckpointContent:
    """What a checkpoint holds, as plain values."""

    spec: ModelSpec
    leaves: Sequence[np.ndarray]  # parameters then optimizer state, in tree order
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
    """Write the checkpoint into `directory` atomically (replacing any previous one).

    Under `jax.distributed` every process calls this with the same arguments (its global
    arrays); each writes its own shards and process 0 commits.
    """
    directory = Path(directory).absolute()
    primary = jax.process_index() == 0
    leaves = jax.tree_util.tree_leaves(tree)
    extras = {"prng_key": key}
    if tau is not None:
        extras["tau"] = np.asarray(tau, np.float32)
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": spec_to_json(spec),
        "step": step,
        "epoch": epoch,
        "num_leaves": len(leaves),
        **extra,
    }
    staging = _new_staging(directory)
    try:
        _save_state(staging / STATE, leaves, extras)
        if primary:
            _write_file(staging / META, json.dumps(meta, indent=1).encode("utf-8"))
            if directory.exists():
                old = Path(tempfile.mkdtemp(prefix=_aside_prefix(directory), dir=directory.parent))
                os.replace(directory, old / "previous")
                os.replace(staging, directory)
            else:
                os.replace(staging, directory)
    except BaseException:
        if primary:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    _barrier("ssvae checkpoint committed")
    # Only now, with the new checkpoint in place, are the copies a crash may have left
    # beside it (this save's moved-aside one included) no longer needed for recovery.
    if primary:
        for leftover in _leftovers(directory):
            shutil.rmtree(leftover, ignore_errors=True)


def _new_staging(directory: Path) -> Path:
    """A fresh directory beside `directory`; with several processes, the same for all."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    if jax.process_count() == 1:
        return Path(tempfile.mkdtemp(prefix=_staging_prefix(directory), dir=directory.parent))
    from jax.experimental import multihost_utils

    token = multihost_utils.broadcast_one_to_all(np.array(secrets.randbits(31), np.int32))
    staging = directory.parent / f"{_staging_prefix(directory)}{int(token):08x}"
    if jax.process_index() == 0:
        staging.mkdir()
    _barrier("ssvae checkpoint staging")
    return staging


def _barrier(name: str) -> None:
    """Wait for every process (nothing to wait for with one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _orbax() -> Any:
    """A synchronous orbax checkpointer of the two items (imported on first use: it is slow)."""
    import orbax.checkpoint as ocp

    handler = ocp.CompositeCheckpointHandler(
        leaves=ocp.StandardCheckpointHandler(), extras=ocp.StandardCheckpointHandler()
    )
    return ocp, ocp.Checkpointer(handler)


def _save_state(path: Path, leaves: list[Any], extras: dict[str, Any]) -> None:
    """The arrays through orbax, into `path` (written under a temporary name, then renamed)."""
    ocp, checkpointer = _orbax()
    checkpointer.save(
        path,
        args=ocp.args.Composite(
            leaves=ocp.args.StandardSave(list(leaves)), extras=ocp.args.StandardSave(extras)
        ),
    )


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
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    if not directory.exists():
        for copy in _recovery_candidates(directory):
            try:
                return _read_checkpoint(copy)
            except CheckpointError:
                continue  # incomplete: try the next newest
    return _read_checkpoint(directory)


def _read_checkpoint(directory: Path) -> CheckpointContent:
    meta_path, arrays_path, state_path = directory / META, directory / ARRAYS, directory / STATE
    if not meta_path.is_file() or not (arrays_path.is_file() or state_path.is_dir()):
        raise CheckpointError(
            f"{directory}: no model checkpoint here (expected {META} and {STATE}/); "
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
    if meta["format_version"] == FORMAT_VERSION:
        leaves, key, tau = _read_state(state_path, num_leaves, spec)
        return CheckpointContent(spec, leaves, key, step, epoch, tau, meta)
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


class OrbaxLeaves(Sequence[np.ndarray]):
    """The leaves of an orbax checkpoint: their shapes and types from its metadata at once,
    their values read on first use, so that `restore_tree` checks the shapes against the
    model before anything of the declared size is allocated."""

    def __init__(self, path: Path, shapes: list[tuple[int, ...]], dtypes: list[np.dtype]) -> None:
        self.path = path
        self.shapes = shapes
        self.dtypes = dtypes
        self._values: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.shapes)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        return self.values()[index]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.values())

    def values(self) -> list[np.ndarray]:
        """Every leaf as a numpy array (read once)."""
        if self._values is None:
            targets = [np.zeros(s, d) for s, d in zip(self.shapes, self.dtypes, strict=True)]
            restored = _restore_item(self.path, "leaves", targets)
            if not isinstance(restored, list) or len(restored) != len(targets):
                raise CheckpointError(f"{self.path}: corrupt checkpoint arrays; retrain the model")
            self._values = [np.asarray(leaf) for leaf in restored]
        return self._values


def _read_state(
    path: Path, num_leaves: int, spec: ModelSpec
) -> tuple[OrbaxLeaves, np.ndarray, np.ndarray | None]:
    """The lazily read leaves and the PRNG key and tau (checked against the spec, then read)."""
    leaves = _item_metadata(path, "leaves")
    extras = _item_metadata(path, "extras")
    if not isinstance(leaves, list) or len(leaves) != num_leaves:
        raise CheckpointError(
            f"{path}: the checkpoint holds {len(leaves) if isinstance(leaves, list) else 'no'} "
            f"arrays where its metadata says {num_leaves}; retrain the model"
        )
    if not isinstance(extras, dict) or not set(extras) <= {"prng_key", "tau"}:
        raise CheckpointError(f"{path}: the PRNG key is missing; retrain the model")
    shapes = [_shape_and_type(path, f"array {i}", leaf) for i, leaf in enumerate(leaves)]
    key_shape, key_type = _shape_and_type(path, "the PRNG key", extras.get("prng_key"))
    if key_shape != (2,) or key_type.kind not in "iu":
        raise CheckpointError(
            f"{path}: the PRNG key has shape {key_shape} and type {key_type}, not two "
            "unsigned integers; retrain the model"
        )
    targets = {"prng_key": np.zeros(2, key_type)}
    if "tau" in extras:
        tau_shape, tau_type = _shape_and_type(path, "tau", extras["tau"])
        wanted = (spec.network.num_components, spec.network.num_classes)
        if tau_shape != wanted or tau_type.kind != "f":
            raise CheckpointError(
                f"{path}: the component-label map has shape {tau_shape} ({tau_type}), the "
                f"model needs {wanted} floats; retrain the model"
            )
        targets["tau"] = np.zeros(wanted, tau_type)
    restored = _restore_item(path, "extras", targets)
    if not isinstance(restored, dict) or set(restored) != set(targets):
        raise CheckpointError(f"{path}: corrupt checkpoint arrays; retrain the model")
    tau = None if "tau" not in restored else np.asarray(restored["tau"])
    return (
        OrbaxLeaves(path, [shape for shape, _ in shapes], [kind for _, kind in shapes]),
        np.asarray(restored["prng_key"]),
        tau,
    )


def _shape_and_type(path: Path, name: str, metadata: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and number type orbax's metadata declares for one array."""
    shape, dtype = getattr(metadata, "shape", None), getattr(metadata, "dtype", None)
    try:
        shape = tuple(int(n) for n in shape)  # type: ignore[union-attr]
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        shape = dtype = None
    if shape is None or dtype is None or dtype.kind not in "biuf" or min(shape, default=0) < 0:
        raise CheckpointError(
            f"{path}: {name} is not an array of numbers in the checkpoint; retrain the model"
        )
    return shape, dtype


def _item_metadata(path: Path, item: str) -> Any:
    """The tree of array metadata of one item of the orbax folder at `path`."""
    _, checkpointer = _orbax()
    try:
        metadata = checkpointer.metadata(path).item_metadata[item]
        return None if metadata is None else metadata.tree
    except Exception as error:  # whatever a damaged folder makes orbax raise
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({_first_line(error)}); retrain the model"
        ) from None


def _restore_item(path: Path, item: str, targets: Any) -> Any:
    """One item of the orbax folder at `path`, as numpy arrays shaped like `targets`."""
    ocp, checkpointer = _orbax()
    try:
        restored = checkpointer.restore(
            path, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(targets)})
        )
        return restored[item]
    except Exception as error:  # whatever a damaged folder makes orbax raise
        raise CheckpointError(
            f"{path}: corrupt checkpoint arrays ({_first_line(error)}); retrain the model"
        ) from None


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
    version = meta.get("format_version")
    if type(version) is not int or version not in (NPZ_FORMAT_VERSION, FORMAT_VERSION):
        raise CheckpointError(
            f"{meta_path.parent}: checkpoint format {repr(version)[:40]} is not supported "
            f"(this version reads {NPZ_FORMAT_VERSION} and {FORMAT_VERSION}); retrain the model"
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


def restore_tree(template: Any, leaves: Sequence[np.ndarray], directory: Path) -> Any:
    """`leaves` in the structure of `template`; CheckpointError if they do not fit.

    Lazily read leaves (`OrbaxLeaves`) are read only once their shapes match the template.
    """
    template_leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(template_leaves) != len(leaves):
        raise CheckpointError(
            f"{directory}: checkpoint has {len(leaves)} arrays, the model needs "
            f"{len(template_leaves)}; it was written by an incompatible version"
        )
    shapes = leaves.shapes if isinstance(leaves, OrbaxLeaves) else [g.shape for g in leaves]
    for i, (want, got) in enumerate(zip(template_leaves, shapes, strict=True)):
        if tuple(np.shape(want)) != tuple(got):
            raise CheckpointError(
                f"{directory}: array {i} has shape {tuple(got)}, the model needs "
                f"{tuple(np.shape(want))}; the checkpoint does not match its spec"
            )
    return jax.tree_util.tree_unflatten(
        treedef,
        [
            np.asarray(g, dtype=np.asarray(w).dtype)
            for w, g in zip(template_leaves, list(leaves), strict=True)
        ],
    )
