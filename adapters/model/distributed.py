"""`JaxDistributedRuntime`: several processes on JAX's own distributed runtime.

`start` calls `jax.distributed.initialize`, which must run before any JAX computation: on a
cluster it lets JAX detect the processes (SLURM, Open MPI, Kubernetes indexed Jobs); by hand
it passes the coordinator, the process count and this process's id. CPU processes exchange
gradients through gloo collectives (the CPU client has no others), so N local processes on
one machine run the same code a cluster runs, which is how the tests check it.

Meeting is bounded by `init_timeout`, and both ways it can fail end in one line:
- a process other than 0 first connects to the coordinator's port itself, retrying until the
  deadline: an address nobody listens on fails here with the address in the message;
- then JAX waits for every process to join. JAX's client does not raise when that times out:
  it aborts the process with a C++ stack trace. A watchdog thread (JAX releases the GIL
  while it waits) prints the one-line message and exits first, with EXIT_NOT_JOINED.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable

from ssvae.domain.distributed import ClusterSettings, DistributedError, ProcessPlace

EXIT_NOT_JOINED = 3
GRACE_S = 5  # JAX's own deadline runs this much past the watchdog's, so the watchdog speaks first
PROBE_EVERY_S = 0.25


class JaxDistributedRuntime:
    """Starts `jax.distributed` once per process; `place` reads JAX's process index."""

    def __init__(self, exit_process: Callable[[int], None] = os._exit) -> None:
        self._exit = exit_process
        self._started: ProcessPlace | None = None

    def start(self, settings: ClusterSettings) -> ProcessPlace:
        if not settings.wanted:
            return self.place()
        if self._started is not None:
            return self._started
        deadline = time.monotonic() + settings.init_timeout  # JAX's own start counts too
        if settings.coordinator is not None and settings.process_id not in (None, 0):
            _wait_for_port(settings, deadline)  # before importing JAX: the wait is the timeout
        import jax

        if jax.distributed.is_initialized():
            self._started = self.place()
            return self._started
        # gloo: the CPU backend's collectives across processes; set before the backend starts.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # type: ignore[no-untyped-call]
        remaining = max(1, round(deadline - time.monotonic()))
        where = settings.coordinator or "the address the cluster gives"
        done = threading.Event()
        watchdog = threading.Thread(
            target=self._watch,
            args=(done, remaining, _not_joined(settings, where)),
            daemon=True,
        )
        watchdog.start()
        try:
            jax.distributed.initialize(
                coordinator_address=settings.coordinator,
                num_processes=settings.num_processes,
                process_id=settings.process_id,
                initialization_timeout=remaining + GRACE_S,
                cluster_detection_method=None if settings.detect else "deactivate",
            )
        except (RuntimeError, ValueError, TypeError) as error:
            raise DistributedError(
                f"the distributed runtime did not start at {where}: {_first_line(error)}; "
                "check --coordinator, --num-processes and --process-id (or the cluster's job)"
            ) from None
        finally:
            done.set()
        self._started = self.place()
        return self._started

    def _watch(self, done: threading.Event, seconds: float, message: str) -> None:
        if not done.wait(seconds):
            sys.stderr.write(f"error: {message}\n")
            sys.stderr.flush()
            self._exit(EXIT_NOT_JOINED)

    def place(self) -> ProcessPlace:
        if "jax" not in sys.modules:  # nothing started, and asking JAX would start its backend
            return ProcessPlace()
        import jax

        if not jax.distributed.is_initialized():
            return ProcessPlace()
        return ProcessPlace(jax.process_index(), jax.process_count())


def _wait_for_port(settings: ClusterSettings, deadline: float) -> None:
    """Return once the coordinator's port accepts a connection; DistributedError at `deadline`."""
    assert settings.coordinator is not None
    host, _, port = settings.coordinator.rpartition(":")
    host = host.strip("[]")
    last = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DistributedError(
                f"cannot reach the coordinator at {settings.coordinator} within "
                f"{settings.init_timeout} s ({last}; this is process {settings.process_id} of "
                f"{settings.num_processes}): start process 0 there first, check the address "
                "and that its port is open, or wait longer with --init-timeout"
            )
        try:
            with socket.create_connection((host, int(port)), timeout=min(left, 2.0)):
                return
        except OSError as error:
            last = error.strerror or type(error).__name__
            if isinstance(error, socket.gaierror):
                last = f"unknown host {host}"
        time.sleep(min(PROBE_EVERY_S, max(deadline - time.monotonic(), 0)))


def _not_joined(settings: ClusterSettings, where: str) -> str:
    count = "the" if settings.num_processes is None else f"the {settings.num_processes}"
    return (
        f"{count} processes did not all join at {where} within {settings.init_timeout} s "
        f"(this is process {settings.process_id}): start every process with the same "
        "--coordinator and --num-processes and its own --process-id, or wait longer with "
        "--init-timeout"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200].rstrip(".") if text else type(error).__name__
