"""MNIST and Fashion-MNIST from their four IDX files: found locally, or downloaded and verified.

Files are searched in the given folders in order (gzipped or not), then in the download cache
`<cache_dir>/<name>/`. A file is checked against the known checksums: the md5 of the gzip file
as the mirrors distribute it, or the md5 of the uncompressed bytes, which also accepts a
recompressed copy such as the one shipped in this repository.

- gzip file whose compressed md5 matches: accepted.
- otherwise, a gzip file whose trailer (the CRC-32 and length of its uncompressed bytes, read
  without decompressing) is that of another built-in dataset's file is skipped: both datasets
  use the same file names, and the MNIST copy shipped here must not pass for Fashion-MNIST.
- otherwise, when the uncompressed md5 is known: accepted for now, checked when loaded (the
  bytes are decompressed then anyway, so `describe` reads headers only). A file that fails
  that check is skipped like the others and the search goes on (next folder, or download).
- otherwise, a gzip file with a known, different compressed md5 is skipped.
- no checksum known for the file's form: accepted on its IDX structure alone.

A folder that does not exist is refused rather than skipped, and `describe` says which files
came from which folder: a mistyped `--data-dir` must not pass silently for the embedded copy.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt

import ssvae.adapters
from ssvae.adapters.data.download import download_verified
from ssvae.adapters.data.idx import decode_idx, decompress, is_gzip, read_idx_shape
from ssvae.domain.data import DatasetInfo, Samples
from ssvae.domain.errors import DataError
from ssvae.domain.labels import ClassVocabulary

SPLIT_FILES: Mapping[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Keys are file names: "<stem>.gz" is the md5 of the gzip bytes as distributed by the mirrors
# (the ones torchvision checks), "<stem>" the md5 of the uncompressed IDX bytes.
MNIST_CHECKSUMS: Mapping[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
FASHION_MNIST_CHECKSUMS: Mapping[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    # Published by Zalando beside the gzip ones; Linux distributions ship recompressed copies.
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
# The gzip trailer of every copy of a file, however recompressed: the CRC-32 and length of the
# uncompressed bytes (those whose md5 is in MNIST_CHECKSUMS). Read from the last 8 bytes, it
# tells MNIST's files from Fashion-MNIST's without decompressing them.
MNIST_TRAILERS: Mapping[str, tuple[int, int]] = {
    "train-images-idx3-ubyte": (0xE9F4D8B3, 47040016),
    "train-labels-idx1-ubyte": (0xE0CB4AD2, 60008),
    "t10k-images-idx3-ubyte": (0x91373BDF, 7840016),
    "t10k-labels-idx1-ubyte": (0x4AB9EFF9, 10008),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)


@attrs.frozen
class IdxDataset:
    """What distinguishes one built-in IDX dataset from another."""

    title: str
    classes: tuple[str, ...]
    checksums: Mapping[str, str]
    mirrors: tuple[str, ...]
    trailers: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)


DATASETS: Mapping[str, IdxDataset] = {
    "mnist": IdxDataset(
        "MNIST", ClassVocabulary.digits().names, MNIST_CHECKSUMS, MNIST_MIRRORS, MNIST_TRAILERS
    ),
    "fashion_mnist": IdxDataset(
        "Fashion-MNIST", FASHION_MNIST_CLASSES, FASHION_MNIST_CHECKSUMS, FASHION_MNIST_MIRRORS
    ),
}


def embedded_data_dir() -> Path:
    """The repository's `data/mnist/` folder, which ships the MNIST files for offline use."""
    return Path(ssvae.adapters.__file__).resolve().parents[1] / "data" / "mnist"


def default_cache_dir() -> Path:
    """Where downloads go unless told otherwise."""
    return Path.home() / ".cache" / "ssvae"


@attrs.frozen
class _Located:
    """A file chosen for one stem, and whether its checksum is already confirmed."""

    path: Path
    verified: bool


class IdxDataSource:
    """A DataSource for MNIST or Fashion-MNIST: splits 'train' (the pool) and 'test'."""

    def __init__(
        self,
        name: str = "mnist",
        directories: Sequence[Path | str] = (),
        cache_dir: Path | str | None = None,
        download: bool = False,
        mirrors: Sequence[str] | None = None,
        checksums: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        if name not in DATASETS:
            raise DataError(f"dataset {name!r} is unknown: built-in ones are {', '.join(DATASETS)}")
        self.name = name
        self._dataset = DATASETS[name]
        self._directories = tuple(Path(d).expanduser() for d in directories)
        self._cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self._download = download
        self._mirrors = tuple(mirrors) if mirrors is not None else self._dataset.mirrors
        self._checksums = (
            dict(checksums) if checksums is not None else dict(self._dataset.checksums)
        )
        self._timeout = timeout
        self._lock = threading.RLock()
        self._located: dict[str, _Located] = {}
        # Files that failed their checksum on load: the search for their stem skips them.
        self._failed: dict[str, dict[Path, str]] = {}
        self._info: DatasetInfo | None = None
        self._arrays: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]] = {}

    @property
    def download_dir(self) -> Path:
        """The folder downloads of this dataset go to."""
        return self._cache / self.name

    def describe(self) -> DatasetInfo:
        """Shapes and sizes from the file headers; no image is decoded."""
        with self._lock:
            if self._info is None:
                self._info = self._read_info()
            return self._info

    def serials(self, split: str) -> npt.NDArray[np.int64]:
        """Row indices 0..n-1 of `split`."""
        return np.arange(self.describe().size(split), dtype=np.int64)

    def load(self, split: str, serials: npt.NDArray[np.int64] | None = None) -> Samples:
        """Images as float32 in [0, 1] with shape (n, height, width, 1) and their int64 labels."""
        info = self.describe()
        info.size(split)  # DataError for an unknown split
        images, labels = self._split_arrays(split)
        rows = self._rows(split, len(labels), serials)
        chosen = images if serials is None else images[rows]
        x = np.divide(chosen, np.float32(255.0), dtype=np.float32)
        return Samples(
            serials=rows,
            x=x[..., np.newaxis],
            y=(labels if serials is None else labels[rows]).astype(np.int64),
        )

    # -- reading -----------------------------------------------------------------------------

    def _read_info(self) -> DatasetInfo:
        sizes = []
        shape: tuple[int, ...] | None = None
        for split, (image_stem, label_stem) in SPLIT_FILES.items():
            image_path = self._locate(image_stem).path
            label_path = self._locate(label_stem).path
            count, height, width = _image_header(image_path)
            _label_header(label_path, count)
            if shape is not None and shape != (height, width, 1):
                raise DataError(
                    f"{image_path}: images are {height}x{width} but the train images are "
                    f"{shape[0]}x{shape[1]}; the files come from different datasets"
                )
            shape = (height, width, 1)
            sizes.append((split, count))
        assert shape is not None
        return DatasetInfo(
            name=self.name,
            sample_shape=shape,
            vocabulary=ClassVocabulary(self._dataset.classes),
            split_sizes=tuple(sizes),
            has_true_labels=True,
            kind="image",
            sources=self._sources(),
        )

    def _sources(self) -> tuple[str, ...]:
        """One line per folder: the files taken from it ('a.gz, b.gz from /folder')."""
        folders: dict[Path, list[str]] = {}
        for pair in SPLIT_FILES.values():
            for stem in pair:
                path = self._located[stem].path
                folders.setdefault(path.parent, []).append(path.name)
        return tuple(f"{', '.join(names)} from {folder}" for folder, names in folders.items())

    def _split_arrays(self, split: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        with self._lock:
            if split not in self._arrays:
                image_stem, label_stem = SPLIT_FILES[split]
                described = self.describe()
                images = self._read_verified(image_stem)
                labels = self._read_verified(label_stem)
                self._check_described(described, split, image_stem, images, labels)
                self._check_labels(label_stem, labels)
                self._arrays[split] = (images, labels)
            return self._arrays[split]

    def _read_verified(self, stem: str) -> npt.NDArray[np.uint8]:
        """The decoded file of `stem`, its checksum confirmed if it was not already.

        A file accepted for now that fails the check is skipped and the search goes on, so a
        file of the other dataset under the same name gives way to the right one.
        """
        while True:
            located = self._locate(stem)
            path = located.path
            data = _read_bytes(path)
            raw = decompress(data, path) if is_gzip(data) else data
            expected = self._checksums.get(stem)
            if located.verified or expected is None or _md5(raw) == expected:
                break
            self._failed.setdefault(stem, {})[path] = (
                f"its contents do not match the known {self._dataset.title} checksum: "
                "corrupt, or another dataset's file"
            )
            del self._located[stem]
            self._info = None  # the files come from elsewhere now
        array = decode_idx(raw, path)
        if array.dtype != np.uint8:
            raise DataError(f"{path}: IDX data is {array.dtype}, expected uint8")
        return array.astype(np.uint8, copy=False)

    def _check_described(
        self,
        described: DatasetInfo,
        split: str,
        image_stem: str,
        images: npt.NDArray[np.uint8],
        labels: npt.NDArray[np.uint8],
    ) -> None:
        """The files loaded hold what `describe` reported, even if one of them was replaced."""
        want = (described.size(split), *described.sample_shape[:2])
        if images.shape != want or labels.shape != want[:1]:
            raise DataError(
                f"{self._located[image_stem].path}: holds {images.shape[0]} images of "
                f"{images.shape[1:]} with {labels.shape[0]} labels, but the files first found "
                f"described {want[0]} images of {want[1:]}; put one dataset's four files in "
                "one folder given with --data-dir"
            )

    def _check_labels(self, stem: str, labels: npt.NDArray[np.uint8]) -> None:
        """Every label names a class (the headers were checked by `describe`)."""
        too_high = np.flatnonzero(labels >= len(self._dataset.classes))
        if too_high.size:
            row = int(too_high[0])
            raise DataError(
                f"{self._located[stem].path}: row {row} has label {int(labels[row])}, outside "
                f"0..{len(self._dataset.classes) - 1}; the file is corrupt or not "
                f"{self._dataset.title}"
            )

    @staticmethod
    def _rows(
        split: str, count: int, serials: npt.NDArray[np.int64] | None
    ) -> npt.NDArray[np.int64]:
        if serials is None:
            return np.arange(count, dtype=np.int64)
        rows = np.asarray(serials)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise DataError(
                f"serials must be a 1-D array of integers, got {rows.dtype} {rows.shape}"
            )
        rows = rows.astype(np.int64, copy=True)
        outside = np.flatnonzero((rows < 0) | (rows >= count))
        if outside.size:
            raise DataError(
                f"serial {int(rows[outside[0]])} is not in split {split!r} "
                f"(serials are 0..{count - 1})"
            )
        return rows

    # -- finding and downloading files -------------------------------------------------------

    def _folders(self) -> list[Path]:
        for folder in self._directories:
            if not folder.is_dir():
                what = "is not a folder" if folder.exists() else "does not exist"
                raise DataError(
                    f"data folder {folder} {what}; give the folder that holds the "
                    f"{self._dataset.title} files (--data-dir), or leave it out to use the "
                    "embedded copy"
                )
        folders = list(self._directories)
        if self.download_dir not in folders:
            folders.append(self.download_dir)
        return folders

    def _locate(self, stem: str) -> _Located:
        with self._lock:
            if stem not in self._located:
                self._located[stem] = self._find_or_fetch(stem)
            return self._located[stem]

    def _find_or_fetch(self, stem: str) -> _Located:
        failed = self._failed.get(stem, {})
        rejected = [f"{path} ({why})" for path, why in failed.items()]
        for folder in self._folders():
            for candidate in (folder / f"{stem}.gz", folder / stem):
                if not candidate.is_file() or candidate in failed:
                    continue
                verdict = self._identify(candidate, stem)
                if isinstance(verdict, _Located):
                    return verdict
                rejected.append(f"{candidate} ({verdict})")
        if self._download:
            return self._fetch(stem)
        raise DataError(self._missing_message(stem, rejected))

    def _identify(self, path: Path, stem: str) -> _Located | str:
        """The file as a candidate for `stem`, or why it cannot be one.

        A cheap check only: the md5 of the file as it is. A gzip file whose compressed md5
        is unknown or differs is accepted provisionally when the uncompressed md5 is known
        (checked on load, when the bytes are decompressed anyway).
        """
        gz_md5 = self._checksums.get(f"{stem}.gz")
        raw_md5 = self._checksums.get(stem)
        gzipped = _starts_with_gzip(path)
        if gzipped and gz_md5 is not None and _md5(_read_bytes(path)) == gz_md5:
            return _Located(path, verified=True)
        if gzipped:
            trailer = _gzip_trailer(path)
            for other in DATASETS.values():
                if other is not self._dataset and other.trailers.get(stem) == trailer:
                    return f"{other.title}'s {stem}, not {self._dataset.title}'s: its md5 differs"
        if raw_md5 is not None:
            return _Located(path, verified=False)
        if gzipped and gz_md5 is not None:
            return f"not {self._dataset.title}'s {stem}.gz: its md5 differs"
        return _Located(path, verified=True)  # no checksum known: structure checks only

    def _fetch(self, stem: str) -> _Located:
        file_name = f"{stem}.gz"
        urls = [mirror.rstrip("/") + "/" + file_name for mirror in self._mirrors]
        destination = self.download_dir / file_name
        download_verified(
            urls, destination, md5=self._checksums.get(file_name), timeout=self._timeout
        )
        return _Located(destination, verified=True)

    def _missing_message(self, stem: str, rejected: list[str]) -> str:
        looked = ", ".join(str(folder) for folder in self._folders())
        files = ", ".join(f"{stem}.gz" for pair in SPLIT_FILES.values() for stem in pair)
        unusable = f"; unusable: {'; '.join(rejected)}" if rejected else ""
        return (
            f"{self._dataset.title} file {stem}.gz (or uncompressed {stem}) not found in "
            f"{looked}{unusable}. Run with --download (setting data.download: true) to fetch "
            f"the files into {self.download_dir}, or put {files} in a folder given "
            f"with --data-dir"
        )


def _image_header(path: Path) -> tuple[int, int, int]:
    dtype, shape = read_idx_shape(path)
    if dtype != np.uint8 or len(shape) != 3:
        raise DataError(
            f"{path}: not an IDX image file (header says {dtype} with shape {shape}, "
            "expected uint8 images of shape (count, height, width))"
        )
    return shape[0], shape[1], shape[2]


def _label_header(path: Path, count: int) -> None:
    dtype, shape = read_idx_shape(path)
    if dtype != np.uint8 or len(shape) != 1:
        raise DataError(
            f"{path}: not an IDX label file (header says {dtype} with shape {shape}, "
            "expected a 1-D uint8 array)"
        )
    _label_shape(path, shape, count)


def _label_shape(path: Path, shape: tuple[int, ...], count: int) -> None:
    if shape != (count,):
        raise DataError(
            f"{path}: holds labels of shape {shape} but the images number {count}; "
            "the files do not belong together"
        )


def _starts_with_gzip(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return is_gzip(handle.read(2))
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None


def _gzip_trailer(path: Path) -> tuple[int, int] | None:
    """The CRC-32 and length (mod 2**32) of the uncompressed bytes, from the gzip trailer."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            if handle.tell() < 18:  # shorter than any gzip member: header and trailer
                return None
            handle.seek(-8, 2)
            trailer = handle.read(8)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    return int.from_bytes(trailer[:4], "little"), int.from_bytes(trailer[4:], "little")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
