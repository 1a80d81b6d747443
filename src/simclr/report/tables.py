"""The stage outputs as the readings take them: one row per grid value and budget with its per-seed
values (and per-image records), the augmentation matrix, the fine-tuning table, the confusion
matrix; and the top-1s that a reading compares, taken from them.

Pure functions of the stage outputs (pandas frames and dicts): no file, no sentence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simclr.core.augment_config import FIGURE5_OPS
from simclr.core.config import Params
from simclr.core.errors import SimCLRError
from simclr.core.grids import GRIDS, budgets
from simclr.report.statistics import Estimate, PerSeed, estimate, paired_gap

HEAD_ORDER = ("none", "linear", "mlp")


def scores(record, col: str) -> PerSeed | float:
    """A top-1 of a stage's metrics (``record[col]``) with its per-image correctness when the record
    carries it (``record["correct"][col]``), as one seed; else the plain number."""
    correct = record.get("correct") if hasattr(record, "get") else None
    if isinstance(correct, dict) and col in correct:
        return PerSeed({0: float(record[col])}, {0: correct[col]})
    return record[col]


def seeds_of(row, col: str) -> PerSeed | float:
    """A cell's per-seed values where the table carries them (``<col>_seeds``), else the number."""
    seeds = row.get(f"{col}_seeds") if hasattr(row, "get") else None
    return seeds if isinstance(seeds, dict) else row[col]


def estimates(df: pd.DataFrame, col: str, n: int) -> list[Estimate]:
    """Each row's ``col`` as the mean over seeds with its 95% interval."""
    return [estimate(seeds_of(r, col), n) for _, r in df.iterrows()]


def row_gap(a, b, n: int) -> Estimate:
    """Linear top-1 on h of table row ``a`` minus that of row ``b``, paired by seed."""
    return paired_gap(seeds_of(a, "top1_h"), seeds_of(b, "top1_h"), n)


def h_minus_gh(row, n: int) -> Estimate:
    """A table row's top-1 on h minus on z = g(h), paired by seed: what the projection head costs."""
    return paired_gap(seeds_of(row, "top1_h"), seeds_of(row, "top1_z"), n)


def confusion_matrix(conf: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """Row-normalised confusion (% of each actual class), rows and columns in the dataset's class
    order. Names are matched as text: a class named "3" is the label "3", never the number 3."""
    actual, predicted = conf["actual"].astype(str), conf["predicted"].astype(str)
    names = [str(c) for c in class_names]
    unknown = sorted((set(actual) | set(predicted)) - set(names))
    if unknown:
        raise SimCLRError(f"the confusion CSV names classes the dataset does not have ({', '.join(unknown[:5])}); "
                          "rerun `dvc repro -f linear_eval`")
    table = pd.crosstab(pd.Categorical(actual, categories=names), pd.Categorical(predicted, categories=names),
                        dropna=False)
    totals = table.sum(axis=1).replace(0, 1)
    table = table.div(totals, axis=0) * 100
    table.index.name, table.columns.name = "actual", "predicted"
    return table


def with_base(params: Params, kind: str, rows: list[dict], results: dict[str, list[dict]]) -> list[dict]:
    """Add the base configuration's points (every seed), measured in another grid, to a one-knob grid:
    at each budget ``kind`` runs, from the first other grid that ran the base at that budget."""
    base = params.ablation.base
    base_values = {grid.kind: getattr(base, grid.kind) for grid in GRIDS}  # (no augment pair equals a policy)
    added = []
    for epochs in budgets(params, kind):
        if any(r["value"] == base_values[kind] and r["epochs"] == epochs for r in rows):
            continue
        for other, value in base_values.items():
            shared = [r for r in results.get(other, []) if other != kind and r["value"] == value
                      and r["epochs"] == epochs]
            if shared:
                added += [{**r, "kind": kind, "value": base_values[kind], "shared_from": f"{other}={value}"}
                          for r in shared]
                break
    return rows + added


def grid_table(rows: list[dict], kind: str, columns: list[str]) -> pd.DataFrame:
    """One row per value and budget: the mean of each column over seeds, the per-seed values the
    readings pair (``<column>_seeds``, {seed: value}) and the number of seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["value"], r.get("epochs", 0)), []).append(r)
    table = []
    for (value, epochs), runs in groups.items():
        row = {kind: value, "epochs": epochs, "seeds": len(runs), "shared_from": runs[0].get("shared_from", "")}
        for col in columns:
            per_seed = PerSeed({r.get("seed", i): r[col] for i, r in enumerate(runs)},
                               {r.get("seed", i): r["correct"][col] for i, r in enumerate(runs)
                                if col in r.get("correct", {})})
            row[col], row[f"{col}_seeds"] = float(np.mean(list(per_seed.values()))), per_seed
        table.append(row)
    df = pd.DataFrame(table)
    order = (lambda v: v.map(HEAD_ORDER.index)) if kind == "head" else None
    stable = "stable"  # sort_values' own `kind` (the algorithm), not the grid's
    df = df.sort_values(kind, key=order, kind=stable).sort_values("epochs", kind=stable).reset_index(drop=True)
    df["note"] = df["shared_from"].fillna("").map(lambda s: f"base point (the {s} run)" if s else "")
    return df[[kind, "epochs", "seeds", *columns, *(f"{c}_seeds" for c in columns), "note"]].astype(object)


def shown_table(df: pd.DataFrame, kind: str, columns: list[str], n: int) -> pd.DataFrame:
    """A grid table as the report prints it: each top-1 as mean ± its 95% interval, per-seed values hidden."""
    out = df[[kind, "epochs", "seeds"]].copy()
    for col in columns:
        if col.startswith("top1") or col.endswith("top1"):
            out[col] = [str(e) for e in estimates(df, col, n)]
        else:
            out[col] = [f"{v:.4g}" for v in df[col]]
    out["note"] = df["note"]
    return out.astype(object)


def at_budget(df: pd.DataFrame, epochs: int) -> pd.DataFrame:
    return df[df["epochs"] == epochs].reset_index(drop=True)


def augment_cell(pair) -> tuple[str, str]:
    """(first op, second op) of an augment point: a single op is its own pair, the diagonal."""
    ops = str(pair).split("+")
    return ops[0], ops[-1]


def augment_matrix(rows: list[dict]) -> pd.DataFrame:
    """Linear top-1 on h by (first op, second op), the mean over seeds; a single op sits on the diagonal
    (Figure 5). The per-seed values of each cell are in ``table.attrs["seeds"]`` for the readings."""
    seeds: dict[tuple[str, str], PerSeed] = {}
    for r in rows:
        cell = seeds.setdefault(augment_cell(r["value"]), PerSeed())
        cell[r.get("seed", 0)] = r["top1_h"]
        if "top1_h" in r.get("correct", {}):
            cell.correct[r.get("seed", 0)] = r["correct"]["top1_h"]
    names = [op for op in FIGURE5_OPS if any(op in key for key in seeds)]
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for (first, second), per_seed in seeds.items():
        table.loc[first, second] = float(np.mean(list(per_seed.values())))
    table.index.name, table.columns.name = "1st transformation", "2nd transformation"
    table.attrs["seeds"] = seeds
    return table


def budget_gaps(heads: pd.DataFrame, n: int) -> pd.DataFrame:
    """h − g(h) per head and budget with its 95% interval: the data of the budget figure."""
    rows = [(r["head"], r["epochs"], g.mean, g.half) for _, r in heads.iterrows() if r["head"] != "none"
            for g in [h_minus_gh(r, n)]]
    return pd.DataFrame(rows, columns=["head", "epochs", "gap", "half"])


def augment_shown(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The augment matrix as the report prints it: each measured cell as mean ± its 95% interval."""
    shown = pd.DataFrame("", index=table.index, columns=table.columns, dtype=object)
    for first in table.index:
        for second in table.columns:
            if not np.isnan(table.loc[first, second]):
                shown.loc[first, second] = str(estimate(cell_scores(table, first, second), n))
    return shown.rename_axis(index="1st \\ 2nd", columns=None).reset_index()


def augment_cells(table: pd.DataFrame) -> tuple[dict, dict]:
    """The measured cells of the augment matrix: single ops {op: top1}, compositions {(op1, op2): top1}."""
    singles = {op: table.loc[op, op] for op in table.index if not np.isnan(table.loc[op, op])}
    pairs = {(a, b): table.loc[a, b] for a in table.index for b in table.columns if a != b and not np.isnan(table.loc[a, b])}
    return singles, pairs


def cell_scores(table: pd.DataFrame, first: str, second: str) -> PerSeed | float:
    return table.attrs.get("seeds", {}).get((first, second), table.loc[first, second])


FINETUNE_COLUMNS = ["label_fraction", "labelled_images", "finetune_top1", "scratch_top1", "linear_top1",
                    "gain_over_scratch"]


def finetune_table(rows: list[dict]) -> pd.DataFrame:
    """One row per label fraction (and its ``correct`` record, which the report does not print)."""
    df = pd.DataFrame(rows).sort_values("label_fraction")
    return df[FINETUNE_COLUMNS + (["correct"] if "correct" in df else [])].astype(object)
