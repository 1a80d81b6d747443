"""Pretraining throughput of params.yaml's model at larger image sizes, against 32 px in the same run.

    python bench/image_size_speed.py [--sizes 32 64 96] [--images 2048] [--epochs 2] [--write]

For each size the embedded sample is prepared at that size (the prepare stage's code, bicubic
upscaling), then ``simclr.pretrain.pretrain`` trains ``--epochs`` epochs on a fixed subset of
``--images`` images with params.yaml's encoder, head, batch, augmentation and optimiser (no
checkpoints, no kNN monitor). Images/s is the stage's own figure (images trained / training time,
two views each); the ratio is against the 32 px run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, today  # noqa: E402

from simclr.core.config import load_params  # noqa: E402
from simclr.prepare import prepare  # noqa: E402
from simclr.pretrain import PretrainPaths, pretrain  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    base = load_params(ROOT / "params.yaml")
    results = {}
    with tempfile.TemporaryDirectory(prefix="simclr-bench-size-") as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            p = base.replace(**{"data.image_size": size, "pretrain.epochs": args.epochs, "pretrain.warmup_epochs": 0,
                                "pretrain.train_images": args.images, "pretrain.knn_every": 0,
                                "pretrain.checkpoint_dir": ""})
            prepare(p.data, ROOT / "data/cifar10-sample", tmp / f"prepared-{size}")
            m = pretrain(p, PretrainPaths(tmp / f"prepared-{size}", tmp / f"enc-{size}.pt", tmp / f"m-{size}.json",
                                          tmp / f"h-{size}.csv"))
            results[size] = m["images_per_second"]
            print(f"{size} px: {results[size]:.0f} images/s", flush=True)
    ref = results[args.sizes[0]]
    model = f"{base.model.encoder} w={base.model.width}" if base.model.encoder == "small_cnn" else base.model.encoder
    rows = [f"| {today()} | {model}, batch {base.batch_size}, {base.pretrain.optimizer} | {size} | {ips:,.0f} | "
            f"{ips / ref:.2f}x | {(size / args.sizes[0]) ** 2:.0f}x | {machine()} |" for size, ips in results.items()]
    header = (f"| date | model | image px | images/s (2 views) | vs {args.sizes[0]} px | pixels vs {args.sizes[0]} px"
              " | machine |\n|---|---|---|---|---|---|---|")
    emit("Pretraining throughput at larger images (`bench/image_size_speed.py`)", header, rows, args.write)


if __name__ == "__main__":
    main()
