"""A bad input stops `dvc repro` with one clear line and every output as it was.

`dvc repro` deletes a stage's outputs before it runs the stage, so a check made inside the stage
comes too late for them: each bad input below is found by the check_params stage (which every
other stage waits for), and the workspace's outputs are byte-identical after the failed run. The
one bad input only decoding can find (a corrupt image) fails inside prepare: its line says which
outputs DVC removed and that `dvc checkout` brings them back, and it does.
"""

import hashlib

import numpy as np
import pytest
import yaml
from support import init_dvc_repo, make_npz, run
from test_data import make_folder, npz_without_class_names

pytestmark = pytest.mark.slow
OUTPUTS = ["data/prepared", "models/encoder.pt", "metrics/pretrain.json", "metrics/pretrain_history.csv"]


def snapshot(repo):
    """sha256 of every file of the outputs (absent: None)."""
    files = {}
    for out in OUTPUTS:
        path = repo / out
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            files[str(f.relative_to(repo))] = hashlib.sha256(f.read_bytes()).hexdigest() if f.exists() else None
    return files


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git+DVC repo whose pretrain stage (and what it needs) has run; its outputs' snapshot."""
    repo, env = init_dvc_repo(tmp_path_factory.mktemp("kept"))
    run(["dvc", "repro", "pretrain"], repo, env)
    return repo, env, snapshot(repo)


def repro_with(repo, env, edit):
    """`dvc repro pretrain` with params.yaml changed by `edit(raw)`; params.yaml restored afterwards."""
    params = repo / "params.yaml"
    original = params.read_text()
    raw = yaml.safe_load(original)
    edit(raw)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        return run(["dvc", "repro", "pretrain"], repo, env, check=False)
    finally:
        params.write_text(original)


def the_error(proc) -> str:
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stdout + proc.stderr
    return errors[0]


def truncated(repo):
    blob = (repo / "data/tiny.npz").read_bytes()
    (repo / "data/bad.npz").write_bytes(blob[: len(blob) // 2])


def float_images(repo):
    make_npz(repo / "data/bad.npz", n_train=128, n_test=40, x_train=np.zeros((128, 32, 32, 3), np.float32))


def labels_without_a_dataset(repo):
    npz_without_class_names(repo / "data/bad.npz", [200] * 128, list(range(10)) * 4)


def data_root(raw):
    raw["data"]["root"] = "data/bad.npz"


def batch_larger_than_the_images(raw):
    raw["batch_size"] = 512


def store_under_a_file(raw):
    raw["pretrain"]["checkpoint_dir"] = "params.yaml/checkpoints"
    raw["temperature"] = 0.2  # pretrain reruns (the store is checked only then: it is pretrain's alone)


CASES = [
    (truncated, data_root, "data/bad.npz is not a readable .npz file"),
    (float_images, data_root, "images have dtype float32; expected uint8"),
    (labels_without_a_dataset, data_root, "y_test holds label(s) 0, 1, 2"),
    (None, batch_larger_than_the_images, "batch_size = 512 is larger than the 128 images pretraining draws from"),
    (None, store_under_a_file, "params.yaml is a file, so the checkpoint store"),
]


@pytest.mark.parametrize("write_data, edit, fragment", CASES,
                         ids=["truncated-npz", "float-images", "labels-without-a-dataset", "batch-too-large",
                              "store-under-a-file"])
def test_a_bad_input_stops_repro_before_any_output_is_touched(project, write_data, edit, fragment):
    repo, env, before = project
    if write_data:
        write_data(repo)
    error = the_error(repro_with(repo, env, edit))
    assert fragment in error
    assert snapshot(repo) == before


def test_a_corrupt_image_fails_prepare_and_its_line_says_how_to_get_the_outputs_back(project, tmp_path):
    repo, env, before = project
    folder = tmp_path / "imgs"
    make_folder(folder, per_class=20)
    (folder / "train" / "dog" / "broken.png").write_bytes(b"not a png")

    def imagefolder(raw):
        raw["data"].update(source="imagefolder", root=str(folder))

    error = the_error(repro_with(repo, env, imagefolder))
    assert "cannot read image" in error and "broken.png" in error
    assert error.endswith("(data/prepared removed by dvc repro before the stage ran; "
                          "`dvc checkout data/prepared` brings back the previous ones)")
    assert not (repo / "data/prepared").exists()
    run(["dvc", "checkout", "data/prepared"], repo, env)
    assert snapshot(repo) == before


def test_the_batch_check_counts_the_prepared_data_dvc_lock_records_not_the_workspace_copy(project):
    """After a `git checkout` without `dvc checkout` the workspace's data/prepared may be another
    run's: check_params reads the manifest of the one dvc.lock records, from DVC's cache."""
    repo, env, before = project
    manifest = repo / "data/prepared/manifest.json"
    original = manifest.read_text()
    other = yaml.safe_load(original)  # JSON is YAML
    other["images"]["train"] = 10
    manifest.write_text(yaml.safe_dump(other))
    params = repo / "params.yaml"
    saved = params.read_text()
    raw = yaml.safe_load(saved)
    try:
        raw["batch_size"] = 64  # fits the recorded 128 images, not the other run's 10
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
        run(["python", "stages/check_params.py", "--prepared", "data/prepared"], repo, env)
        raw["batch_size"] = 256
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
        proc = run(["python", "stages/check_params.py", "--prepared", "data/prepared"], repo, env, check=False)
        assert "batch_size = 256 is larger than the 128 images" in the_error(proc)
    finally:
        manifest.write_text(original)
        params.write_text(saved)
    assert snapshot(repo) == before
