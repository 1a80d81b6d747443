"""The prepared dataset every stage after ``prepare`` reads (``simclr.prepare`` writes it).

Layout (written atomically by the prepare stage)::

    train_x.npy  uint8 (N, H, W, 3)  RGB, HWC
    train_y.npy  int64 (N,)
    test_x.npy   uint8 (M, H, W, 3)
    test_y.npy   int64 (M,)
    manifest.json  source, class names, per-class counts, shapes, sha256 of each array file

Stages memory-map the arrays, so the prepared set need not fit in RAM.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simclr.core.errors import DataError

SPLITS = ("train", "test")


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

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# --------------------------------------------------------------------------------------------
# validation shared by all sources
# --------------------------------------------------------------------------------------------
def check_arrays(x: np.ndarray, y: np.ndarray, num_classes: int, where: str) -> Split:
    """Check one split's arrays; `where` names the file/key in the error."""
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images have dtype {x.dtype}; expected uint8")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"{where}: images have shape {tuple(x.shape)}; expected (N, H, W, 3) RGB")
    if x.shape[0] == 0:
        raise DataError(f"{where}: no images")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"{where}: labels have shape {tuple(y.shape)}; expected ({x.shape[0]},) to match the images"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels have dtype {y.dtype}; expected integers")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: label {int(y[i])} at index {i} is out of range; expected 0..{num_classes - 1}"
        )
    return Split(x=x, y=y.astype(np.int64))



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
    splits = {
        s: check_arrays(arrays[f"{s}_x.npy"], np.asarray(arrays[f"{s}_y.npy"]), len(class_names), str(d / f"{s}_*.npy"))
        for s in SPLITS
    }
    return Dataset(train=splits["train"], test=splits["test"], class_names=class_names, source=manifest["source"])


