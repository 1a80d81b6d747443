"""Learning rate: batch scaling and linear warmup followed by cosine decay, per step.

SimCLR (Appendix B.1): lr = base * batch / 256 ("linear", base 0.3 with LARS) or
base * sqrt(batch) ("sqrt", base 0.075); warmup over the first epochs, then cosine to 0.
"""

from __future__ import annotations

import math


def scaled_lr(base_lr: float, global_batch: int, scaling: str) -> float:
    if scaling == "linear":
        return base_lr * global_batch / 256
    if scaling == "sqrt":
        return base_lr * math.sqrt(global_batch)
    return base_lr


def lr_at(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    """lr for optimizer step ``step`` (0-based): (step+1)/warmup * peak, then cosine to 0."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
