"""The prepare stage: every data source becomes the same prepared layout (``simclr.core.data``).

Sources: the embedded CIFAR-10 sample, CIFAR-10/100 through torchvision, an image folder
(one sub-folder per class under train/ and test/), or an npz file; each is checked, resized to
``data.image_size`` and written atomically (a temporary sibling folder renamed into place).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from simclr.core.config import DataParams
from simclr.core.data import SPLITS, Dataset, check_arrays, sha256_file
from simclr.core.errors import DataError

SAMPLE_FILE = "cifar10-sample.npz"  # in the folder dvc.yaml names (paths.sample)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def _resize_all(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[1] == size and x.shape[2] == size:
        return x
    from PIL import Image

    return np.stack([_fit(Image.fromarray(img), size) for img in x])


def _fit(img, size: int) -> np.ndarray:
    """Resize the shorter side to `size`, then centre-crop to a square."""
    from PIL import Image

    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------
def _load_npz(path: Path, label: str) -> Dataset:
    if not path.is_file():
        raise DataError(f"{label}: {path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
        keys = set(archive.files)
    except Exception as exc:  # zipfile/pickle/format errors all mean the same to a user
        raise DataError(f"{label}: {path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    needed = ["x_train", "y_train", "x_test", "y_test"]
    missing = [k for k in needed if k not in keys]
    if missing:
        raise DataError(
            f"{label}: {path} lacks key(s) {', '.join(missing)}; expected x_train, y_train, x_test, y_test"
            " (and optionally class_names)"
        )
    try:
        arrays = {k: archive[k] for k in needed}
        names = [str(c) for c in archive["class_names"]] if "class_names" in keys else None
    except Exception as exc:
        raise DataError(f"{label}: {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    if names is None:
        top = max(int(arrays["y_train"].max(initial=0)), int(arrays["y_test"].max(initial=0)))
        names = [str(i) for i in range(top + 1)]
    train = check_arrays(arrays["x_train"], arrays["y_train"], len(names), f"{path}:x_train/y_train")
    test = check_arrays(arrays["x_test"], arrays["y_test"], len(names), f"{path}:x_test/y_test")
    return Dataset(train=train, test=test, class_names=names, source=label)


def _load_torchvision(name: str, root: Path, download: bool) -> Dataset:
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    splits = {}
    for split in SPLITS:
        try:
            ds = cls(root=str(root), train=split == "train", download=download)
        except RuntimeError as exc:
            if "not found" in str(exc).lower() or "download" in str(exc).lower():
                raise DataError(
                    f"data.source {name}: no copy under data.root={root} "
                    f"({cls.base_folder}/); set data.download: true or put the torchvision copy there"
                ) from None
            raise DataError(f"data.source {name}: {exc}") from None
        except OSError as exc:
            raise DataError(f"data.source {name}: download to {root} failed ({exc})") from None
        splits[split] = check_arrays(
            np.asarray(ds.data), np.asarray(ds.targets), len(ds.classes), f"{root}/{cls.base_folder} {split}"
        )
    return Dataset(train=splits["train"], test=splits["test"], class_names=list(ds.classes), source=name)


def _load_imagefolder(root: Path, size: int) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(f"data.source imagefolder: {root / split} is not a folder; expected {root}/{split}/<class>/*")
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not class_names:
        raise DataError(f"data.source imagefolder: {root / 'train'} has no class folders")
    splits = {}
    for split in SPLITS:
        present = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        unknown = [c for c in present if c not in class_names]
        if unknown:
            raise DataError(
                f"data.source imagefolder: {root / split / unknown[0]} is a class absent from {root / 'train'}"
            )
        xs, ys = [], []
        for label, name in enumerate(class_names):
            folder = root / split / name
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
            if not files and (split == "train" or folder.is_dir()):
                raise DataError(f"data.source imagefolder: {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            for f in files:
                try:
                    with Image.open(f) as img:
                        xs.append(_fit(img.convert("RGB"), size))
                except (UnidentifiedImageError, OSError, ValueError) as exc:
                    raise DataError(f"data.source imagefolder: cannot read image {f} ({exc})") from None
                ys.append(label)
        splits[split] = check_arrays(np.stack(xs), np.array(ys), len(class_names), f"{root / split}")
    return Dataset(train=splits["train"], test=splits["test"], class_names=class_names, source="imagefolder")


def load_source(params: DataParams, sample: Path) -> Dataset:
    """Read the configured source into memory, checked, at `params.image_size`."""
    root = Path(params.root)
    if params.source == "cifar10-sample":
        ds = _load_npz(sample / SAMPLE_FILE, "cifar10-sample")
    elif params.source == "npz":
        ds = _load_npz(root, "data.source npz (data.root)")
    elif params.source in ("cifar10", "cifar100"):
        ds = _load_torchvision(params.source, root, params.download)
    elif params.source == "imagefolder":
        return _load_imagefolder(root, params.image_size)
    else:  # params validation makes this unreachable
        raise DataError(f"unknown data.source {params.source!r}")
    for split in (ds.train, ds.test):
        split.x = _resize_all(split.x, params.image_size)
    return ds


def write_prepared(ds: Dataset, out_dir: str | Path) -> dict:
    """Write `ds` to `out_dir` atomically; returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        files = {}
        for split_name, split in (("train", ds.train), ("test", ds.test)):
            for suffix, arr in (("x", np.ascontiguousarray(split.x)), ("y", split.y)):
                name = f"{split_name}_{suffix}.npy"
                np.save(tmp / name, arr)
                files[name] = {"sha256": sha256_file(tmp / name), "shape": list(arr.shape), "dtype": str(arr.dtype)}
        manifest = {
            "source": ds.source,
            "class_names": ds.class_names,
            "image_size": list(ds.train.x.shape[1:3]),
            "counts": {
                s: {ds.class_names[c]: int(n) for c, n in enumerate(np.bincount(sp.y, minlength=ds.num_classes))}
                for s, sp in (("train", ds.train), ("test", ds.test))
            },
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def prepare(params: DataParams, sample: Path, out: Path) -> str:
    """The prepare stage: read the source, write the prepared layout; returns a one-line summary."""
    manifest = write_prepared(load_source(params, sample), out)
    counts = {s: sum(c.values()) for s, c in manifest["counts"].items()}
    return (f"prepare: {params.source} -> {out}: {counts['train']} train, {counts['test']} test, "
            f"{len(manifest['class_names'])} classes, {manifest['image_size'][0]}x{manifest['image_size'][1]}")
