"""bench/gpu_check.py, the one command for a lent GPU: it must run there the first time."""

import pytest
import torch
from support import ROOT, run

SCRIPT = str(ROOT / "bench/gpu_check.py")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the real check runs instead")
def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    proc = run(["python", SCRIPT], ROOT)
    assert proc.stdout.strip().splitlines() == [
        "gpu_check: no CUDA device on this machine; nothing to check (run it where `nvidia-smi` shows a GPU)"]


@pytest.mark.slow
def test_its_stage_runs_probe_and_table_work_at_toy_size_on_the_cpu():
    """Everything but SyncBatchNorm (CUDA only), at toy size: the table has its rows (the host-wait
    check runs its parts unchecked: only CUDA has a sync debug mode)."""
    proc = run(["python", SCRIPT, "--cpu-smoke"], ROOT, timeout=600)
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 20")]
    checks = [r.split(" | ")[1] for r in rows]
    assert checks == ["host waits in one step (torch.cuda.set_sync_debug_mode)", "pretrain stage, fp32", "stage loop (fp32) / minimal plain-PyTorch loop (fp32)",
                      "short CIFAR-10 run: kNN top-1 / linear top-1 (test)"]
    assert rows[0].count("not checked (CPU)") == 3
    assert all(" img/s" in r for r in rows[1:3]) and rows[3].count(" %") == 2
