"""Fault injection for the tests, kept out of the production code.

With this folder on PYTHONPATH and SIMCLR_FAULT set, every Python process started beneath
(a stage, DVC's experiment executor, each torchrun rank) runs this file at start-up and patches
``simclr.pretrain`` as soon as it is imported:

    kill-after-epoch:E   SIGKILL right after epoch E's checkpoint is written (a preempted job)
    nan-loss:S           the loss of step S (counted from the process start) is NaN
    nan-grad:S           the loss of step S is finite, its gradients NaN
    stall:R:S            rank R hangs before step S's loss (the other ranks must time out)
    kill-node:R:S        rank R kills its launcher and itself before step S's loss (a node lost)
    trace-readbacks:FILE every host read-back of a tensor (item, tolist, bool(), float(), ...) and
                         every step's loss, in order, written to FILE as JSON at exit
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
    if kind == "trace-readbacks":
        path = ":".join(args)
    else:
        args = [int(a) for a in args]
    if kind == "kill-after-epoch":
        save = module.CheckpointRun.save

        def save_then_die(self, blob):
            save(self, blob)
            if blob["epoch"] == args[0]:
                os.kill(os.getpid(), signal.SIGKILL)

        module.CheckpointRun.save = save_then_die
        return
    if kind == "trace-readbacks":
        _trace_readbacks(module, path)
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
        if kind == "kill-node" and int(os.environ.get("RANK", "0")) == args[0] and calls[0] == args[1]:
            os.kill(os.getppid(), signal.SIGKILL)  # the node's launcher (torchrun's agent) ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and its worker
        loss = loss_fn(*a, **kw)
        if kind == "nan-loss" and calls[0] == args[0]:
            return loss * float("nan")
        if kind == "nan-grad" and calls[0] == args[0]:
            return NaNGradient.apply(loss)
        return loss

    module.global_nt_xent_loss = faulty_loss


def _trace_readbacks(module, path: str) -> None:
    """Record ("step", n) at each loss and ("read", method, caller) at each read-back, in order."""
    import atexit
    import json

    import torch

    trace = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu"):
        method = getattr(torch.Tensor, name)

        def traced(self, *a, _method=method, _name=name, **kw):
            caller = sys._getframe(1)
            trace.append(("read", _name, f"{caller.f_code.co_filename}:{caller.f_lineno}"))
            return _method(self, *a, **kw)

        setattr(torch.Tensor, name, traced)
    loss_fn = module.global_nt_xent_loss

    def traced_loss(*a, **kw):
        trace.append(("step", sum(1 for t in trace if t[0] == "step") + 1))
        return loss_fn(*a, **kw)

    module.global_nt_xent_loss = traced_loss
    atexit.register(lambda: open(path, "w").write(json.dumps(trace)))


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
