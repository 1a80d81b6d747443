"""Atomic writes: a temporary sibling renamed into place, so a killed stage never leaves a
half-written output (and a failed one leaves the previous output as it was)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _temporary_sibling(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return tmp


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = _temporary_sibling(path)
    try:
        Path(tmp).write_text(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def torch_save_atomic(obj, path: str | Path) -> None:
    import torch

    path = Path(path)
    tmp = _temporary_sibling(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
