"""The prepare stage on every source kind, and one clear error per kind of bad data."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from support import ROOT, make_npz, run, stage_command

from simclr.core.data import load_prepared


def write_params(tmp_path, **data):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))


def prepare(tmp_path, check=True):
    return run(stage_command("prepare", scripts=ROOT, prepared=tmp_path / "prepared"), cwd=tmp_path, check=check)


def check_params(tmp_path):
    """The check_params stage (no dvc.lock here: the source is checked)."""
    return run(["python", str(ROOT / "stages/check_params.py")], cwd=tmp_path, check=False)


def assert_one_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for f in fragments:
        assert f in lines[0]


def test_embedded_sample_is_stratified_and_matches_its_card():
    ds = np.load(ROOT / "data/cifar10-sample/cifar10-sample.npz")
    assert ds["x_train"].shape == (5000, 32, 32, 3) and ds["x_test"].shape == (1000, 32, 32, 3)
    assert np.bincount(ds["y_train"]).tolist() == [500] * 10
    assert np.bincount(ds["y_test"]).tolist() == [100] * 10
    card = (ROOT / "data/cifar10-sample/DATACARD.md").read_text()
    import hashlib

    assert hashlib.sha256((ROOT / "data/cifar10-sample/cifar10-sample.npz").read_bytes()).hexdigest() in card


def test_npz_source_writes_arrays_and_manifest(tmp_path, tiny_npz):
    write_params(tmp_path, source="npz", root=str(tiny_npz))
    prepare(tmp_path)
    manifest = json.loads((tmp_path / "prepared/manifest.json").read_text())
    assert manifest["class_names"][:2] == ["airplane", "automobile"]
    assert sum(manifest["counts"]["train"].values()) == 200
    ds = load_prepared(tmp_path / "prepared")
    assert ds.train.x.dtype == np.uint8 and ds.train.x.shape == (200, 32, 32, 3)
    assert ds.test.y.dtype == np.int64


def test_npz_is_resized_to_image_size(tmp_path, tiny_npz):
    write_params(tmp_path, source="npz", root=str(tiny_npz), image_size=16)
    prepare(tmp_path)
    assert load_prepared(tmp_path / "prepared").train.x.shape == (200, 16, 16, 3)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        ({"x_train": np.zeros((10, 32, 32, 3), np.float32), "y_train": np.zeros(10, np.uint8)}, ["x_train/y_train", "dtype float32; expected uint8"]),
        ({"x_train": np.zeros((10, 32, 32), np.uint8), "y_train": np.zeros(10, np.uint8)}, ["shape (10, 32, 32); expected (N, H, W, 3)"]),
        ({"y_test": np.full(50, 12, np.uint8)}, ["x_test/y_test", "label 12 at index 0 is out of range; expected 0..9"]),
        ({"y_train": np.zeros(7, np.uint8)}, ["labels have shape (7,); expected (200,)"]),
    ],
)
def test_bad_npz_arrays(tmp_path, overrides, fragments):
    """check_params finds each from the array headers and the labels, before DVC deletes any output,
    with the line prepare gives."""
    path = make_npz(tmp_path / "bad.npz", **overrides)
    write_params(tmp_path, source="npz", root=str(path))
    first = check_params(tmp_path)
    assert_one_error(first, *fragments)
    assert_one_error(prepare(tmp_path, check=False), *fragments)
    assert prepare(tmp_path, check=False).stderr == first.stderr
    assert not (tmp_path / "prepared").exists()


def npz_without_class_names(path, y_train, y_test):
    n, m = len(y_train), len(y_test)
    np.savez(path, x_train=np.zeros((n, 8, 8, 3), np.uint8), y_train=np.asarray(y_train),
             x_test=np.zeros((m, 8, 8, 3), np.uint8), y_test=np.asarray(y_test))
    return path


@pytest.mark.parametrize(
    "y_train, y_test, fragments",
    [
        ([200] * 20, list(range(10)), ["y_test holds label(s) 0, 1, 2, 3, 4, 5, 6, 7 and 2 more that no image of "
                                       "y_train has"]),
        ([0, 1, 3, 4] * 5, [0, 1, 3], ["without class_names the classes are the labels 0..4, but y_train has no "
                                       "image of 2; relabel them 0..K-1 or add class_names"]),
    ],
    ids=["test-labels-unseen-in-train", "a-class-without-training-images"],
)
def test_labels_that_make_no_dataset_are_refused(tmp_path, y_train, y_test, fragments):
    path = npz_without_class_names(tmp_path / "labels.npz", y_train, y_test)
    write_params(tmp_path, source="npz", root=str(path))
    assert_one_error(check_params(tmp_path), f"{path}:y_train/y_test", *fragments)
    assert_one_error(prepare(tmp_path, check=False), f"{path}:y_train/y_test", *fragments)


def test_inferred_classes_that_all_have_training_images_are_prepared(tmp_path):
    path = npz_without_class_names(tmp_path / "labels.npz", [0, 1, 2, 2], [2, 0])
    write_params(tmp_path, source="npz", root=str(path))
    prepare(tmp_path)
    assert load_prepared(tmp_path / "prepared").class_names == ["0", "1", "2"]


def test_npz_missing_key_and_missing_file_and_truncated(tmp_path, tiny_npz):
    np.savez(tmp_path / "nokey.npz", x_train=np.zeros((1, 32, 32, 3), np.uint8))
    write_params(tmp_path, source="npz", root=str(tmp_path / "nokey.npz"))
    assert_one_error(prepare(tmp_path, check=False), "lacks key(s) y_train, x_test, y_test")
    write_params(tmp_path, source="npz", root=str(tmp_path / "absent.npz"))
    assert_one_error(prepare(tmp_path, check=False), "absent.npz does not exist")
    blob = tiny_npz.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(blob[: len(blob) // 2])
    write_params(tmp_path, source="npz", root=str(tmp_path / "trunc.npz"))
    assert_one_error(check_params(tmp_path), "trunc.npz is not a readable .npz file")
    assert_one_error(prepare(tmp_path, check=False), "trunc.npz is not a readable .npz file")


def make_folder(root, classes=("cat", "dog"), per_class=3, size=(40, 30)):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_imagefolder_source(tmp_path):
    make_folder(tmp_path / "imgs")
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "imgs"), image_size=24)
    prepare(tmp_path)
    ds = load_prepared(tmp_path / "prepared")
    assert ds.class_names == ["cat", "dog"] and ds.train.x.shape == (6, 24, 24, 3)


def test_imagefolder_errors(tmp_path):
    root = tmp_path / "imgs"
    make_folder(root)
    (root / "train" / "bird").mkdir()
    write_params(tmp_path, source="imagefolder", root=str(root))
    assert_one_error(check_params(tmp_path), "train/bird has no images")  # the layout: before DVC deletes outputs
    assert_one_error(prepare(tmp_path, check=False), "train/bird has no images")
    (root / "train" / "bird").rmdir()
    (root / "test" / "bird").mkdir()
    assert_one_error(check_params(tmp_path), "test/bird is a class absent from")
    (root / "test" / "bird").rmdir()
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    assert "broken.png" not in check_params(tmp_path).stderr  # only decoding finds it
    assert_one_error(prepare(tmp_path, check=False), "cannot read image", "broken.png")
    (root / "train" / "dog" / "broken.png").unlink()
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "nowhere"))
    assert_one_error(check_params(tmp_path), "nowhere/train is not a folder")
    assert_one_error(prepare(tmp_path, check=False), "nowhere/train is not a folder")


def test_cifar10_without_a_local_copy_or_download(tmp_path):
    write_params(tmp_path, source="cifar10", root=str(tmp_path / "raw"), download=False)
    assert_one_error(prepare(tmp_path, check=False), "no copy under data.root", "data.download: true")


def test_failed_prepare_keeps_the_previous_output(tmp_path, tiny_npz):
    write_params(tmp_path, source="npz", root=str(tiny_npz))
    prepare(tmp_path)
    before = (tmp_path / "prepared/manifest.json").read_text()
    write_params(tmp_path, source="npz", root=str(tmp_path / "absent.npz"))
    prepare(tmp_path, check=False)
    assert (tmp_path / "prepared/manifest.json").read_text() == before


def test_tampered_prepared_data_is_detected(tmp_path, tiny_npz):
    write_params(tmp_path, source="npz", root=str(tiny_npz))
    prepare(tmp_path)
    arr = np.load(tmp_path / "prepared/train_y.npy")
    arr[0] = (arr[0] + 1) % 10
    np.save(tmp_path / "prepared/train_y.npy", arr)
    from simclr.core.errors import DataError

    with pytest.raises(DataError, match="does not match its checksum"):
        load_prepared(tmp_path / "prepared")


def test_prepare_and_its_decode_workers_run_without_torch(tmp_path):
    """prepare imports no torch (2 s and ~500 MiB of libraries, paid again by every spawned decode
    worker): here any import of it fails, in the stage and in its workers (300 images: two decode
    jobs, so a pool of workers where the machine has two cores)."""
    poison = tmp_path / "poison" / "torch"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('the prepare stage imported torch')\n")
    make_folder(tmp_path / "imgs", per_class=150)
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "imgs"), image_size=24)
    run(stage_command("prepare", scripts=ROOT, prepared=tmp_path / "prepared"), cwd=tmp_path,
        env={"PYTHONPATH": str(poison.parent)})
    assert load_prepared(tmp_path / "prepared").train.x.shape == (300, 24, 24, 3)
