"""Helpers shared by the benchmark scripts: MNIST arrays and labels, --set overrides, the
CPU's name, simulation files."""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ssvae.adapters.data.idx import read_idx
from ssvae.domain.labels import ClassVocabulary, LabelSet

DATA = Path(__file__).resolve().parent.parent / "data" / "mnist"


def load_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (n, 28, 28, 1) in [0, 1], labels int64) of 'train' or 't10k'."""
    images = read_idx(DATA / f"{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(DATA / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return images[..., None], labels


def choose_labels(y: np.ndarray, per_class: int, seed: int) -> LabelSet:
    """`per_class` samples of every digit, chosen by `seed`, labelled with their true class
    (serials are row indices)."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    return LabelSet.from_pairs(
        ClassVocabulary.digits(10), [(int(s), str(y[s])) for s in np.concatenate(picks)]
    )


def overrides_of(items: Iterable[str]) -> dict[str, Any]:
    """--set name=value pairs as spec overrides (YAML scalars: 3e-3, true, [256, 256])."""
    out: dict[str, Any] = {}
    for item in items:
        name, _, value = item.partition("=")
        value_of = yaml.safe_load(value)
        out[name] = tuple(value_of) if isinstance(value_of, list) else value_of
    return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def policy_figures(summaries: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Per policy of a simulation's `summarise`: AULC mean, std and spread, labels to the
    target and final accuracy (policies without a finished curve left out)."""
    return {
        s.policy: {
            "aulc_mean": s.aulc_mean,
            "aulc_std": s.aulc_std,
            "aulc_range": s.aulc_range,
            "labels_to_target": s.labels_to_target,
            "final_accuracy": s.final_accuracy,
        }
        for s in summaries
        if s.aulc
    }


def write_benchmark(directory: Path, document: dict[str, Any], lines: Sequence[str]) -> None:
    """benchmark.json (the document) and BENCHMARK.md (the lines) beside a run's REPORT.md."""
    (directory / "benchmark.json").write_text(json.dumps(document, indent=1) + "\n")
    (directory / "BENCHMARK.md").write_text("\n".join(lines))
