"""Data parallelism through JAX's own sharding.

A one-axis mesh spans `jax.devices()`; batches are split along it and parameters and optimizer
state are replicated. `jax.jit` then partitions the step and inserts the gradient all-reduce
itself, so the same code runs on one CPU, several accelerators, or several hosts after
`jax.distributed.initialize()` (each host then passes its own rows of the batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def data_mesh() -> Mesh:
    """A one-dimensional mesh over every device of every process."""
    return Mesh(np.array(jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())  # type: ignore[no-untyped-call]


def batch_sharding(mesh: Mesh, rows: int) -> NamedSharding:
    """Split rows across the mesh; replicate when they do not divide evenly."""
    if rows % mesh.size == 0:
        return NamedSharding(mesh, PartitionSpec(AXIS))  # type: ignore[no-untyped-call]
    return replicated(mesh)


def put_batch(mesh: Mesh, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """Place a host batch on the mesh, split along its first axis."""
    out: dict[str, jax.Array] = {}
    for name, value in batch.items():
        sharding = batch_sharding(mesh, value.shape[0] * jax.process_count())
        if jax.process_count() > 1:
            out[name] = jax.make_array_from_process_local_data(  # type: ignore[no-untyped-call]
                sharding, value
            )
        else:
            out[name] = jax.device_put(value, sharding)
    return out


def put_replicated(mesh: Mesh, tree: Any) -> Any:
    """Replicate a pytree (parameters, optimizer state) on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))
