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
    path = make_npz(tmp_path / "bad.npz", **overrides)
    write_params(tmp_path, source="npz", root=str(path))
    assert_one_error(prepare(tmp_path, check=False), *fragments)
    assert not (tmp_path / "prepared").exists()


def test_npz_missing_key_and_missing_file_and_truncated(tmp_path, tiny_npz):
    np.savez(tmp_path / "nokey.npz", x_train=np.zeros((1, 32, 32, 3), np.uint8))
    write_params(tmp_path, source="npz", root=str(tmp_path / "nokey.npz"))
    assert_one_error(prepare(tmp_path, check=False), "lacks key(s) y_train, x_test, y_test")
    write_params(tmp_path, source="npz", root=str(tmp_path / "absent.npz"))
    assert_one_error(prepare(tmp_path, check=False), "absent.npz does not exist")
    blob = tiny_npz.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(blob[: len(blob) // 2])
    write_params(tmp_path, source="npz", root=str(tmp_path / "trunc.npz"))
    assert_one_error(prepare(tmp_path, check=False), "trunc.npz")


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
    assert_one_error(prepare(tmp_path, check=False), "train/bird has no images")
    (root / "train" / "bird").rmdir()
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    assert_one_error(prepare(tmp_path, check=False), "cannot read image", "broken.png")
    (root / "train" / "dog" / "broken.png").unlink()
    write_params(tmp_path, source="imagefolder", root=str(tmp_path / "nowhere"))
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
