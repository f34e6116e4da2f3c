"""A seeded synthetic pool of vectors for the scale benchmarks: N x d float32 rows drawn
from Gaussian clusters, each row labelled with its cluster, written as NPY, NPZ or Parquet.

The rows are generated block by block (BLOCK rows each, every block from its own seeded
generator), so the same seed gives the same rows whatever the format and whatever chunk the
writer asks for, and no more than one chunk is ever in memory: a 10M x 384 pool (15 GB) is
written with a few hundred megabytes.

- NPY: the header, then each chunk's bytes appended to the file (a writable memmap would do
  the same, but its dirty pages count as the process's memory until the kernel writes them
  back, which for a pool larger than memory is exactly what a bounded writer must avoid).
  Serials are the row numbers; NPY holds no labels, so `ssvae init` needs `--classes`.
- NPZ: members `x`, `ids` and `y` stored uncompressed (ZIP_STORED), each streamed into the
  archive chunk by chunk, so a reader can map `x` in place.
- Parquet: columns `id` (int64), `vector` (fixed_size_list<float32>[d]) and `label` (int64),
  in row groups of `--row-group` rows, written one group at a time.

`--unlabelled-fraction` keeps the true label on only part of the rows (-1 elsewhere: the
class is unknown), for a pool that is mostly unlabelled like a real one. Usage:

    .venv/bin/python benchmarks/synthetic_pool.py /tmp/pool.npz --rows 1000000
    .venv/bin/python benchmarks/synthetic_pool.py /tmp/pool.parquet --rows 10000000
    .venv/bin/ssvae init --vectors /tmp/pool.npz --preset text_standard
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt

BLOCK = 16_384  # rows per seeded block: the unit the generator is deterministic in
CHUNK = 65_536  # rows a writer holds at once (a multiple of BLOCK)


@attrs.frozen
class PoolSpec:
    """What to generate: rows, width, clusters, seed; the cluster spread relative to the gap
    between centres decides how separable the classes are."""

    rows: int
    dim: int = 384
    clusters: int = 20
    seed: int = 0
    spread: float = 0.6
    unlabelled_fraction: float = 0.0

    def centres(self) -> npt.NDArray[np.float32]:
        """The cluster centres, unit vectors in random directions (seeded)."""
        rng = np.random.default_rng([self.seed, 0xC3])
        centres = rng.standard_normal((self.clusters, self.dim))
        return (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)


@attrs.frozen(eq=False)
class Chunk:
    """Rows [start, start + len(ids)) of the pool."""

    ids: npt.NDArray[np.int64]
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]


def block_labels(spec: PoolSpec, index: int) -> npt.NDArray[np.int64]:
    """The labels of block `index` (-1: unknown), drawn apart from the vectors so that a
    writer can produce them without generating the vectors."""
    start = index * BLOCK
    count = min(start + BLOCK, spec.rows) - start
    rng = np.random.default_rng([spec.seed, 1, index])
    y = rng.integers(0, spec.clusters, count)
    if spec.unlabelled_fraction > 0:
        y = np.where(rng.random(count) < spec.unlabelled_fraction, -1, y)
    return y.astype(np.int64)


def block(spec: PoolSpec, index: int, centres: npt.NDArray[np.float32]) -> Chunk:
    """Block `index` of the pool: its rows depend only on the seed and the index."""
    start = index * BLOCK
    stop = min(start + BLOCK, spec.rows)
    labels = block_labels(spec, index)
    # The cluster of each row, also where its label is hidden.
    cluster = np.random.default_rng([spec.seed, 1, index]).integers(0, spec.clusters, stop - start)
    # Each centre is a unit vector; the noise per coordinate is spread / sqrt(d), so a row's
    # distance from its centre is about `spread` whatever the width.
    noise = np.random.default_rng([spec.seed, 2, index]).standard_normal(
        (stop - start, spec.dim), dtype=np.float32
    )
    x = centres[cluster] + noise * np.float32(spec.spread / np.sqrt(spec.dim))
    return Chunk(np.arange(start, stop, dtype=np.int64), x, labels)


def chunks(spec: PoolSpec, rows: int = CHUNK) -> Iterator[Chunk]:
    """The pool in order, `rows` rows at a time (a multiple of BLOCK; the last may be short)."""
    if rows % BLOCK:
        raise ValueError(f"chunk rows must be a multiple of {BLOCK}")
    centres = spec.centres()
    per_chunk = rows // BLOCK
    blocks = -(-spec.rows // BLOCK)
    for first in range(0, blocks, per_chunk):
        parts = [block(spec, i, centres) for i in range(first, min(first + per_chunk, blocks))]
        yield Chunk(
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
        )


def pool(spec: PoolSpec) -> Chunk:
    """The whole pool in memory (tests and small pools only)."""
    parts = list(chunks(spec))
    return Chunk(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
    )


# -- writers ---------------------------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    import io

    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def write_npy(path: Path, spec: PoolSpec, chunk_rows: int = CHUNK) -> None:
    with path.open("wb") as handle:
        handle.write(_npy_header((spec.rows, spec.dim), np.dtype(np.float32)))
        for chunk in chunks(spec, chunk_rows):
            handle.write(np.ascontiguousarray(chunk.x).tobytes())


def write_npz(path: Path, spec: PoolSpec, chunk_rows: int = CHUNK) -> None:
    """Members written one after another, each streamed: `x` chunk by chunk, then `ids` and
    `y` block by block (labels are drawn apart from the vectors, so they cost no vectors)."""
    blocks = range(-(-spec.rows // BLOCK))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((spec.rows, spec.dim), np.dtype(np.float32)))
            for chunk in chunks(spec, chunk_rows):
                member.write(np.ascontiguousarray(chunk.x).tobytes())
        with archive.open("ids.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((spec.rows,), np.dtype(np.int64)))
            for start in range(0, spec.rows, chunk_rows):
                stop = min(start + chunk_rows, spec.rows)
                member.write(np.arange(start, stop, dtype=np.int64).tobytes())
        with archive.open("y.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((spec.rows,), np.dtype(np.int64)))
            for index in blocks:
                member.write(block_labels(spec, index).tobytes())


def write_parquet(path: Path, spec: PoolSpec, row_group: int = CHUNK) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("vector", pa.list_(pa.float32(), spec.dim)),
            ("label", pa.int64()),
        ]
    )
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for chunk in chunks(spec, row_group):
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(chunk.x.reshape(-1)), spec.dim)
            table = pa.Table.from_arrays(
                [pa.array(chunk.ids), vectors, pa.array(chunk.y)], schema=schema
            )
            writer.write_table(table, row_group_size=row_group)


WRITERS = {".npy": write_npy, ".npz": write_npz, ".parquet": write_parquet, ".pq": write_parquet}


def write_pool(path: Path, spec: PoolSpec, chunk_rows: int = CHUNK) -> None:
    """The pool in the format of `path`'s suffix; `chunk_rows` is Parquet's row-group size."""
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise ValueError(f"{path}: unknown suffix; use one of {', '.join(WRITERS)}")
    writer(path, spec, chunk_rows)


def class_names(spec: PoolSpec) -> str:
    """The --classes value for a pool whose file holds no labels (NPY)."""
    return ",".join(str(c) for c in range(spec.clusters))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="output: .npy, .npz or .parquet")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=float, default=0.6)
    parser.add_argument("--unlabelled-fraction", type=float, default=0.0)
    parser.add_argument(
        "--row-group", type=int, default=CHUNK, help=f"rows per chunk (a multiple of {BLOCK})"
    )
    args = parser.parse_args(argv)
    spec = PoolSpec(
        rows=args.rows,
        dim=args.dim,
        clusters=args.clusters,
        seed=args.seed,
        spread=args.spread,
        unlabelled_fraction=args.unlabelled_fraction,
    )
    write_pool(args.path, spec, args.row_group)
    summary = {
        "path": str(args.path),
        "bytes": args.path.stat().st_size,
        **attrs.asdict(spec),
        "classes": class_names(spec),
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
