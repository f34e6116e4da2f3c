"""Helpers shared by the benchmark scripts: MNIST arrays and the CPU's name."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from ssvae.adapters.data.idx import read_idx

DATA = Path(__file__).resolve().parent.parent / "data" / "mnist"


def load_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (n, 28, 28, 1) in [0, 1], labels int64) of 'train' or 't10k'."""
    images = read_idx(DATA / f"{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(DATA / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return images[..., None], labels


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()
