"""Fault injection for the tests, kept out of the production code.

With this folder on PYTHONPATH and SIMCLR_FAULT set, every Python process started beneath
(a stage, DVC's experiment executor, each torchrun rank) runs this file at start-up and patches
``simclr.pretrain`` as soon as it is imported:

    kill-after-epoch:E   SIGKILL right after epoch E's checkpoint is written (a preempted job)
    nan-loss:S           the loss of step S (counted from the process start) is NaN
    nan-grad:S           the loss of step S is finite, its gradients NaN
    stall:R:S            rank R hangs before step S's loss (the other ranks must time out)
"""

import importlib.abc
import os
import signal
import sys
import time

FAULT = os.environ.get("SIMCLR_FAULT", "")


def _patch(module) -> None:
    import torch

    kind, *args = FAULT.split(":")
    args = [int(a) for a in args]
    if kind == "kill-after-epoch":
        save = module.CheckpointRun.save

        def save_then_die(self, blob):
            save(self, blob)
            if blob["epoch"] == args[0]:
                os.kill(os.getpid(), signal.SIGKILL)

        module.CheckpointRun.save = save_then_die
        return

    class NaNGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * float("nan")

    loss_fn, calls = module.global_nt_xent_loss, [0]

    def faulty_loss(*a, **kw):
        calls[0] += 1
        if kind == "stall" and int(os.environ.get("RANK", "0")) == args[0] and calls[0] == args[1]:
            time.sleep(3600)
        loss = loss_fn(*a, **kw)
        if kind == "nan-loss" and calls[0] == args[0]:
            return loss * float("nan")
        if kind == "nan-grad" and calls[0] == args[0]:
            return NaNGradient.apply(loss)
        return loss

    module.global_nt_xent_loss = faulty_loss


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "simclr.pretrain":
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if FAULT:
    sys.meta_path.insert(0, _PatchAfterImport())
