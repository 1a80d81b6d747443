"""DVC stage `linear_eval`: the frozen encoder's features -> linear probes on h and z = g(h), a
weighted kNN, and the same probe on a random-init encoder -> metrics/linear_eval.json and
metrics/confusion.csv."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)

from simclr.entry import PARAMS, run_stage
from simclr.linear_eval import linear_eval
from simclr.params import load_params


def main(params: Path = PARAMS):
    linear_eval(load_params(params))


if __name__ == "__main__":
    run_stage(main)
