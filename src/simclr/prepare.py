"""The prepare stage: every data source becomes the same prepared layout (``simclr.core.data``).

Sources: the embedded CIFAR-10 sample, CIFAR-10/100 and STL-10 (torchvision's copies), an image
folder (one sub-folder per class under train/ and test/, any images under unlabeled/), or an npz
file. Each source is first *planned*: its splits, their labels and a list of decode jobs of
``CHUNK`` images each. The jobs then run in worker processes (a bounded window of them in
flight) and each chunk, resized to ``data.image_size``, is appended to its ``.npy`` file and
hashed as it is written. Peak memory is therefore a few chunks per worker, whatever the number
of images: a folder or STL-10's 100k unlabeled images never sit decoded in memory. (npz and the
CIFAR copies are read into memory by their loaders; they are small.)

Atomic as before: everything is written into a temporary sibling folder that is renamed into
place at the end, so a killed prepare leaves the previous prepared folder as it was (the next
run removes the dead run's temporary folder).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simclr.core.config import DataParams
from simclr.core.data import SPLITS, UNLABELED, check_images, check_labels, sha256_file
from simclr.core.errors import DataError
from simclr.core.preflight import (
    NPZ_LABEL,
    STL10_FOLDER,
    check_npz,
    index_imagefolder,
    stl10_missing,
    wants_unlabeled,
)
from simclr.core.runtime import usable_cores

SAMPLE_FILE = "cifar10-sample.npz"  # in the folder dvc.yaml names (paths.sample)
CHUNK = 256  # images per decode job, fewer for large images:
CHUNK_BYTES = 8 << 20  # at most this much decoded image data per job
MAX_WORKERS = 8
STL10_SIDE = 96


# --------------------------------------------------------------------------------------------
# decode jobs (module level: they run in worker processes)
# --------------------------------------------------------------------------------------------
def fit(img, size: int) -> np.ndarray:
    """Resize the shorter side to `size`, then centre-crop to a square (a PIL image -> uint8 HWC)."""
    from PIL import Image

    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def fit_array(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[1] == size and x.shape[2] == size:
        return np.ascontiguousarray(x)
    from PIL import Image

    return np.stack([fit(Image.fromarray(img), size) for img in x])


def decode_files(files: list[str], size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                out[i] = fit(img.convert("RGB"), size)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"data.source imagefolder: cannot read image {f} ({exc})") from None
    return out


def read_stl10(path: str, start: int, stop: int, size: int) -> np.ndarray:
    """Images [start, stop) of an STL-10 binary file: uint8 3x96x96 each, stored column-major."""
    raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, STL10_SIDE, STL10_SIDE)
    return fit_array(raw[start:stop].transpose(0, 3, 2, 1), size)  # -> (n, H, W, 3)


# --------------------------------------------------------------------------------------------
# plans: what each source will write
# --------------------------------------------------------------------------------------------
@dataclass
class SplitPlan:
    name: str  # train | test | unlabeled
    count: int
    labels: np.ndarray | None  # int64 (count,); None for the unlabeled split
    jobs: list[Callable[[], np.ndarray]]  # in order; each returns the next chunk at the target size
    parallel: bool  # worth a worker process (decoding or resizing); False: a plain copy


@dataclass
class SourcePlan:
    source: str
    class_names: list[str]
    splits: list[SplitPlan]


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    step = max(1, min(CHUNK, CHUNK_BYTES // (size * size * 3)))
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _array_split(name: str, x: np.ndarray, labels: np.ndarray | None, size: int) -> SplitPlan:
    jobs = [functools.partial(fit_array, x[a:b], size) for a, b in _chunks(len(x), size)]
    return SplitPlan(name, len(x), labels, jobs, parallel=x.shape[1:3] != (size, size))


def _plan_npz(path: Path, label: str, params: DataParams) -> SourcePlan:
    index = check_npz(path, label, params)  # keys, headers and labels (check_params ran it too)
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = {split: archive[f"x_{split}"] for split in index.images}  # the splits it prepares
    except Exception as exc:
        raise DataError(f"{label}: {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return SourcePlan(label, index.class_names, [_array_split(split, x, index.labels.get(split), params.image_size)
                                                 for split, x in images.items()])


def _plan_torchvision(params: DataParams) -> SourcePlan:
    from torchvision import datasets

    name, root = params.source, Path(params.root)
    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    splits = []
    for split in SPLITS:
        try:
            ds = cls(root=str(root), train=split == "train", download=params.download)
        except RuntimeError as exc:
            if "not found" in str(exc).lower() or "download" in str(exc).lower():
                raise DataError(
                    f"data.source {name}: no copy under data.root={root} "
                    f"({cls.base_folder}/); set data.download: true or put the torchvision copy there"
                ) from None
            raise DataError(f"data.source {name}: {exc}") from None
        except OSError as exc:
            raise DataError(f"data.source {name}: download to {root} failed ({exc})") from None
        where = f"{root}/{cls.base_folder} {split}"
        x = check_images(np.asarray(ds.data), where)
        splits.append(_array_split(split, x, check_labels(np.asarray(ds.targets), len(x), len(ds.classes), where),
                                   params.image_size))
    return SourcePlan(name, list(ds.classes), splits)


def _plan_stl10(params: DataParams) -> SourcePlan:
    """torchvision's STL-10 copy (``data.root/stl10_binary``), read from its binary files directly so
    the 100k unlabeled images are memory-mapped, never loaded whole."""
    root = Path(params.root)
    folder = root / STL10_FOLDER
    if stl10_missing(params) and params.download:
        from torchvision import datasets

        try:
            datasets.STL10(root=str(root), split="test", download=True)  # fetches and unpacks every split
        except (OSError, RuntimeError) as exc:
            raise DataError(f"data.source stl10: download to {root} failed ({exc})") from None
    problem = stl10_missing(params)
    if problem:
        raise problem
    names = [n.strip() for n in (folder / "class_names.txt").read_text().splitlines() if n.strip()]
    image_bytes = 3 * STL10_SIDE * STL10_SIDE
    splits = []
    for split in (*SPLITS, UNLABELED) if wants_unlabeled(params) else SPLITS:
        path = folder / f"{split}_X.bin"
        size = path.stat().st_size
        if size == 0 or size % image_bytes:
            raise DataError(f"data.source stl10: {path} holds {size} bytes, not a whole number of "
                            f"3x{STL10_SIDE}x{STL10_SIDE} images; it is truncated or not STL-10")
        count = size // image_bytes
        labels = None
        if split != UNLABELED:  # labels 1..10 on disk
            raw = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
            labels = check_labels(raw, count, len(names), str(folder / f"{split}_y.bin"))
        jobs = [functools.partial(read_stl10, str(path), a, b, params.image_size)
                for a, b in _chunks(count, params.image_size)]
        splits.append(SplitPlan(split, count, labels, jobs, parallel=True))
    return SourcePlan("stl10", names, splits)


def _plan_imagefolder(params: DataParams) -> SourcePlan:
    index = index_imagefolder(params)  # the layout, checked (check_params ran it too)

    def file_split(name: str, files: list[Path]) -> SplitPlan:
        jobs = [functools.partial(decode_files, [str(f) for f in files[a:b]], params.image_size)
                for a, b in _chunks(len(files), params.image_size)]
        return SplitPlan(name, len(files), index.labels.get(name), jobs, parallel=True)

    return SourcePlan("imagefolder", index.class_names, [file_split(name, files) for name, files in index.files.items()])


def plan_source(params: DataParams, sample: Path) -> SourcePlan:
    """What the configured source will write, checked as far as it can be without decoding every image
    (the checks ``check_params`` runs first, simclr.core.preflight, and more)."""
    if params.source == "cifar10-sample":
        return _plan_npz(sample / SAMPLE_FILE, "cifar10-sample", params)
    if params.source == "npz":
        return _plan_npz(Path(params.root), NPZ_LABEL, params)
    if params.source in ("cifar10", "cifar100"):
        return _plan_torchvision(params)
    if params.source == "stl10":
        return _plan_stl10(params)
    return _plan_imagefolder(params)


# --------------------------------------------------------------------------------------------
# writing: chunks streamed into .npy files in a temporary folder, renamed into place
# --------------------------------------------------------------------------------------------
class NpyWriter:
    """A ``.npy`` file of known shape written chunk by chunk (byte-identical to ``np.save`` of the
    whole array), hashed as it goes."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype=np.uint8):
        self.path, self.shape, self.dtype, self.rows = path, shape, np.dtype(dtype), 0
        self.file = open(path, "wb")
        self.sha = hashlib.sha256()
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape})
        self._write(header.getvalue())

    def _write(self, data: bytes | memoryview) -> None:
        self.file.write(data)
        self.sha.update(data)

    def append(self, chunk: np.ndarray) -> None:
        if chunk.shape[1:] != self.shape[1:] or chunk.dtype != self.dtype:
            raise DataError(f"{self.path.name}: a chunk of shape {chunk.shape} {chunk.dtype}; expected "
                            f"(n, {', '.join(map(str, self.shape[1:]))}) {self.dtype}")
        self._write(memoryview(np.ascontiguousarray(chunk)).cast("B"))
        self.rows += len(chunk)

    def finish(self) -> dict:
        """Close the file; its manifest entry once every row was written."""
        self.file.close()
        if self.rows != self.shape[0]:
            raise DataError(f"{self.path.name}: {self.rows} images written; expected {self.shape[0]}")
        return {"sha256": self.sha.hexdigest(), "shape": list(self.shape), "dtype": str(self.dtype)}


def _worker_count() -> int:
    return max(1, min(usable_cores(), MAX_WORKERS))


def run_jobs(jobs: list[Callable[[], np.ndarray]], pool: ProcessPoolExecutor | None,
             window: int) -> Iterator[np.ndarray]:
    """Each job's chunk, in order; at most ``window`` jobs in flight, so finished chunks never pile up."""
    if pool is None:
        for job in jobs:
            yield job()
        return
    pending: deque = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise DataError("prepare: a decode worker process died (out of memory or killed); the previous "
                        "prepared data is untouched") from None


def _remove_dead_runs(out_dir: Path) -> None:
    """Temporary folders of prepares that were killed (their process is gone) are removed; a run killed
    between its two renames left the previous output as ``.NAME.old``: it goes back in place."""
    old = out_dir.with_name(f".{out_dir.name}.old")
    if old.is_dir() and not out_dir.exists():
        os.replace(old, out_dir)
    for tmp in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            continue


def write_prepared(plan: SourcePlan, image_size: int, out_dir: str | Path) -> dict:
    """Run the plan's jobs into ``out_dir`` atomically; returns the manifest."""
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_runs(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    workers = _worker_count()
    parallel = workers > 1 and sum(len(s.jobs) for s in plan.splits if s.parallel) > 1
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if parallel else None
    bar = tqdm(total=sum(s.count for s in plan.splits), desc="prepare", unit="img", dynamic_ncols=True, delay=1,
               mininterval=0.2 if sys.stderr.isatty() else 30)
    try:
        files = {}
        for split in plan.splits:
            writer = NpyWriter(tmp / f"{split.name}_x.npy", (split.count, image_size, image_size, 3))
            try:
                for chunk in run_jobs(split.jobs, pool if split.parallel else None, window=2 * workers):
                    writer.append(chunk)
                    bar.update(len(chunk))
            finally:
                writer.file.close()
            files[f"{split.name}_x.npy"] = writer.finish()
            if split.labels is not None:
                np.save(tmp / f"{split.name}_y.npy", split.labels)
                files[f"{split.name}_y.npy"] = {"sha256": sha256_file(tmp / f"{split.name}_y.npy"),
                                                "shape": list(split.labels.shape), "dtype": str(split.labels.dtype)}
        labelled = {s.name: s for s in plan.splits if s.labels is not None}
        manifest = {
            "source": plan.source,
            "class_names": plan.class_names,
            "image_size": [image_size, image_size],
            "images": {s.name: s.count for s in plan.splits},
            "counts": {
                name: {plan.class_names[c]: int(n)
                       for c, n in enumerate(np.bincount(s.labels, minlength=len(plan.class_names)))}
                for name, s in labelled.items()
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
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(params: DataParams, sample: Path, out: Path) -> str:
    """The prepare stage: plan the source, stream it into the prepared layout; returns a one-line summary."""
    manifest = write_prepared(plan_source(params, sample), params.image_size, out)
    counts = ", ".join(f"{n} {split}" for split, n in manifest["images"].items())
    return (f"prepare: {params.source} -> {out}: {counts}, {len(manifest['class_names'])} classes, "
            f"{manifest['image_size'][0]}x{manifest['image_size'][1]}")
