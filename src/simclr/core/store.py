"""Where the checkpoint store of ``pretrain.checkpoint_dir`` is, and whether it can be written.

Apart from :mod:`simclr.core.checkpoint` (which needs torch) so that ``check_params`` can check the
store before ``dvc repro`` deletes the pretrain stage's outputs, without importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from simclr.core.errors import CheckpointError


def store_path(setting: str) -> Path:
    """The store folder for a ``pretrain.checkpoint_dir`` value (``~`` and ``$VARS`` expanded)."""
    expanded = os.path.expandvars(os.path.expanduser(setting))
    if "$" in expanded:
        raise CheckpointError(f"pretrain.checkpoint_dir = {setting!r}: {expanded[expanded.index('$'):].split('/')[0]} "
                              "is not set in the environment")
    path = Path(expanded)
    return path if path.is_absolute() else Path(os.environ.get("DVC_ROOT") or ".") / path


def check_store_writable(setting: str) -> None:
    """The store exists and can be written, or its nearest existing parent folder can be (the
    pretrain stage creates the rest). "" keeps no checkpoints: nothing to check."""
    if not setting:
        return
    store = store_path(setting)
    existing = store
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CheckpointError(f"pretrain.checkpoint_dir = {setting!r}: {existing} is a file, so the checkpoint store "
                              f"{store} cannot be made; set pretrain.checkpoint_dir to a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckpointError(f"pretrain.checkpoint_dir = {setting!r}: the checkpoint store {store} is not writable "
                              f"({existing} is not writable for this user); set pretrain.checkpoint_dir")
