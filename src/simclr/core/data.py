"""The prepared dataset every stage after ``prepare`` reads (``simclr.prepare`` writes it).

Layout (written atomically by the prepare stage)::

    train_x.npy      uint8 (N, H, W, 3)  RGB, HWC   the labelled train split
    train_y.npy      int64 (N,)
    test_x.npy       uint8 (M, H, W, 3)             the labelled test split
    test_y.npy       int64 (M,)
    unlabeled_x.npy  uint8 (U, H, W, 3)             only when data.pretrain_on uses it
    manifest.json    source, class names, image counts per split, per-class counts, shapes,
                     sha256 of each array file

Stages memory-map the arrays, so the prepared set need not fit in RAM; :class:`ImageRows`
joins several of them (train + unlabeled, a seeded subset) without copying.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simclr.core.errors import DataError

SPLITS = ("train", "test")  # the labelled splits: probes, kNN and fine-tuning use only these
UNLABELED = "unlabeled"
PRETRAIN_SPLITS = {"train": ("train",), "unlabeled": (UNLABELED,), "train+unlabeled": ("train", UNLABELED)}


@dataclass
class Split:
    x: np.ndarray  # uint8 (N, H, W, 3)
    y: np.ndarray  # int64 (N,)


@dataclass
class Dataset:
    train: Split
    test: Split
    class_names: list[str]
    source: str
    unlabeled: np.ndarray | None = None  # uint8 (U, H, W, 3); None: not prepared

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def images(self, split: str) -> np.ndarray:
        if split == UNLABELED:
            if self.unlabeled is None:
                raise DataError("the prepared data has no unlabeled split; rerun the prepare stage "
                                "(dvc repro prepare) with a data.pretrain_on that uses it")
            return self.unlabeled
        return getattr(self, split).x


class ImageRows:
    """Rows of one or more uint8 image arrays, indexed as one ``(N, H, W, 3)`` array without copying
    them: pretraining draws from train + unlabeled (or a seeded subset) while both stay memory-mapped,
    so memory does not grow with the dataset. ``rows[idx]`` (an int array) reads only those images."""

    def __init__(self, arrays: list[np.ndarray], rows: np.ndarray | None = None):
        self.arrays = arrays
        self.offsets = np.cumsum([0] + [len(a) for a in arrays])
        self.rows = np.arange(self.offsets[-1]) if rows is None else np.asarray(rows)
        self.shape = (len(self.rows), *arrays[0].shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        rows = self.rows[idx]
        if len(self.arrays) == 1:
            return self.arrays[0][rows]
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        for k, array in enumerate(self.arrays):
            mask = which == k
            if mask.any():
                out[mask] = array[rows[mask] - self.offsets[k]]
        return out

    def subset(self, size: int, seed: int) -> ImageRows:
        """A fixed seeded subset of ``size`` rows, in their original order (0 or more than there are: all)."""
        if not size or size >= len(self):
            return self
        return ImageRows(self.arrays, self.rows[np.sort(np.random.default_rng(seed).permutation(len(self))[:size])])


def class_balanced_rows(y: np.ndarray, fraction: float, num_classes: int, seed: int | tuple[int, ...],
                        leave: int = 0) -> np.ndarray:
    """Sorted rows of a seeded class-balanced subset: ``max(1, round(fraction * n_c))`` of each class's
    n_c images, leaving at least ``leave`` of each class out. The same seed gives nested subsets."""
    rows = []
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        take = min(max(1, round(fraction * len(members))), len(members) - leave)
        if take > 0:
            rows.append(np.random.default_rng([*np.atleast_1d(seed), c]).permutation(members)[:take])
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def validation_split(y: np.ndarray, fraction: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(probe-train rows, validation rows) of the labelled train split: the validation rows are a seeded
    class-balanced ``fraction`` (drawn with the key (seed, 1, class), not finetune's (seed, class), so the
    validation images of a class are not finetune's labelled images of it), and every class keeps at least
    one image to train on. The two are disjoint and cover the split."""
    val = class_balanced_rows(y, fraction, num_classes, (seed, 1), leave=1)
    return np.setdiff1d(np.arange(len(y)), val), val


def images_per_split(manifest: dict) -> dict[str, int]:
    """A prepared manifest's image count per split (older manifests have only per-class counts)."""
    return manifest.get("images") or {split: sum(c.values()) for split, c in manifest["counts"].items()}


def pretraining_count(images: dict[str, int], pretrain_on: str, train_images: int) -> int:
    """How many images pretraining draws from: the ``pretrain_on`` splits of ``images`` (per split),
    or ``pretrain.train_images`` of them (0: all)."""
    total = sum(images.get(split, 0) for split in PRETRAIN_SPLITS[pretrain_on])
    return min(total, train_images) if train_images else total


def check_batch_fits(batch_size: int, images: int, pretrain_on: str) -> None:
    """A global batch no larger than the images: at least one step per epoch."""
    if images // batch_size == 0:
        raise DataError(f"batch_size = {batch_size} is larger than the {images} images pretraining draws from "
                        f"(data.pretrain_on: {pretrain_on}); lower batch_size")


def pretrain_images(data: Dataset, pretrain_on: str) -> ImageRows:
    """The images pretraining draws from (``data.pretrain_on``), labels unused."""
    return ImageRows([data.images(split) for split in PRETRAIN_SPLITS[pretrain_on]])


# --------------------------------------------------------------------------------------------
# validation shared by all sources
# --------------------------------------------------------------------------------------------
def check_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images have dtype {x.dtype}; expected uint8")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"{where}: images have shape {tuple(x.shape)}; expected (N, H, W, 3) RGB")
    if x.shape[0] == 0:
        raise DataError(f"{where}: no images")
    return x


def check_labels(y, n: int, num_classes: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{where}: labels have shape {tuple(y.shape)}; expected ({n},) to match the images")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels have dtype {y.dtype}; expected integers")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: label {int(y[i])} at index {i} is out of range; expected 0..{num_classes - 1}")
    return y.astype(np.int64)


def check_arrays(x: np.ndarray, y: np.ndarray, num_classes: int, where: str) -> Split:
    """Check one labelled split's arrays; `where` names the file/key in the error."""
    check_images(x, where)
    return Split(x=x, y=check_labels(y, x.shape[0], num_classes, where))


# --------------------------------------------------------------------------------------------
# the prepared layout
# --------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_prepared(prepared_dir: str | Path, verify: bool = True) -> Dataset:
    """Memory-map a prepared dataset; checks the manifest's shapes and (by default) checksums."""
    d = Path(prepared_dir)
    manifest_path = d / "manifest.json"
    rerun = "rerun the prepare stage (dvc repro prepare)"
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path} does not exist; run the prepare stage first (dvc repro prepare)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        class_names = list(manifest["class_names"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path} is malformed ({type(exc).__name__}); {rerun}") from None
    arrays = {}
    for name, info in files.items():
        path = d / name
        if not path.is_file():
            raise DataError(f"{path} is missing; {rerun}")
        if verify and sha256_file(path) != info["sha256"]:
            raise DataError(f"{path} does not match its checksum in {manifest_path}; {rerun}")
        try:
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path} is not a readable .npy file ({type(exc).__name__}); {rerun}") from None
        if list(arrays[name].shape) != info["shape"]:
            raise DataError(f"{path} has shape {arrays[name].shape}; the manifest says {info['shape']}; {rerun}")
    missing = [f"{s}_{k}.npy" for s in SPLITS for k in "xy" if f"{s}_{k}.npy" not in arrays]
    if missing:
        raise DataError(f"{manifest_path} lists no {', '.join(missing)}; {rerun}")
    splits = {
        s: check_arrays(arrays[f"{s}_x.npy"], np.asarray(arrays[f"{s}_y.npy"]), len(class_names), str(d / f"{s}_*.npy"))
        for s in SPLITS
    }
    unlabeled = arrays.get(f"{UNLABELED}_x.npy")
    if unlabeled is not None:
        check_images(unlabeled, str(d / f"{UNLABELED}_x.npy"))
    return Dataset(train=splits["train"], test=splits["test"], class_names=class_names, source=manifest["source"],
                   unlabeled=unlabeled)
