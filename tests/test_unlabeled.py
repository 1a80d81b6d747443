"""Unlabeled images and the streaming prepare: every source's unlabeled split, data.pretrain_on,
the STL-10 binary layout, chunks written straight into the arrays, and a kill mid-prepare."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
from support import ROOT, make_npz, stage_command
from test_data import assert_one_error, prepare, write_params

from simclr.core.data import ImageRows, load_prepared
from simclr.prepare import CHUNK, STL10_SIDE


def make_photos(root, train=3, test=2, unlabeled=0, size=(20, 14)):
    """train/<class>/, test/<class>/ and (if asked) unlabeled/ with images in nested folders."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", train), ("test", test)):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
                    root / split / c / f"{i}.png")
    for i in range(unlabeled):
        folder = root / "unlabeled" / f"roll{i % 3}" / ("day" if i % 2 else "night")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.jpg")


def test_imagefolder_unlabeled_split_streams_through_worker_processes(tmp_path):
    n = 2 * CHUNK + 37  # three chunks: the decode pool runs
    make_photos(tmp_path / "photos", unlabeled=n)
    (tmp_path / "photos/unlabeled/notes.txt").write_text("not an image: ignored")
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "photos"), image_size=16,
                 pretrain_on="train+unlabeled")
    out = prepare(tmp_path)
    assert f"6 train, 4 test, {n} unlabeled" in out.stdout
    manifest = json.loads((tmp_path / "prepared/manifest.json").read_text())
    assert manifest["images"] == {"train": 6, "test": 4, "unlabeled": n}
    assert manifest["counts"] == {"train": {"cat": 3, "dog": 3}, "test": {"cat": 2, "dog": 2}}
    ds = load_prepared(tmp_path / "prepared")
    assert ds.unlabeled.shape == (n, 16, 16, 3) and ds.class_names == ["cat", "dog"]  # folder names ignored
    # every chunk landed where it belongs: image k of the sorted file list is row k
    files = sorted(p for p in (tmp_path / "photos/unlabeled").rglob("*.jpg"))
    from simclr.prepare import decode_files

    for k in (0, CHUNK, n - 1):
        assert np.array_equal(ds.unlabeled[k], decode_files([str(files[k])], 16)[0])


def test_pretrain_on_train_leaves_the_unlabeled_folder_out(tmp_path):
    make_photos(tmp_path / "photos", unlabeled=5)
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "photos"), image_size=16)
    prepare(tmp_path)
    assert load_prepared(tmp_path / "prepared").unlabeled is None
    assert "unlabeled" not in json.loads((tmp_path / "prepared/manifest.json").read_text())["images"]


def test_missing_unlabeled_folder_is_one_error_and_the_previous_output_stays(tmp_path):
    make_photos(tmp_path / "photos")
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "photos"), image_size=16)
    prepare(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()}
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "photos"), image_size=16, pretrain_on="unlabeled")
    assert_one_error(prepare(tmp_path, check=False), "data.pretrain_on = unlabeled needs unlabeled images",
                     "photos/unlabeled is not a folder", "data.pretrain_on: train")
    (tmp_path / "photos/unlabeled").mkdir()
    assert_one_error(prepare(tmp_path, check=False), "photos/unlabeled holds no images")
    assert {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".prepared")] == []


def test_a_source_without_unlabeled_images_is_a_params_error(tmp_path):
    write_params(tmp_path, source="cifar10-sample", pretrain_on="train+unlabeled")
    assert_one_error(prepare(tmp_path, check=False),
                     "params.yaml: data.pretrain_on = 'train+unlabeled' is not allowed; expected train: "
                     "data.source cifar10-sample has no unlabeled images")


def test_npz_x_unlabeled(tmp_path):
    extra = np.load(ROOT / "data/cifar10-sample/cifar10-sample.npz")["x_train"][1000:1300]
    path = make_npz(tmp_path / "u.npz", x_unlabeled=extra)
    write_params(tmp_path, source="npz", root=str(path), pretrain_on="unlabeled")
    prepare(tmp_path)
    ds = load_prepared(tmp_path / "prepared")
    assert np.array_equal(ds.unlabeled, extra)
    # identical to np.save of the whole array: the streamed file is a plain .npy
    np.save(tmp_path / "ref.npy", extra)
    assert (tmp_path / "prepared/unlabeled_x.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    manifest = json.loads((tmp_path / "prepared/manifest.json").read_text())
    assert manifest["files"]["unlabeled_x.npy"]["sha256"] == hashlib.sha256((tmp_path / "ref.npy").read_bytes()).hexdigest()

    write_params(tmp_path, source="npz", root=str(make_npz(tmp_path / "plain.npz")), pretrain_on="unlabeled")
    assert_one_error(prepare(tmp_path, check=False), "plain.npz has no x_unlabeled array")
    bad = make_npz(tmp_path / "bad.npz", x_unlabeled=np.zeros((4, 32, 32), np.uint8))
    write_params(tmp_path, source="npz", root=str(bad), pretrain_on="train+unlabeled")
    assert_one_error(prepare(tmp_path, check=False), "bad.npz:x_unlabeled", "expected (N, H, W, 3)")


def write_stl10(root, train=6, test=4, unlabeled=5):
    """STL-10's binary layout: uint8 3x96x96 column-major images, labels 1..10, class_names.txt."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    images = {}
    for split, n in (("train", train), ("test", test), ("unlabeled", unlabeled)):
        hwc = rng.integers(0, 255, (n, STL10_SIDE, STL10_SIDE, 3), dtype=np.uint8)
        hwc[:, :10, :40] = (255, 0, 0)  # a red band at the top left: tells rows from columns
        hwc.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")
        images[split] = hwc
        if split != "unlabeled":
            (np.arange(n) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return images, names


def test_stl10_binary_copy(tmp_path):
    images, names = write_stl10(tmp_path / "raw")
    write_params(tmp_path, source="stl10", root=str(tmp_path / "raw"), image_size=96, pretrain_on="train+unlabeled")
    prepare(tmp_path)
    ds = load_prepared(tmp_path / "prepared")
    assert ds.class_names == names and ds.unlabeled.shape == (5, 96, 96, 3)
    assert np.array_equal(ds.train.x, images["train"]) and np.array_equal(ds.unlabeled, images["unlabeled"])
    assert ds.train.y.tolist() == [0, 1, 2, 3, 4, 5]  # 1-based on disk
    write_params(tmp_path, source="stl10", root=str(tmp_path / "raw"), image_size=48)
    prepare(tmp_path)
    small = load_prepared(tmp_path / "prepared").test.x
    assert small.shape == (4, 48, 48, 3) and tuple(small[0, 1, 1]) == (255, 0, 0)


def test_stl10_errors(tmp_path):
    write_params(tmp_path, source="stl10", root=str(tmp_path / "raw"), download=False)
    assert_one_error(prepare(tmp_path, check=False), "stl10_binary lacks train_X.bin", "data.download: true")
    write_stl10(tmp_path / "raw")
    with open(tmp_path / "raw/stl10_binary/test_X.bin", "ab") as f:
        f.write(b"\0" * 100)
    assert_one_error(prepare(tmp_path, check=False), "test_X.bin holds", "truncated or not STL-10")


def test_image_rows_joins_arrays_without_copying_them():
    a = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    b = 100 + np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    rows = ImageRows([a, b])
    assert len(rows) == 8 and rows.shape == (8, 2, 2, 3)
    assert np.array_equal(rows[np.array([7, 0, 5, 4])], np.stack([b[2], a[0], b[0], a[4]]))
    sub = rows.subset(4, seed=3)
    expected = np.sort(np.random.default_rng(3).permutation(8)[:4])  # the seeded subset pretraining has always used
    assert np.array_equal(sub[np.arange(4)], np.concatenate([a, b])[expected])
    assert rows.subset(0, seed=3) is rows and rows.subset(99, seed=3) is rows


def test_a_killed_prepare_leaves_the_previous_output_and_the_next_run_cleans_up(tmp_path):
    make_photos(tmp_path / "photos")
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "photos"), image_size=16)
    prepare(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()}
    make_photos(tmp_path / "photos", unlabeled=3000, size=(160, 120))
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "photos"), image_size=96,
                 pretrain_on="train+unlabeled")
    cmd = stage_command("prepare", scripts=ROOT, prepared=tmp_path / "prepared")
    proc = subprocess.Popen([sys.executable, *cmd[1:]], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob(".prepared.tmp-*/train_x.npy")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "prepare ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the stage and its decode workers, as an OOM kill or power loss would
    proc.wait()
    assert any(tmp_path.glob(".prepared.tmp-*"))  # the dead run's half-written folder ...
    assert {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()} == before  # ... never replaced this
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "photos"), image_size=16)
    prepare(tmp_path)
    assert not any(tmp_path.glob(".prepared.tmp-*"))
