"""The ablation section of params.yaml: the knobs the grids vary, the base they vary one knob of, and
the grids themselves, each declared once (:class:`GridRule`). :mod:`simclr.core.grids` turns them into
points; :mod:`simclr.core.config` holds them in :class:`~simclr.core.config.Params`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import annotated_types as at
from pydantic import model_validator

from simclr.core.augment_config import Augment, AugmentPair
from simclr.core.validation import Axis, Epochs, Grid, Int, Positive, Section, Seed, problem

# The knobs the ablation grids vary: one declaration each, for the top level, ablation.base,
# the grids and a point named on the command line.
Temperature = Positive
BatchSize = Annotated[Int, at.Ge(2)]
Head = Literal["none", "linear", "mlp"]


@dataclass(frozen=True)
class GridRule:
    """What makes a list of ``ablation`` a grid: ``knob``, the key of ``ablation.base`` its points change
    (their stage ``ablate_<knob>`` and folder ``<knob>/``), and ``every_budget``, whether it runs at every
    budget of ``ablation.epochs`` (to show when its finding appears) or at the first only."""

    knob: str
    every_budget: bool


def AblationGrid(item, knob: str, every_budget: bool):  # a type, read like one
    """A grid of ``item`` values (distinct; [] turns it off) with its :class:`GridRule`."""
    return Annotated[Grid(item), GridRule(knob, every_budget)]


# The grids, each declared once here and named in AblationParams below: the type of a value, the
# knob of `ablation.base` its points change, whether it runs at every budget. The points, their
# stages and files, the dvc.yaml check and the report's sections all follow from these lines
# (simclr.core.grids.GRIDS; simclr.report.ablations.GRID_REPORTS says how each grid is shown).
TemperatureGrid = AblationGrid(Temperature, knob="temperature", every_budget=True)
HeadGrid = AblationGrid(Head, knob="head", every_budget=True)
BatchSizeGrid = AblationGrid(BatchSize, knob="batch_size", every_budget=False)
AugmentGrid = AblationGrid(AugmentPair, knob="augment", every_budget=False)


class AblationBase(Section):
    """The configuration every ablation grid varies one knob of."""

    temperature: Temperature
    """the grids' base τ"""
    batch_size: BatchSize
    """the grids' base global batch"""
    head: Head
    """the grids' base projection head"""
    augment: Augment
    """the grids' base augmentation policy (a preset or a mapping of ops, as `augment`)"""


class AblationParams(Section):
    # The budget axis: the head and temperature grids run at every budget, the batch-size and
    # augmentation grids at the first one. Every point runs once per seed (paired across points).
    epochs: Axis(Epochs)
    """the pretraining budgets: the head and temperature grids run at every one (when a finding appears), the
    batch-size and augmentation grids at the first
    """
    seeds: Axis(Seed)
    """every point runs once per seed; the report shows the mean and a 95% interval, and compares points by their
    per-seed differences
    """
    warmup_epochs: Annotated[Int, at.Ge(0)]
    """warmup of every grid point"""
    train_images: Annotated[Int, at.Ge(0)]
    """train each point on a fixed seeded subset of this many of the images `data.pretrain_on` names (0: all); the
    probes always use the whole labelled train split
    """
    linear_eval_epochs: Annotated[Int, at.Ge(1)]
    """probe epochs per point (other probe settings from `linear_eval`)"""
    base: AblationBase
    """the configuration every grid varies one knob of (kept apart from the top-level knobs so a `-S temperature=…`
    experiment does not rerun the grids)
    """
    temperatures: TemperatureGrid
    """τ grid"""
    heads: HeadGrid
    """head grid"""
    batch_sizes: BatchSizeGrid
    """global batch grid (fixed epochs; lr scaled by `pretrain.lr_scaling`)"""
    augment_pairs: AugmentGrid
    """augmentation grid (Figure 5), applied to one branch"""

    @model_validator(mode="after")
    def _budget_fits(self):
        if self.warmup_epochs > min(self.epochs):
            raise problem("warmup_epochs", self.warmup_epochs, f"<= the shortest ablation.epochs ({min(self.epochs)})")
        sizes = [("base.batch_size", self.base.batch_size)]
        sizes += [(f"batch_sizes[{i}]", bs) for i, bs in enumerate(self.batch_sizes)]
        for key, bs in sizes:
            if self.train_images and bs > self.train_images:
                raise problem(key, bs, f"at most ablation.train_images ({self.train_images})")
        return self
