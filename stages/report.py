"""DVC stage `report`: every metric, curve and ablation point -> reports/report.md, the
self-contained reports/index.html and reports/figures/."""

from pathlib import Path

import _local_src  # noqa: F401  (before any simclr import: this checkout's src/, also in DVC's temp copies)

from simclr.entry import PARAMS, run_stage
from simclr.params import load_params
from simclr.report import build_report


def main(params: Path = PARAMS):
    print(f"report: {build_report(load_params(params))}")


if __name__ == "__main__":
    run_stage(main)
