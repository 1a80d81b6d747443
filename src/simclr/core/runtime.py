"""Process-level settings: the device the stages run on, and training on CPU cores.

Two measured fixes (2-core x86_64, small_cnn w=32, 512 views per step):
* threads: `accelerate launch` exports OMP_NUM_THREADS=1 unless told `--cpu`, which halves a
  CPU run; we use (usable cores / local processes) threads instead.
* glibc malloc: activations here are tens of MB, above glibc's mmap threshold, so every step
  maps and unmaps them and pays a page fault per 4 KiB (1.9M faults, sys time ~30% of the
  run). Raising the trim and mmap thresholds to 1 GiB with mallopt (glibc 2.36 accepts it)
  keeps freed blocks in the heap: 1355 -> 615 ms per step, page faults 1.9M -> 0.25M.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def default_device():
    """Where the stages run: the first CUDA device when there is one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def single_process_device():
    """:func:`default_device` for a stage that runs in one process; on the CPU, with its threads set."""
    device = default_device()
    if device.type == "cpu":
        configure_cpu(1)
    return device


def affinity() -> list[int]:
    """The ids of the cores this process may run on (not on Linux: all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, and no more than a SLURM job was given
    (``--cpus-per-task``; a cluster without CPU binding, ``TaskPlugin=task/none``, lets a job see
    every core of its node)."""
    cores = len(affinity())
    granted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return max(1, min(cores, int(granted))) if granted.isdigit() else cores


def keep_freed_memory_in_heap() -> bool:
    """mallopt so large freed blocks are reused instead of returned to the OS (glibc only)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok_trim = libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
        ok_mmap = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)  # older glibc refuses >32 MiB: then a no-op
    except (OSError, AttributeError):
        return False
    return bool(ok_trim and ok_mmap)


def configure_cpu(local_processes: int) -> int:
    """Threads = usable cores / local processes, and the malloc setting; returns the thread count."""
    import torch  # here, not at the top: the fan-out CLI reads the cores without loading torch

    threads = max(1, usable_cores() // max(1, local_processes))
    torch.set_num_threads(threads)
    keep_freed_memory_in_heap()
    return threads
