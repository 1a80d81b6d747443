"""The cross-experiment view: the DVC experiments of this workspace side by side.

Reads DVC's public Python API, :func:`dvc.api.exp_show` (the workspace, the baseline commit and
every experiment run from it with ``dvc exp run``), and keeps what a comparison needs: one row per
experiment, the params whose values differ between the rows, and the metrics of the chosen files.

``exp_show`` returns flat rows: a column per param and metric, named by its key alone, or
``file:key`` when two files share the key. Params are the columns under a top-level key of
params.yaml (:class:`simclr.core.config.Params`); a metrics file's columns are its keys, read
from the file in the workspace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from simclr.core.config import Params, dotted
from simclr.core.errors import SimCLRError


def dvc_exp_show(repo: Path = Path(".")) -> list[dict]:
    """``dvc.api.exp_show`` for ``repo``; a DVC error is one line."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return dvc.api.exp_show(repo=str(repo))
    except DvcException as exc:
        raise SimCLRError(f"`dvc exp show` failed in {repo.resolve()}: {exc}") from None


def metric_keys(repo: Path, files: tuple[str, ...]) -> dict[str, list[str]]:
    """Each metrics file's keys (nested keys dotted, as DVC names them), read in the workspace."""
    keys = {}
    for name in files:
        path = repo / name
        try:
            keys[name] = list(dotted(json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError) as exc:
            raise SimCLRError(f"{path} cannot be read ({type(exc).__name__}); run `dvc repro` or name another "
                              "file with --metrics") from None
    return keys


def experiments_table(rows: list[dict], metrics: dict[str, list[str]], all_params: bool = False) -> pd.DataFrame:
    """One row per experiment: name, baseline, the params that differ, then the metrics."""
    top_level = set(Params.model_fields)
    table, baseline = [], ""
    for row in rows:
        name = row.get("Experiment") or row.get("rev") or ""
        if row.get("typ") == "baseline" and name != "workspace":
            baseline = name
        params = {k.removeprefix("params.yaml:"): v for k, v in row.items()
                  if k.removeprefix("params.yaml:").split(".")[0] in top_level}
        values = {f"{Path(f).stem}:{k}": row.get(f"{f}:{k}", row.get(k)) for f, keys in metrics.items() for k in keys}
        if all(v is None for v in [*params.values(), *values.values()]):
            continue  # queued, running or failed: nothing to compare yet
        is_experiment = row.get("typ") != "baseline"
        table.append({"experiment": name, "baseline": baseline if is_experiment else "",
                      **{f"param:{k}": v for k, v in params.items()}, **values})
    if not table:
        raise SimCLRError("`dvc exp show` lists no experiments with data; run `dvc exp run` first")
    df = pd.DataFrame(table)
    param_cols = [c for c in df.columns if c.startswith("param:")]
    differing = [c for c in param_cols if all_params or df[c].astype(str).nunique(dropna=False) > 1]
    metric_cols = [c for c in df.columns if c not in param_cols and c not in ("experiment", "baseline")]
    out = df[["experiment", "baseline", *differing, *metric_cols]]
    out = out.astype(object).where(out.notna(), "").map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
    return out.rename(columns=lambda c: c.removeprefix("param:"))
