"""The ablation grids of params.yaml as points: one DVC stage ``ablate_<kind>@<key>-<epochs>-<seed>``
each, whose metrics file is ``<ablation folder>/<kind>/<key>/<epochs>ep-seed<seed>.json`` (dvc.yaml
writes the same path). Which grids there are, and for each its knob (the point's kind), the type of
a value and whether it runs at every budget of ``ablation.epochs`` or the first, is read from their
declaration in :class:`~simclr.core.ablation_config.AblationParams`; every point runs once per seed
of ``ablation.seeds``."""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.core.ablation_config import AblationParams, GridRule
from simclr.core.config import Params, ParamsError
from simclr.core.correctness import read_record
from simclr.core.errors import SimCLRError
from simclr.core.validation import Epochs, Seed, check_value, unwrap


@dataclass(frozen=True)
class GridSpec:
    """One ablation grid as declared: ``ablation.<key>`` lists its values, of type ``item``; each point
    changes ``ablation.base.<kind>`` (stage ``ablate_<kind>``, folder ``<kind>/``)."""

    key: str
    kind: str
    item: Any
    every_budget: bool


def declared_grids() -> tuple[GridSpec, ...]:
    """Every field of AblationParams declared with a :class:`GridRule`, in declaration order."""
    grids = []
    for key, field in AblationParams.model_fields.items():
        rule = next((m for m in [*unwrap(field.annotation)[1], *field.metadata] if isinstance(m, GridRule)), None)
        if rule:
            item = typing.get_args(unwrap(field.annotation)[0])[0]
            grids.append(GridSpec(key, rule.knob, item, rule.every_budget))
    return tuple(grids)


GRIDS = declared_grids()
GRID = {grid.kind: grid for grid in GRIDS}  # by the knob a point changes (its kind)


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
    return epochs if GRID[kind].every_budget else epochs[:1]


def grid_points(params: Params) -> list[Point]:
    ab = params.ablation
    return [Point(grid.kind, value, epochs, seed) for grid in GRIDS for value in getattr(ab, grid.key)
            for epochs in budgets(params, grid.kind) for seed in ab.seeds]


def point_file(root: Path, point: Point) -> Path:
    return root / point.kind / point.key / f"{point.epochs}ep-seed{point.seed}.json"


def parse_point(kind: str, raw: str, epochs: int, seed: int) -> Point:
    """A point from the command line (`python stages/ablate.py temperature 0.5 --epochs 3 --seed 0`),
    checked as its grid is."""
    if kind not in GRID:
        raise ParamsError(f"ablation point kind {kind!r} is not allowed; expected one of {', '.join(GRID)}")
    item, value = GRID[kind].item, raw
    number = unwrap(item)[0]  # the command line is text: a number grid's value is read as its type first
    if number in (int, float):
        try:
            value = number(raw)
        except ValueError:
            pass
    checked = check_value(f"ablation point {kind}", item, value, source="")
    epochs = check_value("ablation point --epochs", Epochs, epochs, source="")
    return Point(kind, checked, epochs, check_value("ablation point --seed", Seed, seed, source=""), raw)


def read_points(params: Params, root: Path, correct_root: Path, test_images: int) -> dict[str, list[dict]]:
    """Every point of the current grids, by kind, with which test images each probe got right
    (``correct``, from the same path under ``correct_root``); a missing or malformed file, or a
    per-image record that is not of ``test_images`` images, is one clear error."""
    results: dict[str, list[dict]] = {grid.kind: [] for grid in GRIDS}
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
