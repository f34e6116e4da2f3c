"""Errors a user can cause. Each message says what was wrong and how to fix it."""

from __future__ import annotations


class SsvaeError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class SpecError(SsvaeError, ValueError):
    """An invalid model specification value or key."""


class LabelError(SsvaeError, ValueError):
    """An invalid label, label file or label operation."""


class DataError(SsvaeError, ValueError):
    """A missing, corrupt or malformed dataset."""


class ConcurrentWriteError(SsvaeError):
    """Another process holds the write lock of a store."""


class TrainingDivergedError(SsvaeError):
    """Training blew up (NaN/Inf or a loss far above its running level); nothing was saved."""
