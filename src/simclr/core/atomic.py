"""Atomic writes: a temporary sibling renamed into place, so a killed stage never leaves a
half-written output (and a failed one leaves the previous output as it was). The one writer of
the stages' JSON files, and the one safe way torch files are read back."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable read is a write: done once, at import, before any thread
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_atomic(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it to ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 less the umask), not
    mkstemp's 0600: outputs are shared through a DVC cache and read by other users."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def json_safe(value):
    """``value`` with every non-finite float (NaN, ±inf) as None: JSON has no NaN, and DVC reads null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | Path, obj) -> None:
    """A stage's JSON output (metrics, per-image records): indented, newline-terminated, NaN as null."""
    write_text_atomic(path, json.dumps(json_safe(obj), indent=2) + "\n")


def torch_load_weights(path: str | Path, map_location="cpu"):
    """``torch.load(weights_only=True)``: tensors and plain values, never pickled code. Whatever torch
    warns about a damaged file is silenced; callers turn a failure into their own one line, since
    torch's own message advises retrying with ``weights_only=False``."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, weights_only=True)


def torch_save_atomic(obj, path: str | Path) -> None:
    import torch

    write_atomic(path, lambda tmp: torch.save(obj, tmp))
