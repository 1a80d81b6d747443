"""The cross-experiment view: the DVC experiments of this workspace side by side.

Reads ``dvc exp show --json`` (the workspace, the baseline commit and every experiment run from
it with ``dvc exp run``) and keeps what a comparison needs: one row per experiment, the params
whose values differ between the rows, and the metrics of the chosen files.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from simclr.errors import SimCLRError

DEFAULT_METRICS = ("metrics/linear_eval.json", "metrics/pretrain.json")


def dvc_exp_show(repo: Path = Path(".")) -> list[dict]:
    """The parsed output of `dvc exp show --json` run in ``repo``."""
    try:
        proc = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise SimCLRError("dvc is not on PATH; activate the project's environment (make install)") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SimCLRError(f"`dvc exp show --json` failed in {repo.resolve()}: {last}")
    try:
        return json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise SimCLRError(f"`dvc exp show --json` printed something that is not JSON ({exc})") from None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def _records(entries: list[dict], baseline: str | None = None):
    """(name, rev, baseline, data) for the workspace, each baseline commit and its experiments."""
    for entry in entries:
        rev = entry.get("rev", "")
        name = entry.get("name") or (rev if rev == "workspace" else rev[:7])
        yield name, rev, baseline, entry.get("data") or {}
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                exp_name = rev.get("name") or exp.get("name") or rev.get("rev", "")[:7]
                yield exp_name, rev.get("rev", ""), name, rev.get("data") or {}


def experiments_table(entries: list[dict], metric_files: tuple[str, ...] = DEFAULT_METRICS,
                      all_params: bool = False) -> pd.DataFrame:
    """One row per experiment: name, baseline, the params that differ, then the metrics."""
    rows, param_cols, metric_cols = [], [], []
    for name, rev, baseline, data in _records(entries):
        if not data:
            continue
        row: dict[str, Any] = {"experiment": name, "baseline": baseline or ""}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        for k, v in _flatten(params).items():
            row[f"param:{k}"] = v
            if f"param:{k}" not in param_cols:
                param_cols.append(f"param:{k}")
        for path in metric_files:
            values = ((data.get("metrics") or {}).get(path) or {}).get("data") or {}
            stem = Path(path).stem
            for k, v in _flatten(values).items():
                col = f"{stem}:{k}"
                row[col] = v
                if col not in metric_cols:
                    metric_cols.append(col)
        rows.append(row)
    if not rows:
        raise SimCLRError("`dvc exp show` lists no experiments with data; run `dvc exp run` first")
    df = pd.DataFrame(rows)
    differing = [c for c in param_cols if all_params or df[c].astype(str).nunique(dropna=False) > 1]
    table = df[["experiment", "baseline", *differing, *metric_cols]]
    table = table.astype(object).where(table.notna(), "").map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
    return table.rename(columns=lambda c: c.removeprefix("param:"))


def to_markdown(df: pd.DataFrame) -> str:
    from simclr.report import markdown_table

    return markdown_table(df)
