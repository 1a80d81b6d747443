"""The checks only a CUDA GPU can run, in one command of at most ~8 minutes on one GPU.

    python bench/gpu_check.py [--cifar PATH] [--minutes 8] [--write]

1. SyncBatchNorm numerics: two processes on the one GPU, over gloo (NCCL refuses two ranks on one
   device). nn.SyncBatchNorm's forward and backward over two half batches must equal plain
   BatchNorm's over the whole batch (torch runs SyncBatchNorm on CUDA only, so this is the only
   place the project's global BN can be checked).
2. The pretrain stage on CUDA (ResNet-18, CIFAR stem, batch 512, presets/cifar10-resnet18.yaml) in
   fp32, bf16, bf16 + channels_last and bf16 + channels_last + torch.compile: images/s of the
   last epoch each (compile's first epoch pays for compiling), and the stage's fp32 loop against a
   minimal plain-PyTorch SimCLR loop on the same model and batch (the ratio: the stage's overhead).
3. A short full-CIFAR-10 ResNet-18 run (`--cifar PATH`, an npz; without it the project's
   5,000-image sample) in bf16 + channels_last, as many epochs as fit in what is left of the
   budget, with its kNN top-1 and a linear probe's top-1 (test split).
4. Host waits in a step (runs first, seconds): augmentation with every op, forward and backward,
   and the finite check with the kept-or-undone LARS step, each under
   torch.cuda.set_sync_debug_mode("error"); the row names any part that makes the host wait.

Each stage run is `python stages/pretrain.py` in its own process (Accelerate's state is per
process). Without CUDA the script says so in one line and exits 0; `--cpu-smoke` runs parts 2, 3
and 4 at toy size on the CPU, so the suite can check the script itself (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1] / "src"))  # this checkout's simclr, installed or not
from common import ROOT, emit, machine, minimal_loop, today  # noqa: E402

SECTION = "GPU check (`bench/gpu_check.py`)"
HEADER = "| date | check | result | setup | device |\n|---|---|---|---|---|"
DEFAULT_CIFAR = ROOT.parent / "shared/datasets/cifar10.npz"


# ------------------------------------------------------------------------------------------
# 1. SyncBatchNorm against BatchNorm
# ------------------------------------------------------------------------------------------
def _syncbn_worker(rank: int, init_file: str, out: str) -> None:
    import torch.distributed as dist
    from torch import nn

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    x = torch.randn(16, 8, 6, 6, device="cuda", dtype=torch.float64)
    upstream = torch.randn_like(x)  # the gradient arriving from above
    plain, sync = nn.BatchNorm2d(8).cuda().double(), nn.SyncBatchNorm(8).cuda().double()
    xr = x.clone().requires_grad_()
    y = plain(xr)
    y.backward(upstream)
    half = slice(rank * 8, (rank + 1) * 8)
    xs = x[half].clone().requires_grad_()
    ys = sync(xs)
    ys.backward(upstream[half])
    diffs = {
        "forward": (ys - y[half]).abs().max().item(),
        "input_grad": (xs.grad - xr.grad[half]).abs().max().item(),
        # SyncBN's parameter gradients are this rank's share; their sum over ranks is BN's
        "weight_grad": _summed(sync.weight.grad, plain.weight.grad),
        "bias_grad": _summed(sync.bias.grad, plain.bias.grad),
        "running_mean": (sync.running_mean - plain.running_mean).abs().max().item(),
    }
    if rank == 0:
        Path(out).write_text(json.dumps(diffs))
    dist.destroy_process_group()


def _summed(local, whole) -> float:
    import torch.distributed as dist

    total = local.clone()
    dist.all_reduce(total)
    return (total - whole).abs().max().item()


def syncbn_check() -> str:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "diffs.json")
        mp.spawn(_syncbn_worker, args=(str(Path(tmp, "init")), str(out)), nprocs=2, join=True)
        diffs = json.loads(out.read_text())
    worst = max(diffs.values())
    verdict = "equal" if worst < 1e-10 else "DIFFERENT"
    detail = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
    return row("SyncBatchNorm, 2 processes x 8 rows vs BatchNorm over 16 (fp64, gloo on one GPU)",
               f"{verdict}: max |diff| {worst:.1e} ({detail})", "nn.SyncBatchNorm(8), 16x8x6x6")


# ------------------------------------------------------------------------------------------
# 4. Host waits in a step (run first)
# ------------------------------------------------------------------------------------------
ALL_OPS = {"crop": {}, "flip": {}, "color": {}, "grayscale": {}, "blur": {}, "cutout": {}, "noise": {},
           "sobel": {"p": 0.5}, "rotate": {}}


def host_waits_check(raw: dict, smoke: bool) -> str:
    """Each part of the stage's step, run once more under torch.cuda.set_sync_debug_mode("error"),
    which raises at a CUDA call that makes the host wait for the device: augmentation with every
    op, the forward and backward, and the finite check with the kept-or-undone LARS step. A warm-up
    step first (first calls may wait for lazy setup). On the CPU (--cpu-smoke) nothing can wait:
    the parts run unchecked."""
    from simclr.core.augment import AugmentPolicy
    from simclr.core.augment_config import parse_augment
    from simclr.core.config import Params
    from simclr.core.finite_step import FiniteGuard, step_if
    from simclr.core.lars import LARS, param_groups
    from simclr.core.loss import nt_xent_loss
    from simclr.core.model import ModelConfig, SimCLRModel
    from simclr.pretrain import gradient_norm

    params = Params.model_validate(raw)
    device = torch.device("cpu" if smoke else "cuda")
    model = SimCLRModel(ModelConfig.from_params(params)).to(device).train()
    optimizer = LARS(param_groups(model, params.pretrain.weight_decay), lr=0.1)
    policy, gen = AugmentPolicy(parse_augment(ALL_OPS)), torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (params.batch_size, 32, 32, 3), dtype=torch.uint8, device=device)
    guard, state = FiniteGuard(device), {}

    def augment():
        state["views"] = torch.cat([policy(images, gen), policy(images, gen)])

    def forward_backward():
        _, z = model(state["views"])
        loss = nt_xent_loss(*z.float().chunk(2), params.temperature)
        loss.backward()
        state["loss"] = loss.detach()

    def checked_step():
        step_if(optimizer, guard.check(1, state["loss"], gradient_norm(model)))
        optimizer.zero_grad(set_to_none=True)

    parts = {"augment (every op)": augment, "forward + backward": forward_backward,
             "finite check + LARS step_if": checked_step}
    for part in parts.values():  # the warm-up step
        part()
    found = {}
    for name, part in parts.items():
        if smoke:
            part()
            found[name] = "not checked (CPU)"
            continue
        if any(v.startswith("WAITS") for v in found.values()):
            found[name] = "not run (a part before it waited)"  # it needs that part's results
            continue
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            part()
            found[name] = "none"
        except RuntimeError as exc:
            if "synchroniz" not in str(exc):  # not a wait: out of memory, a bug; say it as it is
                raise
            found[name] = "WAITS: " + str(exc).splitlines()[0][:120]
        finally:
            torch.cuda.set_sync_debug_mode("default")
    del model, optimizer, state
    if not smoke:
        torch.cuda.empty_cache()  # the stage runs that follow are other processes: give them the memory
    return row("host waits in one step (torch.cuda.set_sync_debug_mode)", "; ".join(f"{k}: {v}" for k, v in found.items()),
               f"{params.model.encoder}, batch {params.batch_size}, 1 process (no SyncBN, no all-gather)")


# ------------------------------------------------------------------------------------------
# 2 and 3. The pretrain stage
# ------------------------------------------------------------------------------------------
def prepare(params_path: Path, out: Path) -> None:
    subprocess.run([sys.executable, "stages/prepare.py", "--params", str(params_path), "--sample",
                    "data/cifar10-sample", "--out", str(out)], cwd=ROOT, check=True)


def base_params(cifar: Path, smoke: bool) -> dict:
    raw = yaml.safe_load((ROOT / "presets/cifar10-resnet18.yaml").read_text())
    raw["data"].update(source="npz", root=str(cifar), download=False)
    if not cifar.is_file():
        raw["data"]["source"] = "cifar10-sample"
    raw["pretrain"].update(checkpoint_dir="", knn_every=0, num_processes=1, log_with="none")
    if smoke:  # toy size on the CPU: the script's own paths, not a measurement
        raw["data"]["source"] = "cifar10-sample"
        raw["model"].update(encoder="small_cnn", width=8)
        raw["batch_size"] = 64
    return raw


def run_stage(raw: dict, prepared: Path, folder: Path, name: str) -> dict:
    """One `python stages/pretrain.py` with these params; returns its metrics and history rows."""
    folder.mkdir(parents=True, exist_ok=True)
    params = folder / f"{name}.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = {k: folder / f"{name}.{k}" for k in ("pt", "json", "csv")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "stages/pretrain.py", "--params", str(params), "--prepared", str(prepared),
                    "--encoder", str(out["pt"]), "--metrics", str(out["json"]), "--history", str(out["csv"])],
                   cwd=ROOT, check=True)
    history = list(csv.DictReader(out["csv"].open()))
    return {"metrics": json.loads(out["json"].read_text()), "history": history, "encoder": out["pt"],
            "seconds": time.perf_counter() - start}


def minimal_loop_speed(raw: dict, prepared: Path, epochs: int, device: torch.device) -> float:
    """The reference loop (bench/common.py) on the stage's images: img/s of its last epoch."""
    from simclr.core.config import Params
    from simclr.core.data import load_prepared, pretrain_images

    params = Params.model_validate(raw)
    train_x = pretrain_images(load_prepared(prepared), params.data.pretrain_on).subset(params.pretrain.train_images,
                                                                                       params.seed)
    seconds = minimal_loop(params, train_x, epochs, params.pretrain.channels_last, device)
    return (len(train_x) // params.batch_size) * params.batch_size / seconds[-1]


def row(check: str, result: str, setup: str) -> str:
    return f"| {today()} | {check} | {result} | {setup} | {device_name()} |"


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return machine()


def stage_variants(raw: dict, prepared: Path, folder: Path, smoke: bool) -> tuple[list[str], float]:
    """Part 2: rows, and the bf16 + channels_last img/s (sizes part 3)."""
    images, epochs = (256, 2) if smoke else (10_240, 2)
    short = {**raw, "pretrain": {**raw["pretrain"], "epochs": epochs, "warmup_epochs": 0, "train_images": images}}
    variants = [("fp32", dict(mixed_precision="no", channels_last=False, compile=False)),
                ("bf16", dict(mixed_precision="bf16", channels_last=False, compile=False)),
                ("bf16 + channels_last", dict(mixed_precision="bf16", channels_last=True, compile=False)),
                ("bf16 + channels_last + compile", dict(mixed_precision="bf16", channels_last=True, compile=True))]
    if smoke:
        variants = [(n, {**v, "mixed_precision": "no", "compile": False}) for n, v in variants[:1]]
    rows, speeds = [], {}
    setup = f"{raw['model']['encoder']} (CIFAR stem), batch {raw['batch_size']}, {images} images, last of {epochs} epochs"
    for name, options in variants:
        result = run_stage({**short, "pretrain": {**short["pretrain"], **options}}, prepared, folder, name.replace(" ", ""))
        speeds[name] = float(result["history"][-1]["images_per_second"])
        rows.append(row(f"pretrain stage, {name}", f"{speeds[name]:.0f} img/s", setup))
    from simclr.core.runtime import default_device

    device = default_device()
    plain = minimal_loop_speed({**short, "pretrain": {**short["pretrain"], "channels_last": False}}, prepared, epochs, device)
    rows.append(row("stage loop (fp32) / minimal plain-PyTorch loop (fp32)",
                    f"{speeds['fp32']:.0f} / {plain:.0f} img/s = {speeds['fp32'] / plain:.3f}", setup))
    return rows, speeds.get("bf16 + channels_last", speeds["fp32"])


def short_run(raw: dict, prepared: Path, folder: Path, images_per_second: float, seconds: float,
              smoke: bool) -> list[str]:
    """Part 3: full CIFAR-10 for as many epochs as fit in `seconds`, then kNN and a linear probe."""
    from simclr.core.data import load_prepared
    from simclr.core.evaluate import extract_features, knn_top1, linear_probe
    from simclr.core.model import load_model
    from simclr.core.runtime import default_device

    train_images = len(load_prepared(prepared).train.x) if not smoke else 512
    epochs = 1 if smoke else max(1, min(200, int(0.8 * seconds * images_per_second / train_images)))
    full = {**raw, "pretrain": {**raw["pretrain"], "epochs": epochs, "warmup_epochs": min(10, epochs // 10),
                                 "mixed_precision": "no" if smoke else "bf16", "channels_last": True,
                                 "knn_every": epochs, "train_images": 0 if not smoke else train_images}}
    result = run_stage(full, prepared, folder, "short_run")
    device = default_device()
    data = load_prepared(prepared)
    model = load_model(result["encoder"], map_location=device).to(device)
    h_train, _ = extract_features(model, data.train.x, device)
    h_test, _ = extract_features(model, data.test.x, device)
    probe = raw["linear_eval"]
    knn = knn_top1(h_train, data.train.y, h_test, data.test.y, data.num_classes, probe["knn_k"], probe["knn_temperature"])
    top1, _ = linear_probe(h_train, data.train.y, h_test, data.test.y, data.num_classes,
                           epochs=probe["epochs"] if not smoke else 2, lr=probe["lr"], weight_decay=probe["weight_decay"],
                           batch_size=probe["batch_size"])
    setup = (f"{raw['model']['encoder']}, CIFAR-10 train ({len(data.train.x)} images), {epochs} epochs in "
             f"{result['seconds'] / 60:.1f} min, bf16 + channels_last, batch {raw['batch_size']}; probe: "
             f"{probe['epochs']} epochs Adam on frozen h")
    return [row("short CIFAR-10 run: kNN top-1 / linear top-1 (test)", f"{knn:.2f} % / {top1:.2f} %", setup)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR, help="CIFAR-10 as an npz (x_train, y_train, x_test, y_test)")
    ap.add_argument("--minutes", type=float, default=8.0, help="the whole check's budget")
    ap.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    ap.add_argument("--cpu-smoke", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("gpu_check: no CUDA device on this machine; nothing to check (run it where `nvidia-smi` shows a GPU)")
        return 0
    if not args.cpu_smoke and not args.cifar.is_file():
        print(f"gpu_check: notice: {args.cifar} does not exist (--cifar PATH); part 3 trains on the project's "
              "5,000-image CIFAR-10 sample instead (its row names the image count)", flush=True)
    start = time.perf_counter()
    raw = base_params(args.cifar, args.cpu_smoke)
    rows = [host_waits_check(raw, args.cpu_smoke)] + ([] if args.cpu_smoke else [syncbn_check()])
    for r in rows:  # each part's result as soon as it is known (the table follows at the end)
        print(f"gpu_check: {r}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        params_path = folder / "prepare.yaml"
        params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        prepare(params_path, folder / "prepared")
        variant_rows, speed = stage_variants(raw, folder / "prepared", folder, args.cpu_smoke)
        rows += variant_rows
        left = args.minutes * 60 - (time.perf_counter() - start) - 60  # a minute for the probe and the margins
        rows += short_run(raw, folder / "prepared", folder, speed, max(left, 10), args.cpu_smoke)
    emit(SECTION, HEADER, rows, args.write and not args.cpu_smoke)
    print(f"gpu_check: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
