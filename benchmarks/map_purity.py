"""How well 2-D maps of a trained model's pool group the classes, and how long each takes.

The measure is `ssvae.domain.maps.map_purity`: kNN(11) class purity, half of the points
against the other half. The views: PCA of latent_mean (the dashboard's map before this
benchmark), PCA of q(y|x), and openTSNE (FFT-accelerated) and umap-learn of
`map_features` ([q(y|x), encodings]). Usage:

    .venv/bin/python benchmarks/map_purity.py --dataset mnist     # 10,000-image pool, 100 labels
    .venv/bin/python benchmarks/map_purity.py --dataset loghub    # --task system, 50 labels

umap-learn is not a project dependency; to measure it, install it in a scratch environment
(`python3 -m venv /tmp/umapvenv && /tmp/umapvenv/bin/pip install umap-learn numpy`) and pass
`--umap-python /tmp/umapvenv/bin/python`: the layout runs there on the same features.
`--timing-points 60000` also times the map of the full MNIST training set (60,000 rows of
the same model's outputs): a fit on a sample of `--fit-sample` rows with the rest
transformed, and with `--full-fit` a fit of all of them; `--skip-views` times only that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks_common import choose_labels, cpu_model, load_mnist

from ssvae.application.pool_scan import predict_chunks
from ssvae.domain.data import Samples
from ssvae.domain.maps import map_features, map_purity
from ssvae.domain.spec import preset

UMAP_SCRIPT = """
import sys, time, numpy as np, umap
x = np.load(sys.argv[1]); start = time.perf_counter()
xy = umap.UMAP(n_components=2, random_state=int(sys.argv[3])).fit_transform(x)
np.save(sys.argv[2], xy); print(time.perf_counter() - start)
"""


def pca2(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(n_jobs=os.cpu_count(), random_state=seed).fit(x))


def tsne_sampled(x: np.ndarray, seed: int, sample: int) -> np.ndarray:
    from openTSNE import TSNE

    rows = np.random.default_rng(seed).permutation(len(x))
    fitted = TSNE(n_jobs=os.cpu_count(), random_state=seed).fit(x[rows[:sample]])
    out = np.empty((len(x), 2))
    out[rows[:sample]] = np.asarray(fitted)
    out[rows[sample:]] = np.asarray(fitted.transform(x[rows[sample:]]))
    return out


def umap_layout(python: str, x: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "x.npy"), Path(tmp, "xy.npy")
        np.save(src, x)
        done = subprocess.run(
            [python, "-c", UMAP_SCRIPT, str(src), str(dst), str(seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        return np.load(dst), float(done.stdout.strip().splitlines()[-1])


def train_mnist(args: argparse.Namespace) -> tuple[Any, Samples, np.ndarray]:
    from ssvae.adapters.model.ssvae_model import JaxSsvaeModel

    x, y = load_mnist("train")
    rows = np.sort(np.random.default_rng(args.seed).permutation(len(x))[: args.pool])
    pool = Samples(serials=np.arange(len(rows), dtype=np.int64), x=x[rows], y=y[rows])
    spec = preset("standard", seed=args.seed, validation_split=0.0, max_epochs=args.epochs or 10)
    model = JaxSsvaeModel(spec)
    model.fit(pool, choose_labels(y[rows], args.labels // 10, args.seed))
    return model, pool, y[rows]


def train_loghub(args: argparse.Namespace) -> tuple[Any, Samples, np.ndarray]:
    from text_common import labels_per_class

    from ssvae.adapters.data.text_source import loghub_source
    from ssvae.adapters.model.ssvae_model import JaxSsvaeModel

    source = loghub_source("system", embedder="tfidf", embedder_dim=256, scaling="l2")
    info = source.describe()
    pool = source.load("train")
    assert pool.y is not None
    base = preset(
        "text_mixture_k20", input_shape=pool.x.shape[1:], num_classes=len(info.vocabulary)
    )
    spec = base.evolve(seed=args.seed, validation_split=0.0)
    per_class = max(1, args.labels // len(info.vocabulary))
    model = JaxSsvaeModel(spec)
    epochs = args.epochs or spec.training.max_epochs
    model.fit(pool, labels_per_class(pool, info.vocabulary, per_class, args.seed), epochs=epochs)
    return model, pool, np.asarray(pool.y)


def views(outputs: Any, y: np.ndarray, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    features = map_features(outputs.class_probs, outputs.encoding)
    results: dict[str, dict[str, float]] = {}

    def record(name: str, layout: Any) -> None:
        start = time.perf_counter()
        xy = layout()
        seconds = time.perf_counter() - start
        if isinstance(xy, tuple):
            xy, seconds = xy
        results[name] = {"purity": map_purity(xy, y), "seconds": round(seconds, 2)}
        print(name, results[name], flush=True)

    record("PCA of latent_mean", lambda: pca2(outputs.latent_mean))
    record("PCA of encodings", lambda: pca2(outputs.encoding))
    record("PCA of q(y|x)", lambda: pca2(outputs.class_probs))
    record("openTSNE of q(y|x)", lambda: tsne(outputs.class_probs, args.seed))
    record("openTSNE of [q(y|x), encodings]", lambda: tsne(features, args.seed))
    if args.umap_python:
        record(
            "umap-learn of [q(y|x), encodings]",
            lambda: umap_layout(args.umap_python, features, args.seed),
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=["mnist", "loghub"], default="mnist")
    parser.add_argument("--pool", type=int, default=10_000, help="MNIST pool size")
    parser.add_argument("--labels", type=int, default=None, help="default: mnist 100, loghub 50")
    parser.add_argument("--epochs", type=int, default=None, help="default: mnist 10, loghub preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--umap-python", default=None)
    parser.add_argument("--timing-points", type=int, default=0)
    parser.add_argument("--fit-sample", type=int, default=10_000)
    parser.add_argument(
        "--full-fit", action="store_true", help="also time a full fit of --timing-points"
    )
    parser.add_argument("--skip-views", action="store_true", help="only the timing")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    args.labels = args.labels or (100 if args.dataset == "mnist" else 50)
    start = time.perf_counter()
    train = train_mnist if args.dataset == "mnist" else train_loghub
    model, pool, y = train(args)
    train_seconds = time.perf_counter() - start
    outputs = predict_chunks(model, pool.x, 2048)
    accuracy = float(np.mean(outputs.class_probs.argmax(1) == y))
    print(f"trained in {train_seconds:.0f} s; q(y|x) pool accuracy {accuracy:.3f}", flush=True)
    document: dict[str, Any] = {
        "dataset": args.dataset,
        "pool": len(y),
        "labels": args.labels,
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(train_seconds, 1),
        "pool_accuracy": accuracy,
        "views": {} if args.skip_views else views(outputs, y, args),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
    }
    if args.timing_points and args.dataset == "mnist":
        x, y_all = load_mnist("train")
        many = predict_chunks(model, x[: args.timing_points], 2048)
        features = map_features(many.class_probs, many.encoding)
        y_many = y_all[: args.timing_points]
        timing: dict[str, Any] = {}
        layouts: list[tuple[str, Any]] = [
            (
                f"fit on {args.fit_sample}, transform the rest",
                lambda: tsne_sampled(features, args.seed, args.fit_sample),
            )
        ]
        if args.full_fit:
            layouts.append(("full fit", lambda: tsne(features, args.seed)))
        for name, layout in layouts:
            begin = time.perf_counter()
            xy = layout()
            timing[name] = {
                "seconds": round(time.perf_counter() - begin, 1),
                "purity": map_purity(xy, y_many),
            }
            print(args.timing_points, name, timing[name], flush=True)
        document["timing"] = {"points": args.timing_points, **timing}
    print(json.dumps(document, indent=1))
    if args.out:
        args.out.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
