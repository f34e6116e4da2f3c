"""Running one command as several processes: how they find each other, and which one writes.

Past one machine the tool runs on JAX's own distributed runtime. Every process runs the same
command; they meet at a coordinator (process 0's address), train on their own part of each
batch, and only process 0 writes the workspace's files. `ClusterSettings` is what the user
says about the processes (flags or environment), validated once at the edge;
`DistributedRuntime` starts the runtime and says where this process stands.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from ssvae.domain.echo import short_repr
from ssvae.domain.errors import SsvaeError

DEFAULT_INIT_TIMEOUT = 300  # seconds: JAX's own default for processes to meet


class DistributedError(SsvaeError):
    """The processes of a distributed run could not be set up or did not meet."""


def _check_coordinator(_: object, __: object, value: str | None) -> None:
    if value is None:
        return
    host, _sep, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(
            f"coordinator {short_repr(value)} is not HOST:PORT; give process 0's address and "
            "a free port, e.g. --coordinator 10.0.0.1:12355"
        )


@attrs.frozen
class ClusterSettings:
    """How this process joins a distributed run.

    - nothing set: one process, nothing is started;
    - `detect`: the cluster says (SLURM, Open MPI, Kubernetes indexed Jobs, through JAX's
      own detection); any value given here overrides what it finds;
    - by hand: `coordinator` (HOST:PORT of process 0), `num_processes` and `process_id`.
    """

    coordinator: str | None = attrs.field(default=None, validator=_check_coordinator)
    num_processes: int | None = None
    process_id: int | None = None
    detect: bool = False
    init_timeout: int = DEFAULT_INIT_TIMEOUT  # seconds to wait for every process to join

    def __attrs_post_init__(self) -> None:
        if self.init_timeout < 1:
            raise DistributedError(
                f"init timeout {self.init_timeout} s is invalid; wait at least 1 second"
            )
        if self.num_processes is not None and self.num_processes < 1:
            raise DistributedError(
                f"{self.num_processes} processes is invalid; run at least 1 (--num-processes)"
            )
        if self.process_id is not None and (
            self.process_id < 0
            or (self.num_processes is not None and self.process_id >= self.num_processes)
        ):
            raise DistributedError(
                f"process id {self.process_id} is invalid for {self.num_processes} processes; "
                "number them 0 to N-1 (--process-id)"
            )
        if self.detect:
            return
        given = [
            name
            for name, value in (
                ("--coordinator", self.coordinator),
                ("--num-processes", self.num_processes),
                ("--process-id", self.process_id),
            )
            if value is not None
        ]
        if given and len(given) < 3 and self.num_processes != 1:
            missing = [
                name
                for name in ("--coordinator", "--num-processes", "--process-id")
                if name not in given
            ]
            raise DistributedError(
                f"{', '.join(given)} given without {', '.join(missing)}: a process started by "
                "hand needs all three (or --cluster to let SLURM, Open MPI or Kubernetes say)"
            )

    @property
    def wanted(self) -> bool:
        """True when more than one process may take part (the runtime must start)."""
        return self.detect or (self.num_processes or 1) > 1


@attrs.frozen
class ProcessPlace:
    """Where this process stands: its index among `count` processes."""

    index: int = 0
    count: int = 1

    @property
    def writes(self) -> bool:
        """Only the first process writes the workspace's files (labels, metadata, reports)."""
        return self.index == 0


class DistributedRuntime(Protocol):
    """Starts the distributed runtime and says where this process stands."""

    def start(self, settings: ClusterSettings) -> ProcessPlace:
        """Join the run `settings` describes (nothing to do for one process)."""
        ...

    def place(self) -> ProcessPlace:
        """This process's place: ProcessPlace() when no runtime was started."""
        ...
