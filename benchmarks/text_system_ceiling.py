"""How far can 5 labels per system go on Loghub --task system? Template coverage and the
leave-template-out accuracy of a fully supervised classifier on the same vectors.

The target is 99% test accuracy with 5 labels per system. A message's system is easy
to learn from labelled messages of its own template (logistic regression with every label:
99.5%); what decides the figure is how well a classifier carries a system over to templates
that no label covers. This script measures both halves:

- coverage: with `--per-class` labels per system drawn at random (per seed), the share of
  test messages whose template (event_id) has at least one labelled pool message;
- leave-template-out: logistic regression trained on every message of the other templates,
  all labelled, tested on the held-out templates' messages (templates split into `--folds`
  groups, each held out in turn). That is far more supervision than any 50 labels give, so
  its accuracy bounds from above what the uncovered messages can reach with these vectors.

The estimated ceiling is coverage x 100% + (1 - coverage) x the leave-template-out accuracy
of the uncovered systems' messages: what a classifier perfect on covered templates and as
good on the others as full supervision of every other template would score.

    .venv/bin/python benchmarks/text_system_ceiling.py [--embedder tfidf|minilm] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np
from benchmarks_common import cpu_model
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from text_common import add_text_options, labels_per_class, load_splits, open_loghub

TARGET_ACCURACY = 0.99


def leave_template_out(
    x: np.ndarray, y: np.ndarray, templates: np.ndarray, folds: int
) -> np.ndarray:
    """Per message: does logistic regression trained on the other template groups get it?"""
    hits = np.zeros(len(y), bool)
    for train_rows, test_rows in GroupKFold(n_splits=folds).split(x, y, groups=templates):
        model = LogisticRegression(C=10.0, max_iter=2000).fit(x[train_rows], y[train_rows])
        hits[test_rows] = model.predict(x[test_rows]) == y[test_rows]
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    add_text_options(parser)
    args = parser.parse_args()
    start = time.perf_counter()
    source = open_loghub("system", args)
    info = source.describe()
    train, test, _ = load_splits(source)
    assert train.y is not None and test.y is not None
    train_templates = np.array(source.extras("train", train.serials)["event_id"])
    test_templates = np.array(source.extras("test", test.serials)["event_id"])

    x = np.concatenate([train.x, test.x])
    y = np.concatenate([train.y, test.y])
    templates = np.concatenate([train_templates, test_templates])
    hits = leave_template_out(x, y, templates, args.folds)
    test_hits = hits[len(train.y) :]
    names = info.vocabulary.names
    per_system = {names[c]: round(100 * float(hits[y == c].mean()), 1) for c in range(len(names))}

    runs = []
    for seed in args.seeds:
        labels = labels_per_class(train, info.vocabulary, args.per_class, seed)
        labelled = np.isin(train.serials, labels.serials())
        covered_templates = set(train_templates[labelled])
        covered = np.array([t in covered_templates for t in test_templates])
        ceiling = float(covered.mean() + (~covered & test_hits).mean())
        runs.append(
            {
                "seed": seed,
                "labelled_templates": len(covered_templates),
                "coverage": round(float(covered.mean()), 4),
                "uncovered_leave_template_out_accuracy": round(
                    float(test_hits[~covered].mean()), 4
                ),
                "estimated_ceiling": round(ceiling, 4),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    summary: dict[str, Any] = {
        "task": "system",
        "embedder": args.embedder,
        "dimension": int(x.shape[1]),
        "labels_per_class": args.per_class,
        "templates": len(set(templates)),
        "folds": args.folds,
        "leave_template_out_accuracy": round(float(hits.mean()), 4),
        "leave_template_out_per_system": per_system,
        "mean_coverage": round(statistics.mean(r["coverage"] for r in runs), 4),
        "mean_estimated_ceiling": round(statistics.mean(r["estimated_ceiling"] for r in runs), 4),
        "target": TARGET_ACCURACY,
        "cpu": cpu_model(),
        "load_average": os.getloadavg(),
        "seconds": round(time.perf_counter() - start, 1),
        "runs": runs,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
