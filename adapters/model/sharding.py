"""Data parallelism through JAX's own sharding.

A one-axis mesh spans `jax.devices()`; batches are split along it and parameters and optimizer
state are replicated. `jax.jit` then partitions the step and inserts the gradient all-reduce
itself, so the same code runs on one CPU, several accelerators, or several hosts after
`jax.distributed.initialize()` (`ssvae.adapters.model.distributed`).

With several processes, each reads and passes only its own rows of a batch
(`local_rows`): the mesh lists every process's devices in process order, so process p holds
the p-th equal slice of a batch the mesh divides, and `jax.make_array_from_process_local_data`
joins the slices into the one global batch a single process would have built. A batch the mesh
does not divide is replicated, and every process then passes all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def data_mesh() -> Mesh:
    """A one-dimensional mesh over every device of every process, in process order."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())  # type: ignore[no-untyped-call]


def batch_sharding(mesh: Mesh, rows: int) -> NamedSharding:
    """Split rows across the mesh; replicate when they do not divide evenly."""
    if rows % mesh.size == 0:
        return NamedSharding(mesh, PartitionSpec(AXIS))  # type: ignore[no-untyped-call]
    return replicated(mesh)


def local_rows(mesh: Mesh, rows: int) -> slice:
    """The positions of a `rows`-row global batch that this process reads and passes."""
    processes = jax.process_count()
    if processes == 1 or rows % mesh.size:
        return slice(0, rows)
    share = rows // processes
    return slice(jax.process_index() * share, (jax.process_index() + 1) * share)


def put_batch(
    mesh: Mesh, batch: Mapping[str, np.ndarray], rows: int | None = None
) -> dict[str, jax.Array]:
    """Place this process's part of a `rows`-row batch on the mesh, split along its first axis.

    `rows` (default: this part's rows times the process count) is the global batch's size;
    the part is `local_rows(mesh, rows)` of it."""
    out: dict[str, jax.Array] = {}
    for name, value in batch.items():
        total = value.shape[0] * jax.process_count() if rows is None else rows
        sharding = batch_sharding(mesh, total)
        if jax.process_count() > 1:
            out[name] = jax.make_array_from_process_local_data(  # type: ignore[no-untyped-call]
                sharding, value, (total, *value.shape[1:])
            )
        else:
            out[name] = jax.device_put(value, sharding)
    return out


def gathered(tree: Any) -> Any:
    """A pytree of (possibly sharded) arrays as host numpy arrays holding every process's rows."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def put_replicated(mesh: Mesh, tree: Any) -> Any:
    """Replicate a pytree (parameters, optimizer state) on every device of the mesh.

    With several processes each passes its own copy of every value (they are equal: the
    same seed builds them), which `jax.make_array_from_process_local_data` joins into one
    global array; `device_put` would leave arrays whose shards the checkpointer cannot read.
    """
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(
        lambda value: jax.make_array_from_process_local_data(  # type: ignore[no-untyped-call]
            sharding, np.asarray(value)
        ),
        tree,
    )
