"""What ``check_params`` checks about the data source before any stage runs.

Only what a directory listing or a zip index shows (decoding every image is the prepare stage's
job). Checking here matters because ``dvc repro`` deletes a stage's outputs before it runs the
stage: an error raised by prepare itself comes after ``data/prepared`` is gone from the workspace
(``dvc checkout`` brings it back), while one raised here leaves every output where it was. The
prepare stage runs the same checks first, so running it alone gives the same line.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from simclr.core.config import DataParams
from simclr.core.data import PRETRAIN_SPLITS, SPLITS, UNLABELED
from simclr.core.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
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


def check_source(data: DataParams) -> None:
    """The source's folders and files are where ``data`` says, with unlabeled images if ``pretrain_on`` needs them."""
    root = Path(data.root)
    if data.source == "imagefolder":
        for split in SPLITS:
            if not (root / split).is_dir():
                raise DataError(f"data.source imagefolder: {root / split} is not a folder; "
                                f"expected {root}/{split}/<class>/*")
        if wants_unlabeled(data):
            folder = root / UNLABELED
            if not folder.is_dir():
                raise no_unlabeled(f"{folder} is not a folder (images at any depth below it; folder names "
                                   "ignored)", data)
            if not any(is_image(p) for p in folder.rglob("*")):
                raise no_unlabeled(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})", data)
    elif data.source == "npz":
        if not root.is_file():
            raise DataError(f"{NPZ_LABEL}: {root} does not exist")
        if wants_unlabeled(data):
            try:
                with zipfile.ZipFile(root) as z:
                    names = set(z.namelist())
            except (zipfile.BadZipFile, OSError):
                return  # not readable: prepare says so, with the details
            if "x_unlabeled.npy" not in names:
                raise no_unlabeled(f"{root} has no x_unlabeled array", data)
    elif data.source == "stl10" and not data.download:
        problem = stl10_missing(data)
        if problem:
            raise problem
