"""Rebuild the embedded CIFAR-10 sample (data/cifar10-sample/) from the full CIFAR-10 .npz.

Stratified and seeded, so the same input gives byte-identical arrays:
    python scripts/make_cifar10_sample.py ../shared/datasets/cifar10.npz
"""

import hashlib
import sys
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SEED, TRAIN_PER_CLASS, TEST_PER_CLASS = 0, 500, 100


def stratified(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [np.sort(rng.choice(np.flatnonzero(y == c), per_class, replace=False)) for c in range(len(CLASSES))]
    return np.sort(np.concatenate(picks))


def main(src: str, out: str = "data/cifar10-sample/cifar10-sample.npz") -> None:
    full = np.load(src)
    rng = np.random.default_rng(SEED)
    tr = stratified(full["y_train"], TRAIN_PER_CLASS, rng)
    te = stratified(full["y_test"], TEST_PER_CLASS, rng)
    arrays = {
        "x_train": full["x_train"][tr], "y_train": full["y_train"][tr].astype(np.uint8),
        "x_test": full["x_test"][te], "y_test": full["y_test"][te].astype(np.uint8),
        "train_index": tr.astype(np.int32), "test_index": te.astype(np.int32),
        "class_names": np.array(CLASSES),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    content = hashlib.sha256(b"".join(arrays[k].tobytes() for k in ("x_train", "y_train", "x_test", "y_test"))).hexdigest()
    print(f"{out}: {len(tr)} train, {len(te)} test\n  file sha256    {digest}\n  content sha256 {content}")


if __name__ == "__main__":
    main(*sys.argv[1:])
