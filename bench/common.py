"""Shared by the bench/ scripts: the machine line, appending rows to BENCHMARKS.md, and the
minimal plain-PyTorch SimCLR loop the stage loop is compared with."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    import torch

    cpu, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown CPU":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    # virtual machines often report a bare "AMD EPYC": the vector extension tells apart CPUs whose
    # kernels (and so the last bits of every result) differ
    cpu += " (AVX-512)" if "avx512f" in flags else " (AVX2)" if "avx2" in flags else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cores} cores {cpu}{gpu}; {platform.system()} {platform.machine()}; torch {torch.__version__}"


def today() -> str:
    return datetime.date.today().isoformat()


def append_row(section: str, header: str, row: str) -> None:
    """Append `row` under `## section` in BENCHMARKS.md (creating the section with `header`)."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    marker = f"## {section}\n"
    if marker not in text:
        text = text.rstrip("\n") + f"\n\n{marker}\n{header}\n"
    head, tail = text.split(marker, 1)
    lines = tail.split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    body = "\n".join(lines[:end]).rstrip("\n") + "\n" + row + "\n"
    rest = "\n".join(lines[end:])
    path.write_text(head + marker + body + ("\n" + rest if rest.strip() else ""))


def emit(section: str, header: str, rows: list[str], write: bool) -> None:
    """Print the table; with `write`, append its rows under `## section` in BENCHMARKS.md."""
    print(header + "\n" + "\n".join(rows))
    if write:
        for row in rows:
            append_row(section, header, row)


def minimal_loop(params, train_x, epochs: int, channels_last: bool, device=None) -> list[float]:
    """The reference: SimCLR in a dozen plain lines, on ``params``'s model, batch, augmentation and
    LARS, fp32, on ``device`` (default CPU). Returns each epoch's seconds (device work finished)."""
    import time

    import torch

    from simclr.core.augment import AugmentPolicy
    from simclr.core.lars import LARS, param_groups
    from simclr.core.loss import nt_xent_loss
    from simclr.core.model import ModelConfig, SimCLRModel
    from simclr.core.schedule import scaled_lr

    device = device or torch.device("cpu")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(params.seed)
    model = SimCLRModel(ModelConfig.from_params(params)).to(device, memory_format=fmt)
    opt = LARS(param_groups(model, params.pretrain.weight_decay),
               lr=scaled_lr(params.pretrain.lr, params.batch_size, params.pretrain.lr_scaling))
    policy, g = AugmentPolicy(params.augment), torch.Generator(device=device).manual_seed(0)
    b, steps, seconds = params.batch_size, len(train_x) // params.batch_size, []
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(train_x))
        for i in range(steps):
            x = torch.from_numpy(train_x[perm[i * b:(i + 1) * b].numpy()]).to(device)
            views = torch.cat([policy(x, g), policy(x, g)]).contiguous(memory_format=fmt)
            _, z = model(views)
            loss = nt_xent_loss(*z.float().chunk(2), params.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds
