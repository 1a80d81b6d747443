"""The ablation grids of params.yaml as points: one DVC stage ``ablate_<kind>@<key>-<epochs>-<seed>``
each, whose metrics file is ``<ablation folder>/<kind>/<key>/<epochs>ep-seed<seed>.json`` (dvc.yaml
writes the same path). The head and temperature grids run at every budget of ``ablation.epochs``
(when each of the paper's findings appears), the batch-size and augmentation grids at the first;
every point runs once per seed of ``ablation.seeds``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.core.augment_config import AugmentPair
from simclr.core.config import BatchSize, Epochs, Head, Params, ParamsError, Seed, Temperature
from simclr.core.correctness import read_record
from simclr.core.errors import SimCLRError
from simclr.core.validation import check_value

# grid name in params.yaml -> the point kind (stage ablate_<kind>, folder <ablation>/<kind>)
GRIDS = {"temperatures": "temperature", "heads": "head", "batch_sizes": "batch_size", "augment_pairs": "augment"}
BUDGET_KINDS = ("temperature", "head")  # the grids drawn against training length
KINDS = {"temperature": Temperature, "head": Head, "batch_size": BatchSize, "augment": AugmentPair}


@dataclass(frozen=True)
class Point:
    kind: str  # temperature | head | batch_size | augment
    value: Any
    epochs: int
    seed: int
    key: str = ""  # the value as written in the stage name and the metrics file name

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", str(self.value))

    @property
    def stage(self) -> str:
        """The DVC stage (a matrix of value, budget, seed; DVC joins them with '-')."""
        return f"ablate_{self.kind}@{self.key}-{self.epochs}-{self.seed}"


def budgets(params: Params, kind: str) -> tuple[int, ...]:
    epochs = params.ablation.epochs
    return epochs if kind in BUDGET_KINDS else epochs[:1]


def grid_points(params: Params) -> list[Point]:
    ab = params.ablation
    return [Point(kind, value, epochs, seed) for grid, kind in GRIDS.items() for value in getattr(ab, grid)
            for epochs in budgets(params, kind) for seed in ab.seeds]


def point_file(root: Path, point: Point) -> Path:
    return root / point.kind / point.key / f"{point.epochs}ep-seed{point.seed}.json"


def parse_point(kind: str, raw: str, epochs: int, seed: int) -> Point:
    """A point from the command line (`python stages/ablate.py temperature 0.5 --epochs 3 --seed 0`),
    checked as its grid is."""
    if kind not in KINDS:
        raise ParamsError(f"ablation point kind {kind!r} is not allowed; expected one of {', '.join(KINDS)}")
    value: Any = raw
    if kind in ("temperature", "batch_size"):
        try:
            value = (float if kind == "temperature" else int)(raw)
        except ValueError:
            pass
    checked = check_value(f"ablation point {kind}", KINDS[kind], value, source="")
    epochs = check_value("ablation point --epochs", Epochs, epochs, source="")
    return Point(kind, checked, epochs, check_value("ablation point --seed", Seed, seed, source=""), raw)


def read_points(params: Params, root: Path, correct_root: Path, test_images: int) -> dict[str, list[dict]]:
    """Every point of the current grids, by kind, with which test images each probe got right
    (``correct``, from the same path under ``correct_root``); a missing or malformed file, or a
    per-image record that is not of ``test_images`` images, is one clear error."""
    results: dict[str, list[dict]] = {kind: [] for kind in GRIDS.values()}
    for point in grid_points(params):
        path = point_file(root, point)
        if not path.is_file():
            raise SimCLRError(f"{path} does not exist; run the ablation stages before the report (dvc repro)")
        try:
            m = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SimCLRError(f"{path} is not valid JSON ({exc}); rerun `dvc repro -f {point.stage}`")
        m["correct"] = read_record(point_file(correct_root, point), test_images, f"`dvc repro -f {point.stage}`")
        results[point.kind].append({**m, "kind": point.kind, "value": point.value, "epochs": point.epochs,
                                    "seed": point.seed})
    return results
