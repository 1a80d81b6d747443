"""What ``check_params`` checks about the data source before any stage runs.

Only what a directory listing, a zip index, the .npy headers and the label arrays show (decoding
every image is the prepare stage's job). Checking here matters because ``dvc repro`` deletes a
stage's outputs before it runs the stage: an error raised by prepare itself comes after
``data/prepared`` is gone from the workspace (``dvc checkout`` brings it back, and the error line
says so), while one raised here leaves every output where it was. The prepare stage runs the
same checks first (it plans from :func:`check_npz` and :func:`index_imagefolder`), so running it
alone gives the same line.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from simclr.core.config import DataParams
from simclr.core.data import PRETRAIN_SPLITS, SPLITS, UNLABELED, check_images, check_labels
from simclr.core.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
IMAGE_KINDS = ", ".join(sorted(IMAGE_SUFFIXES))  # for messages
STL10_FOLDER = "stl10_binary"
NPZ_LABEL = "data.source npz (data.root)"


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def wants_unlabeled(data: DataParams) -> bool:
    return UNLABELED in PRETRAIN_SPLITS[data.pretrain_on]


def no_unlabeled(where: str, data: DataParams) -> DataError:
    return DataError(f"data.pretrain_on = {data.pretrain_on} needs unlabeled images, but {where}; "
                     "add them or set data.pretrain_on: train")


def stl10_files(data: DataParams) -> list[str]:
    files = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt"]
    return files + (["unlabeled_X.bin"] if wants_unlabeled(data) else [])


def stl10_missing(data: DataParams) -> DataError | None:
    folder = Path(data.root) / STL10_FOLDER
    missing = [f for f in stl10_files(data) if not (folder / f).is_file()]
    if not missing:
        return None
    return DataError(f"data.source stl10: {folder} lacks {', '.join(missing)}; set data.download: true or put "
                     f"torchvision's STL-10 copy ({STL10_FOLDER}/) under data.root={data.root}")


def check_source(data: DataParams) -> dict[str, int] | None:
    """The source's folders and files are where ``data`` says, with unlabeled images if
    ``pretrain_on`` needs them; an npz's arrays and labels and an image folder's layout are checked
    too. Returns the number of images per split where the source tells it without decoding (npz,
    image folder), else None."""
    root = Path(data.root)
    if data.source == "imagefolder":
        return {split: len(files) for split, files in index_imagefolder(data).files.items()}
    if data.source == "npz":
        return check_npz(root, NPZ_LABEL, data).images
    if data.source == "stl10" and not data.download:
        problem = stl10_missing(data)
        if problem:
            raise problem
    return None


# --------------------------------------------------------------------------------------------
# image folder: the layout, from a listing
# --------------------------------------------------------------------------------------------
@dataclass
class FolderIndex:
    """An image folder's classes (train/'s sub-folders, sorted), each split's image files, and the
    labelled splits' labels."""

    class_names: list[str]
    files: dict[str, list[Path]]
    labels: dict[str, np.ndarray]


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    return sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if is_image(p))


def index_imagefolder(data: DataParams) -> FolderIndex:
    """train/<class>/*, test/<class>/* (classes of train/ only) and, when ``pretrain_on`` needs
    them, unlabeled/ (images at any depth): checked and listed, no image opened."""
    root = Path(data.root)
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(f"data.source imagefolder: {root / split} is not a folder; expected {root}/{split}/<class>/*")
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not class_names:
        raise DataError(f"data.source imagefolder: {root / 'train'} has no class folders")
    files, labels = {}, {}
    for split in SPLITS:
        present = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        unknown = [c for c in present if c not in class_names]
        if unknown:
            raise DataError(f"data.source imagefolder: {root / split / unknown[0]} is a class absent from {root / 'train'}")
        found_all, found_labels = [], []
        for label, name in enumerate(class_names):
            folder = root / split / name
            found = images_in(folder) if folder.is_dir() else []
            if not found and (split == "train" or folder.is_dir()):
                raise DataError(f"data.source imagefolder: {folder} has no images ({IMAGE_KINDS})")
            found_all += found
            found_labels += [label] * len(found)
        if not found_all:
            raise DataError(f"data.source imagefolder: {root / split} has no images; expected {root}/{split}/<class>/*")
        files[split], labels[split] = found_all, np.array(found_labels, dtype=np.int64)
    if wants_unlabeled(data):
        folder = root / UNLABELED
        if not folder.is_dir():
            raise no_unlabeled(f"{folder} is not a folder (images at any depth below it; folder names ignored)", data)
        files[UNLABELED] = images_in(folder, recursive=True)
        if not files[UNLABELED]:
            raise no_unlabeled(f"{folder} holds no images ({IMAGE_KINDS})", data)
    return FolderIndex(class_names, files, labels)


# --------------------------------------------------------------------------------------------
# npz: every array's header and the labels, no image read
# --------------------------------------------------------------------------------------------
NPZ_NEEDED = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class NpzIndex:
    """An npz checked as far as its headers and labels go: the images per split, each labelled
    split's int64 labels, and the class names (given, or 0..max label)."""

    images: dict[str, int]  # per split it will prepare (train, test, and unlabeled when pretrain_on uses it)
    labels: dict[str, np.ndarray]
    class_names: list[str]


def _npy_headers(path: Path) -> dict[str, SimpleNamespace]:
    """Each array's shape and dtype, read from its .npy header inside the zip."""
    headers = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if not name.endswith(".npy"):
                continue
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            headers[name[:-4]] = SimpleNamespace(shape=shape, dtype=dtype, ndim=len(shape))
    return headers


def _listed(first: np.ndarray, total: int) -> str:
    """The first few of ``total`` labels, and how many more."""
    shown = ", ".join(str(v) for v in first.tolist())
    return shown + (f" and {total - first.size} more" if total > first.size else "")


def check_inferred_classes(y_train: np.ndarray, y_test: np.ndarray, where: str) -> None:
    """Without class names the classes are 0..max label: each must have training images, and a
    test label that no training image has could never be predicted."""
    seen = np.unique(y_train)
    unseen = np.setdiff1d(np.unique(y_test), seen)
    if unseen.size:
        raise DataError(f"{where}: y_test holds label(s) {_listed(unseen[:8], unseen.size)} that no image of y_train has; "
                        "every test class needs training images")
    top = int(seen.max(initial=0))
    missing = top + 1 - seen.size  # labels of 0..top without a training image
    if missing:
        first = np.setdiff1d(np.arange(min(top + 1, seen.size + 8)), seen)[:8]  # 0..top may be huge: the first few
        raise DataError(f"{where}: without class_names the classes are the labels 0..{top}, but y_train has no image of "
                        f"{_listed(first, missing)}; relabel them 0..K-1 or add class_names")


def check_npz(path: Path, label: str, data: DataParams) -> NpzIndex:
    """The npz's keys, the image arrays' dtypes and shapes (from their headers) and the labels
    (loaded: they are small), checked without reading an image."""
    if not path.is_file():
        raise DataError(f"{label}: {path} does not exist")
    try:
        headers = _npy_headers(path)
    except Exception as exc:  # zipfile/format errors all mean the same to a user
        raise DataError(f"{label}: {path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in NPZ_NEEDED if k not in headers]
    if missing:
        raise DataError(f"{label}: {path} lacks key(s) {', '.join(missing)}; expected x_train, y_train, x_test, y_test"
                        " (and optionally class_names, x_unlabeled)")
    if wants_unlabeled(data) and "x_unlabeled" not in headers:
        raise no_unlabeled(f"{path} has no x_unlabeled array", data)
    for split in SPLITS:
        check_images(headers[f"x_{split}"], f"{path}:x_{split}/y_{split}")
    if wants_unlabeled(data):
        check_images(headers["x_unlabeled"], f"{path}:x_unlabeled")
    try:
        with np.load(path, allow_pickle=False) as archive:
            raw = {split: archive[f"y_{split}"] for split in SPLITS}
            names = [str(c) for c in archive["class_names"]] if "class_names" in headers else None
    except Exception as exc:
        raise DataError(f"{label}: {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    # without names the classes are the labels 0..max (a label that is no integer is check_labels' to name)
    top = max((int(raw[s].max(initial=0)) for s in SPLITS if np.issubdtype(raw[s].dtype, np.integer)), default=0)
    labels = {split: check_labels(raw[split], headers[f"x_{split}"].shape[0], len(names) if names else top + 1,
                                  f"{path}:x_{split}/y_{split}") for split in SPLITS}
    if names is None:
        check_inferred_classes(labels["train"], labels["test"], f"{path}:y_train/y_test")
        names = [str(i) for i in range(top + 1)]
    images = [*SPLITS, *([UNLABELED] if wants_unlabeled(data) else [])]
    return NpzIndex({split: headers[f"x_{split}"].shape[0] for split in images}, labels, names)
