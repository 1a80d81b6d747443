"""Which test images a model got right: one bit per image, kept so that gaps can be paired.

Two models scored on the same test images agree on most of them, and the sampling error of the
difference of their top-1s is set by the images on which they disagree (McNemar 1947), not by
the two binomial errors as if the images had been drawn twice. Every probe, fine-tuned network
and ablation point therefore keeps its per-image correctness on the test split, in the split's
order, as text a JSON file holds: ``"<count>:<base64 of the bits, packed 8 to a byte>"``
(10,000 images take 1,673 characters). The report reads it back (:func:`unpack`) and
:func:`simclr.report.statistics.paired_gap` uses it.

Each stage writes its records to a file of its own beside its metrics file (so that `dvc exp
show` and `dvc metrics show` keep to numbers), one entry per metric of that file:
``{"correct": {"top1_h": "10000:...", "top1_z": "10000:...", ...}}``; :func:`read_record` reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import numpy as np

from simclr.core.errors import SimCLRError


def pack(correct) -> str:
    """Per-image correctness (a bool array or tensor, one entry per test image) as compact text."""
    bits = np.asarray(correct, dtype=bool).ravel()
    return f"{bits.size}:{base64.b64encode(np.packbits(bits)).decode('ascii')}"


def unpack(text: str) -> np.ndarray:
    """The bool array :func:`pack` wrote; ValueError if ``text`` is not one."""
    count, sep, payload = str(text).partition(":")
    try:
        n = int(count)
        packed = np.frombuffer(base64.b64decode(payload, validate=True), dtype=np.uint8)
    except (ValueError, binascii.Error):
        raise ValueError("not per-image correctness (<count>:<base64>)") from None
    if not sep or n < 0 or packed.size != (n + 7) // 8:
        raise ValueError(f"per-image correctness says {count} images but holds {packed.size * 8} bits")
    return np.unpackbits(packed, count=n).astype(bool)


def read_record(path: Path, test_images: int, rerun: str) -> dict[str, np.ndarray]:
    """The per-image records of a file a stage wrote (``{"correct": {metric: text}}``), each checked to
    be of the ``test_images`` test images; one clear error naming ``path`` and what to ``rerun``."""
    if not path.is_file():
        raise SimCLRError(f"{path} does not exist; run the stages before the report (dvc repro)")
    try:
        correct = {metric: unpack(bits) for metric, bits in json.loads(path.read_text())["correct"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise SimCLRError(f"{path} is not a per-image record ({type(exc).__name__}: {exc}); rerun {rerun}") from None
    if any(len(bits) != test_images for bits in correct.values()):
        raise SimCLRError(f"{path} is not a record of the {test_images} test images of the prepared data; "
                          f"rerun {rerun}")
    return correct


def top1_and_correct(pred, labels) -> tuple[float, str]:
    """(top-1 %, packed per-image correctness) of predictions against labels."""
    correct = np.asarray(pred).ravel() == np.asarray(labels).ravel()
    return 100.0 * float(correct.mean()), pack(correct)
