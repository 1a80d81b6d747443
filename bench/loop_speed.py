"""Pretraining throughput: the pipeline's stage loop vs a minimal plain-PyTorch SimCLR loop.

    python bench/loop_speed.py [--epochs 3] [--pil] [--baseline REV] [--write]

Both run in this process on data/prepared (run `dvc repro prepare` first) with params.yaml's
encoder, head, batch, temperature, LARS and augmentation policy, alternating (ref, ours, ref,
ours) so drift hits both. Process-level CPU settings (`simclr.core.runtime.configure_cpu`) are
applied once for both; the reference uses the same memory format, so the ratio measures the
stage's own overhead (Accelerate, per-step loss all-reduce, lr schedule, checkpoint per
epoch, final save) over training time. `--pil` adds the minimal loop fed by a torchvision PIL
DataLoader (the usual SimCLR repo), with as many workers as cores. `--baseline REV` adds the
stage loop of git revision REV (its src/, exported to a temp folder), run in a subprocess the
same way as this checkout's, alternated with it: a code change's effect on CPU throughput.
Images/s = images trained / wall time of the whole call.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, emit, machine, minimal_loop, today  # noqa: E402

from simclr.core.config import load_params  # noqa: E402
from simclr.core.data import load_prepared  # noqa: E402
from simclr.core.lars import LARS, param_groups  # noqa: E402
from simclr.core.loss import nt_xent_loss  # noqa: E402
from simclr.core.model import ModelConfig, SimCLRModel  # noqa: E402
from simclr.core.runtime import configure_cpu  # noqa: E402
from simclr.core.schedule import scaled_lr  # noqa: E402
from simclr.pretrain import PretrainPaths, pretrain  # noqa: E402


def minimal_loop_speed(params, train_x: np.ndarray, epochs: int, channels_last: bool) -> float:
    """The reference loop (bench/common.py) on the CPU: images / wall time of the whole call."""
    start = time.perf_counter()
    minimal_loop(params, train_x, epochs, channels_last)
    return epochs * (len(train_x) // params.batch_size) * params.batch_size / (time.perf_counter() - start)


class PILPairs(torch.utils.data.Dataset):
    def __init__(self, images):
        import torchvision.transforms as T
        from PIL import Image

        self.images, self.to_pil = images, Image.fromarray
        self.t = T.Compose([T.RandomResizedCrop(images.shape[1], scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
                            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2), T.ToTensor()])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.to_pil(np.asarray(self.images[i]))
        return self.t(img), self.t(img)


def minimal_loop_pil(params, train_x: np.ndarray, epochs: int, workers: int) -> float:
    start = time.perf_counter()
    torch.manual_seed(params.seed)
    model = SimCLRModel(ModelConfig.from_params(params))
    opt = LARS(param_groups(model, params.pretrain.weight_decay), lr=scaled_lr(params.pretrain.lr, params.batch_size, "linear"))
    loader = torch.utils.data.DataLoader(PILPairs(np.asarray(train_x)), batch_size=params.batch_size, shuffle=True,
                                         drop_last=True, num_workers=workers, persistent_workers=workers > 0)
    n = 0
    for _ in range(epochs):
        for v1, v2 in loader:
            _, z = model(torch.cat([v1, v2]))
            loss = nt_xent_loss(*z.chunk(2), params.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += v1.shape[0]
    return n / (time.perf_counter() - start)


def stage_loop(params, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        p = params.replace(**{"pretrain.epochs": epochs, "pretrain.knn_every": 0,
                              "pretrain.warmup_epochs": min(params.pretrain.warmup_epochs, epochs),
                              "pretrain.checkpoint_dir": str(Path(tmp, "ck"))})
        out = PretrainPaths(prepared=ROOT / "data/prepared", encoder=Path(tmp, "encoder.pt"),
                            metrics=Path(tmp, "m.json"), history=Path(tmp, "h.csv"))
        start = time.perf_counter()
        pretrain(p, out)
        wall = time.perf_counter() - start
    steps = len(load_prepared(ROOT / "data/prepared", verify=False).train.x) // params.batch_size
    return epochs * steps * params.batch_size / wall


STAGE_LOOP_AT = """
import sys, tempfile, time, yaml
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from simclr.core.config import PretrainParams, Params
from simclr.core.runtime import configure_cpu
from simclr.pretrain import PretrainPaths, pretrain
root, epochs = Path(sys.argv[2]), int(sys.argv[3])
raw = yaml.safe_load((root / "params.yaml").read_text())
raw["pretrain"] = {k: v for k, v in raw["pretrain"].items() if k in PretrainParams.model_fields}  # an older schema
with tempfile.TemporaryDirectory() as tmp:
    raw["pretrain"].update(epochs=epochs, knn_every=0, warmup_epochs=min(raw["pretrain"]["warmup_epochs"], epochs),
                           checkpoint_dir=str(Path(tmp, "ck")))
    p = Params.model_validate(raw)
    configure_cpu(1)
    out = PretrainPaths(prepared=root / "data/prepared", encoder=Path(tmp, "e.pt"), metrics=Path(tmp, "m.json"),
                        history=Path(tmp, "h.csv"))
    start = time.perf_counter()
    pretrain(p, out)
    print(time.perf_counter() - start)
"""


def stage_loop_at(src: Path, params, epochs: int) -> float:
    """The stage loop of the code in ``src`` (a src/ folder), in a fresh process: images/s."""
    proc = subprocess.run([sys.executable, "-c", STAGE_LOOP_AT, str(src), str(ROOT), str(epochs)], check=True,
                          capture_output=True, text=True, cwd=ROOT)
    wall = float(proc.stdout.strip().splitlines()[-1])
    steps = len(load_prepared(ROOT / "data/prepared", verify=False).train.x) // params.batch_size
    return epochs * steps * params.batch_size / wall


def compare_with_revision(params, rev: str, epochs: int, runs: int = 3) -> str:
    """This checkout's stage loop against revision ``rev``'s, alternated; one table row."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        old, new = [], []
        for _ in range(runs):
            old.append(stage_loop_at(Path(tmp, "src"), params, epochs))
            new.append(stage_loop_at(ROOT / "src", params, epochs))
    rev_name = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout.strip()
    before, after = float(np.median(old)), float(np.median(new))
    setup = f"{params.model.encoder} w={params.model.width}, batch {params.batch_size}"
    return (f"| {today()} | stage loop at {rev_name} (before) vs this checkout (after), {setup}, {epochs} epochs, "
            f"median of {runs} alternated runs | "
            f"{before:.0f} | {after:.0f} | {after / before:.3f} | {machine()} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--pil", action="store_true")
    ap.add_argument("--baseline", metavar="REV", help="also compare with the stage loop of this git revision")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    train_x = load_prepared(ROOT / "data/prepared").train.x
    configure_cpu(1)
    cl = params.pretrain.channels_last
    refs, ours = [], []
    for _ in range(2):
        refs.append(minimal_loop_speed(params, train_x, args.epochs, cl))
        ours.append(stage_loop(params, args.epochs))
    ref, our = float(np.mean(refs)), float(np.mean(ours))
    setup = (f"{params.model.encoder} w={params.model.width}, batch {params.batch_size}, {params.pretrain.optimizer}, "
             f"{args.epochs} epochs x2, {'channels_last' if cl else 'contiguous'}")
    header = "| date | setup | minimal loop (img/s) | our stage loop (img/s) | ratio | machine |\n|---|---|---|---|---|---|"
    rows = [f"| {today()} | {setup} | {ref:.0f} | {our:.0f} | {our / ref:.3f} | {machine()} |"]
    if args.pil:
        workers = torch.get_num_threads()
        pil = minimal_loop_pil(params, train_x, args.epochs, workers)
        rows.append(f"| {today()} | same, minimal loop fed by a PIL DataLoader ({workers} workers) | {pil:.0f} | {our:.0f} | "
                    f"{our / pil:.3f} | {machine()} |")
    emit("Pretraining loop throughput (`bench/loop_speed.py`)", header, rows, args.write)
    if args.baseline:
        emit("Stage loop before and after a change (`bench/loop_speed.py --baseline REV`)",
             "| date | runs | before (img/s) | after (img/s) | after / before | machine |\n|---|---|---|---|---|---|",
             [compare_with_revision(params, args.baseline, args.epochs)], args.write)


if __name__ == "__main__":
    main()
