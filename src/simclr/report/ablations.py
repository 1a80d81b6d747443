"""The ablation part of the report: each grid's table, findings, section and bars for `dvc plots`.

Which grids exist, the knob each point changes and the budgets each runs at come from their
declaration (:data:`simclr.core.grids.GRIDS`); how the report shows a grid (its title, its finding
and reading at one budget, its figure) is one entry of :data:`GRID_REPORTS`, in the report's order.
A grid without an entry is an error at import, so a new grid cannot be left out of the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from simclr.core.augment_config import describe_ops
from simclr.core.config import Params
from simclr.core.grids import GRIDS, budgets
from simclr.report.figures import plot_augment, plot_budgets, plot_heads, plot_one_knob
from simclr.report.readings import (
    Finding,
    augment_finding,
    batch_size_finding,
    head_gap_finding,
    head_order_finding,
    read_augment,
    read_batch_size,
    read_budgets,
    read_heads,
    read_temperature,
    temperature_finding,
)
from simclr.report.render import ReportSection
from simclr.report.tables import (
    at_budget,
    augment_cell,
    augment_matrix,
    augment_shown,
    budget_gaps,
    grid_table,
    shown_table,
    with_base,
)

Bars = pd.DataFrame  # a grid's data for its DVC bar plot: point (text), top1 (%)


@dataclass(frozen=True)
class GridReport:
    """How the report shows a one-knob grid: a table of values x budgets (mean and per-seed values of
    ``columns``), per budget its findings and its reading, and a figure of top-1 against the knob."""

    title: str  # "Ablation: <title>"
    caption: str  # the figure's
    findings: Callable[[pd.DataFrame, int], list[Finding | None]]  # (the table at one budget, test images)
    reading: Callable[[pd.DataFrame, int, int], str]  # (the table at one budget, test images, its epochs)
    columns: tuple[str, ...] = ("top1_h", "top1_z", "knn_top1")
    x_label: str = ""  # the figure's x axis
    log_base: int = 10  # the x axis is log scale in this base (0: linear)

    def table(self, params: Params, kind: str, results: dict[str, list[dict]]) -> pd.DataFrame:
        return grid_table(with_base(params, kind, results[kind], results), kind, list(self.columns))

    def at(self, table: pd.DataFrame, epochs: int) -> pd.DataFrame:
        return at_budget(table, epochs)

    def plot(self, table: pd.DataFrame, kind: str, n: int, path: Path) -> None:
        plot_one_knob(table, kind, n, path, self.x_label, self.log_base)

    def bars(self, params: Params, table: pd.DataFrame, kind: str) -> Bars:
        """Mean top-1 on h per point, the budget in the name when the grid runs at several."""
        per_budget = len(budgets(params, kind)) > 1
        rows = [(f"{r[kind]}" + (f" @{r['epochs']}ep" if per_budget else ""), r["top1_h"]) for _, r in table.iterrows()]
        return _bars(rows)

    def section(self, params: Params, kind: str, table: pd.DataFrame, figures: Path, n: int) -> ReportSection:
        name, epochs = f"ablation_{kind}.png", budgets(params, kind)
        readings = [(f"After {e} epochs: " if len(epochs) > 1 else "") + self.reading(self.at(table, e), n, e)
                    for e in epochs]
        self.plot(table, kind, n, figures / name)
        return ReportSection(f"Ablation: {self.title}", readings, table=shown_table(table, kind, list(self.columns), n),
                             figures=[(name, self.caption)])


class HeadReport(GridReport):
    """The head grid: h and z = g(h) side by side for each head (the paper's Figure 8)."""

    def plot(self, table: pd.DataFrame, kind: str, n: int, path: Path) -> None:
        plot_heads(table, n, path)

    def bars(self, params: Params, table: pd.DataFrame, kind: str) -> Bars:
        per_budget = len(budgets(params, kind)) > 1
        rows = []
        for _, r in table.iterrows():
            at = f" @{r['epochs']}ep" if per_budget else ""
            rows += [(f"{r['head']} h{at}", r["top1_h"]), (f"{r['head']} g(h){at}", r["top1_z"])]
        return _bars(rows)


class AugmentReport(GridReport):
    """The augmentation grid: a matrix of first op x second op (the paper's Figure 5), at one budget."""

    def table(self, params: Params, kind: str, results: dict[str, list[dict]]) -> pd.DataFrame:
        return augment_matrix(results[kind])

    def at(self, table: pd.DataFrame, epochs: int) -> pd.DataFrame:
        return table  # the matrix holds the one budget the grid runs at

    def plot(self, table: pd.DataFrame, kind: str, n: int, path: Path) -> None:
        plot_augment(table, path)

    def bars(self, params: Params, table: pd.DataFrame, kind: str) -> Bars:
        return pd.DataFrame([(str(v), table.loc[augment_cell(v)]) for v in params.ablation.augment_pairs],
                            columns=["point", "top1"])

    def section(self, params: Params, kind: str, table: pd.DataFrame, figures: Path, n: int) -> ReportSection:
        name, seeds = f"ablation_{kind}.png", len(params.ablation.seeds)
        self.plot(table, kind, n, figures / name)
        return ReportSection(f"Ablation: {self.title}", [
            "Ops on one branch only, the other view is the image (the paper's asymmetric setting); each cell is the "
            f"mean over {seeds} seed{'s' if seeds > 1 else ''} ± its 95% interval. " + self.reading(table, n, 0)],
            table=augment_shown(table, n), figures=[(name, self.caption)])


GRID_REPORTS: dict[str, GridReport] = {  # by the grid's kind, in the order the report shows them
    "temperature": GridReport(
        "temperature", "Linear top-1 on h vs NT-Xent temperature, per budget (95% intervals)",
        findings=lambda at, n: [temperature_finding(at, n)], reading=lambda at, n, epochs: read_temperature(at, n),
        columns=("top1_h", "top1_z", "knn_top1", "loss"), x_label="temperature τ"),
    "head": HeadReport(
        "projection head", "Linear top-1 on h and on z = g(h) for each head and budget (95% intervals)",
        findings=lambda at, n: [head_order_finding(at, n), head_gap_finding(at, n)],
        reading=lambda at, n, epochs: read_heads(at, n)),
    "augment": AugmentReport(
        "augmentation pairs", "Linear top-1 on h: single ops on the diagonal, op1 then op2 off it",
        findings=lambda table, n: [augment_finding(table, n)], reading=lambda table, n, epochs: read_augment(table, n)),
    "batch_size": GridReport(
        "batch size", "Linear top-1 on h vs global batch size at fixed epochs (95% intervals)",
        findings=lambda at, n: [batch_size_finding(at, n)], reading=read_batch_size, x_label="global batch size",
        log_base=2),
}
if set(GRID_REPORTS) != {grid.kind for grid in GRIDS}:
    raise RuntimeError(f"the report shows the grids {sorted(GRID_REPORTS)} but params declares "
                       f"{sorted(grid.kind for grid in GRIDS)}: add or remove its GRID_REPORTS entry")


def ablation_tables(params: Params, results: dict[str, list[dict]]) -> dict[str, pd.DataFrame]:
    """Each grid that ran as the readings take it, in the report's order."""
    return {kind: shown.table(params, kind, results) for kind, shown in GRID_REPORTS.items() if results[kind]}


def grid_findings(params: Params, tables: dict[str, pd.DataFrame], n: int) -> list[Finding]:
    """The grids' findings, one per budget each grid ran at."""
    seeds, found = len(params.ablation.seeds), []
    for kind, table in tables.items():
        shown = GRID_REPORTS[kind]
        for e in budgets(params, kind):
            found += [_at(f, e, seeds) for f in shown.findings(shown.at(table, e), n) if f]
    return found


def ablation_sections(params: Params, tables: dict[str, pd.DataFrame], figures: Path, n: int,
                      grids: dict[str, pd.DataFrame]) -> list[ReportSection]:
    """The ablation sections; adds each grid's bars (its `dvc plots` data) to ``grids``."""
    sections = [ReportSection("Ablations", [ablations_intro(params)])]
    for kind, table in tables.items():
        grids[kind] = GRID_REPORTS[kind].bars(params, table, kind)
        sections.append(GRID_REPORTS[kind].section(params, kind, table, figures, n))
    budget_grids = {kind: tables.get(kind) for kind in ("temperature", "head")}
    if len(params.ablation.epochs) > 1 and any(t is not None for t in budget_grids.values()):
        sections.append(budgets_section(budget_grids["temperature"], budget_grids["head"], figures, n))
    return sections


def budgets_section(temperatures: pd.DataFrame | None, heads: pd.DataFrame | None, figures: Path,
                    n: int) -> ReportSection:
    """The head and temperature grids against training length: when each finding appears."""
    plot_budgets(temperatures, None if heads is None else budget_gaps(heads, n), n, figures / "ablation_budgets.png")
    return ReportSection("When the findings appear: training length", [
        "The head and temperature grids at each pretraining budget: does a finding that a short budget cannot "
        "show appear with more training? " + read_budgets(temperatures, heads, n)],
        figures=[("ablation_budgets.png", "Left: linear top-1 on h per temperature vs budget. Right: h − g(h) "
                                          "per head vs budget (above 0: h is better). 95% intervals")])


def ablations_intro(params: Params) -> str:
    """What every grid point is and how the readings compare two of them."""
    ab, base = params.ablation, params.ablation.base
    return (
        f"Each grid point pretrains on {ab.train_images or 'all'} training images from the base configuration "
        f"(temperature {base.temperature}, batch {base.batch_size}, head `{base.head}`, augment "
        f"{describe_ops(base.augment)}) with one knob changed, then probes the frozen encoder (fixed probe settings: "
        "trained on the whole train split, scored on the test split; `params.yaml: ablation`, one DVC stage per point). "
        f"The head and temperature grids run at every budget of `ablation.epochs` ({_epochs(ab.epochs)}), the "
        f"batch-size and augmentation grids at {_epochs(ab.epochs[:1])}. Every point runs once per seed "
        f"({', '.join(map(str, ab.seeds))}): a top-1 is the mean over seeds ± the half-width of its 95% interval "
        "(Student t over seeds, combined with the binomial error of the test split), and each reading compares two "
        "points by their per-seed differences (the same seed draws the same subset, init and order), with the test "
        "error of the difference paired over the images both were scored on."
        + (" With one seed the interval is the test error alone; training noise is not in it." if len(ab.seeds) == 1
           else ""))


def _bars(rows: list[tuple[str, float]]) -> Bars:
    return pd.DataFrame([(p, round(float(v), 2)) for p, v in rows], columns=["point", "top1"])


def _epochs(epochs: tuple[int, ...]) -> str:
    return ", ".join(map(str, epochs)) + (" epoch" if epochs == (1,) else " epochs")


def _at(finding: Finding, epochs: int, seeds: int) -> Finding:
    return replace(finding, run=f"ablation, {epochs} epochs, {seeds} seed{'s' if seeds > 1 else ''}")
