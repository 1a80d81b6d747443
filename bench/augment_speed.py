"""Augmentation throughput, three pipelines with the same ops, timed in one process.

    python bench/augment_speed.py [--write]

The ops: the `simclr-cifar` policy plus blur, i.e. RandomResizedCrop(0.08-1, 3/4-4/3) + flip,
colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale p=0.2, Gaussian blur p=0.5 (k=3).
* reference: torchvision's per-image PIL pipeline (what a DataLoader worker runs), 1 process.
* ours: `simclr.core.augment.AugmentPolicy` on uint8 batches (per-sample parameters), at 1 thread
  (the like-for-like ratio against the 1-process reference) and at all cores; and at 1 thread in
  the whole-batch form that runs on a GPU (colour's hue and the blur on every sample, kept where
  drawn), which shows what the CPU saves by picking rows.
* kornia.augmentation with the same ops, when kornia is installed (`pip install kornia`).
Views/s at batch 512 on 32x32 CIFAR images from the embedded sample.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, today  # noqa: E402

from simclr.core.augment import AugmentPolicy, whole_batch_form  # noqa: E402
from simclr.core.augment_config import parse_augment  # noqa: E402

BATCH = 512
POLICY = {"crop": {}, "flip": {}, "color": {"strength": 0.5}, "grayscale": {}, "blur": {}}


def views_per_second(fn, batches: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(batches):
        fn()
    return batches * BATCH / (time.perf_counter() - start)


def pil_pipeline(images: np.ndarray):
    import torchvision.transforms as T
    from PIL import Image

    t = T.Compose([
        T.RandomResizedCrop(32, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
        T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.5), T.ToTensor()])
    pils = [Image.fromarray(x) for x in images]
    return lambda: torch.stack([t(p) for p in pils])


def kornia_pipeline(batch: torch.Tensor):
    import kornia.augmentation as K

    aug = K.AugmentationSequential(
        K.RandomResizedCrop((32, 32), scale=(0.08, 1.0)), K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((3, 3), (0.1, 2.0), p=0.5))
    return lambda: aug(batch.permute(0, 3, 1, 2).float().div(255))


def main(write: bool) -> None:
    images = np.load(ROOT / "data/cifar10-sample/cifar10-sample.npz")["x_train"][:BATCH]
    batch = torch.from_numpy(images)
    policy = AugmentPolicy(parse_augment(POLICY))
    g = torch.Generator().manual_seed(0)
    cores = torch.get_num_threads()
    results = {}
    torch.set_num_threads(1)
    results["torchvision PIL per image (1 process)"] = views_per_second(pil_pipeline(images), 2)
    # ours and the form that runs off the CPU (no row picking, so no wait for the host; see
    # apply_where), alternated over rounds, medians: one pass of each moves by 30% on this machine
    rounds: dict[str, list[float]] = {"ours, 1 thread": [], "ours, whole-batch form (the GPU's), 1 thread": []}
    for _ in range(5):
        rounds["ours, 1 thread"].append(views_per_second(lambda: policy(batch, g), 10))
        with whole_batch_form():
            rounds["ours, whole-batch form (the GPU's), 1 thread"].append(views_per_second(lambda: policy(batch, g), 10))
    results.update({name: float(np.median(v)) for name, v in rounds.items()})
    try:
        results["kornia, 1 thread"] = views_per_second(kornia_pipeline(batch), 5)
    except ImportError:
        pass
    torch.set_num_threads(cores)
    results[f"ours, {cores} threads"] = views_per_second(lambda: policy(batch, g), 10)
    if "kornia, 1 thread" in results:
        results[f"kornia, {cores} threads"] = views_per_second(kornia_pipeline(batch), 5)
    ref = results["torchvision PIL per image (1 process)"]
    header = "| date | pipeline | views/s | vs PIL (1 process) | machine |\n|---|---|---|---|---|"
    rows = [f"| {today()} | {name} | {v:,.0f} | {v / ref:.2f}x | {machine()} |" for name, v in results.items()]
    emit("Augmentation throughput (batch 512, 32x32; `bench/augment_speed.py`)", header, rows, write)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    main(ap.parse_args().write)
