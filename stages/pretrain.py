"""DVC stage `pretrain`: contrastive pretraining on data/prepared -> models/encoder.pt,
metrics/pretrain.json, metrics/pretrain_history.csv.

Starts `pretrain.num_processes` processes itself (torchrun), so `dvc exp run -S
pretrain.num_processes=8` is all a multi-GPU run needs; see simclr.pretrain.launch_pretrain. Per-epoch
checkpoints go to the store of simclr.checkpoint, not to a DVC output.
"""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)

from simclr.entry import PARAMS, run_stage
from simclr.pretrain import launch_pretrain


def main(params: Path = PARAMS):
    launch_pretrain(params)


if __name__ == "__main__":
    run_stage(main)
