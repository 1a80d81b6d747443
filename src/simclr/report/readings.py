"""The report's readings: each sentence that interprets a number, computed from it.

Pure functions of the stage outputs (pandas frames and dicts): no file, no figure, so each
reading is tested on its own numbers. The paper's findings they compare against are cited inline.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simclr.core.config import FIGURE5_OPS, Params
from simclr.core.errors import SimCLRError
from simclr.core.grids import budgets

HEAD_ORDER = ("none", "linear", "mlp")
REPRODUCED, NOT_REPRODUCED, CANNOT_TELL = "reproduced", "not reproduced", "cannot tell"


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings as this run measured it: what the headline lists."""

    claim: str  # the paper's finding, with where it is in the paper
    verdict: str  # REPRODUCED | NOT_REPRODUCED | CANNOT_TELL (a gap within the test-set noise, or too few points)
    evidence: str  # the numbers behind the verdict
    run: str = ""  # which run measured it: the main run, or an ablation budget and its seeds


# --------------------------------------------------------------------------------------------
# noise: every top-1 is a mean over seeds with a 95% interval, every comparison a paired difference
# --------------------------------------------------------------------------------------------
# Student's t, two-sided 95% (the 0.975 quantile), for 1..30 degrees of freedom (any statistics table).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.959964  # the normal's 0.975 quantile


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom; past the table, its
    Cornish-Fisher expansion around the normal (2.042 at 30, exact to 3 decimals)."""
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


class PerSeed(dict):
    """{seed: top-1 %}, and in ``correct`` ({seed: bool array in the test split's order}) which test
    images each seed's model got right, where the stage kept it (:mod:`simclr.core.correctness`).
    A plain number is one run with no per-image record."""

    def __init__(self, values=(), correct: dict | None = None):
        super().__init__(values)
        self.correct = dict(correct or {})


def by_seed(values: PerSeed | float) -> dict:
    return dict(values) if isinstance(values, dict) else {0: float(values)}


def scores(record, col: str) -> PerSeed | float:
    """A top-1 of a stage's metrics (``record[col]``) with its per-image correctness when the record
    carries it (``record["correct"][col]``), as one seed; else the plain number."""
    correct = record.get("correct") if hasattr(record, "get") else None
    if isinstance(correct, dict) and col in correct:
        return PerSeed({0: float(record[col])}, {0: correct[col]})
    return record[col]


_images_paired: ContextVar[bool] = ContextVar("images_paired", default=True)


@contextmanager
def independent_test_errors():
    """Within: every gap's test error as if its two top-1s had been scored on independent images
    (the per-image records ignored), the way the report reads gaps without them."""
    token = _images_paired.set(False)
    try:
        yield
    finally:
        _images_paired.reset(token)


def paired_test_error(a: PerSeed | float, b: PerSeed | float, seeds_a: list, seeds_b: list) -> float | None:
    """Standard error, in points, of mean(a) − mean(b) over the test images both were scored on.

    With D_i the correctness of image i averaged over a's seeds minus that averaged over b's, the
    difference of the two top-1s is the mean of the D_i, so its sampling error over images is
    sqrt(var(D) / n). With one seed a side, D_i is −1, 0 or +1 and this is McNemar's
    sqrt((p₁₀ + p₀₁ − (p₁₀ − p₀₁)²) / n): only the images on which the two disagree count. Models that
    agree on most images get a narrower interval than two independent binomials give; models whose
    errors fall on different images a wider one. None when either side lacks the record of a seed, or
    the records are of different lengths (not the same test images)."""
    ca, cb = getattr(a, "correct", {}), getattr(b, "correct", {})
    if not _images_paired.get() or not all(s in ca for s in seeds_a) or not all(s in cb for s in seeds_b):
        return None
    if len({len(ca[s]) for s in seeds_a} | {len(cb[s]) for s in seeds_b}) != 1:  # not the same test images
        return None
    d = (np.mean([ca[s] for s in seeds_a], axis=0, dtype=float)
         - np.mean([cb[s] for s in seeds_b], axis=0, dtype=float))
    if d.size < 2:
        return None
    return 100.0 * float(np.std(d, ddof=1)) / float(np.sqrt(d.size))


@dataclass(frozen=True)
class Estimate:
    """A top-1 (or a difference of two) over seeds: its mean and the half-width of its 95% interval.

    The interval adds in quadrature the run-to-run spread (t-interval of the per-seed values, when
    there are two seeds or more) and the binomial error of the test split, which every seed shares
    and so does not average out."""

    mean: float
    half: float
    seeds: int

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.half:.1f}"

    @property
    def signed(self) -> str:
        """As a difference reads: the mean with its sign, ``+2.3 ± 1.5``."""
        return f"{self.mean:+.1f} ± {self.half:.1f}"

    @property
    def verdict(self) -> str:
        """For a difference a − b: a > b beyond the interval, a < b beyond it, or cannot tell."""
        if self.mean - self.half > 0:
            return REPRODUCED
        return NOT_REPRODUCED if self.mean + self.half < 0 else CANNOT_TELL


def seed_half_width(values: list[float]) -> float:
    """Half-width of the 95% t-interval of the mean of per-seed values (0 with one seed)."""
    if len(values) < 2:
        return 0.0
    return t975(len(values) - 1) * float(np.std(values, ddof=1)) / float(np.sqrt(len(values)))


def estimate(values: PerSeed | float, n: int) -> Estimate:
    """Mean top-1 over seeds with its 95% interval (seed spread and the test error of n images)."""
    v = list(by_seed(values).values())
    mean = float(np.mean(v))
    return Estimate(mean, float(np.hypot(seed_half_width(v), Z975 * standard_error(mean, n))), len(v))


def paired_gap(a: PerSeed | float, b: PerSeed | float, n: int) -> Estimate:
    """a − b paired by seed (the same seed at two points shares subset, init and order) with its 95%
    interval: the t-interval of the per-seed differences and the test error of the difference.
    Seeds only one side ran are left out. A plain number (one run of another kind, e.g. the main
    run) or no seed in common: the means are compared, each with its own spread over seeds.

    The test error is paired over images (:func:`paired_test_error`) when both sides kept which
    test images each seed got right; otherwise the two top-1s' binomial errors of n images are
    combined as if independent, which overstates it for models that agree on most images."""
    paired = isinstance(a, dict) and isinstance(b, dict) and bool(a.keys() & b.keys())
    va, vb = by_seed(a), by_seed(b)
    if paired:
        seeds_a = seeds_b = sorted(va.keys() & vb.keys())
        diffs = [va[s] - vb[s] for s in seeds_a]
        spread = seed_half_width(diffs)
    else:
        seeds_a, seeds_b = sorted(va), sorted(vb)
        diffs = [float(np.mean(list(va.values())) - np.mean(list(vb.values())))]
        spread = float(np.hypot(seed_half_width(list(va.values())), seed_half_width(list(vb.values()))))
    ma, mb = float(np.mean([va[s] for s in seeds_a])), float(np.mean([vb[s] for s in seeds_b]))
    se = paired_test_error(a, b, seeds_a, seeds_b)
    if se is None:
        se = float(np.hypot(standard_error(ma, n), standard_error(mb, n)))
    return Estimate(float(np.mean(diffs)), float(np.hypot(spread, Z975 * se)), len(diffs) if paired else 1)


def gap_verdict(a: PerSeed | float, b: PerSeed | float, n: int) -> str:
    """`a > b`: reproduced or reversed beyond the 95% interval of the paired difference, else cannot tell."""
    return paired_gap(a, b, n).verdict


def read_pairing(paired: list[Finding], unpaired: list[Finding]) -> str:
    """How many findings are decided with each gap's test error paired over images, and with it taken as
    two independent binomials (the same findings, in the same order), and which ones the pairing changed."""
    def decided(findings: list[Finding]) -> int:
        return sum(f.verdict != CANNOT_TELL for f in findings)

    text = (f"Paired over the test images, {decided(paired)} of {len(paired)} findings are decided (reproduced or "
            f"not); with the two top-1s' test errors taken as independent, {decided(unpaired)}.")
    changed = [f"{p.claim} ({p.run}): {u.verdict} → {p.verdict}" for p, u in zip(paired, unpaired)
               if p.verdict != u.verdict]
    return text + (" The pairing changed " + "; ".join(changed) + "." if changed else "")


def combined_verdict(verdicts: list[str]) -> str:
    """Several gaps of one finding: reproduced only if every one is; any reversed beyond noise, not."""
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_REPRODUCED if NOT_REPRODUCED in verdicts else CANNOT_TELL


def _gap(g: Estimate) -> str:
    over = f" over {g.seeds} seeds" if g.seeds > 1 else ""
    return f"{g.signed} points, 95% interval{over}"


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


def read_gain(le: dict, n: int) -> str:
    g = paired_gap(scores(le, "top1_h"), scores(le, "random_init_top1"), n)
    verdict = ("did not beat the random-init features" if g.mean <= 0 else
               "is within the test-set noise of the random-init features" if g.verdict == CANNOT_TELL
               else "learned useful features")
    return (f"The linear probe on the pretrained h reaches {le['top1_h']:.1f}% top-1 against {le['random_init_top1']:.1f}% "
            f"for the same architecture at random init ({_gap(g)}): pretraining {verdict}.")


def h_vs_gh_finding(le: dict, head: str, n: int) -> Finding | None:
    """The run's own probes on h and on z = g(h) (None with head `none`: z = h)."""
    if head == "none":
        return None
    g = paired_gap(scores(le, "top1_h"), scores(le, "top1_z"), n)
    return Finding("the layer before the projection head (h) is the better representation than z = g(h) (Section 4.2)",
                   g.verdict, f"h {le['top1_h']:.1f}% vs g(h) {le['top1_z']:.1f}% ({_gap(g)})")


def read_head(le: dict, head: str, n: int) -> str:
    f = h_vs_gh_finding(le, head, n)
    if f is None:
        return "With head `none`, z = h, so the two probes read the same features."
    says = {REPRODUCED: "agrees with", NOT_REPRODUCED: "contradicts",
            CANNOT_TELL: "cannot tell, within the test-set noise, whether it agrees with"}[f.verdict]
    g = paired_gap(scores(le, "top1_h"), scores(le, "top1_z"), n)
    return (f"The probe on h scores {le['top1_h']:.1f}% and on z = g(h) {le['top1_z']:.1f}% "
            f"({_gap(g)}); this run {says} the paper's finding that the layer before the "
            "projection head is the better representation.")


def finetune_finding(df: pd.DataFrame, n: int) -> Finding:
    gaps = [(r, paired_gap(scores(r, "finetune_top1"), scores(r, "scratch_top1"), n)) for _, r in df.iterrows()]
    return Finding("with few labels, fine-tuning the pretrained network beats training it from scratch (Table 7)",
                   combined_verdict([g.verdict for _, g in gaps]),
                   "; ".join(f"{r['label_fraction'] * 100:g}% of labels: {r['finetune_top1']:.1f}% vs "
                             f"{r['scratch_top1']:.1f}% ({_gap(g)})" for r, g in gaps))


def read_curves(history: pd.DataFrame) -> str:
    first, last = history.iloc[0], history.iloc[-1]
    text = f"The loss went from {first['loss']:.3f} after epoch 1 to {last['loss']:.3f} after epoch {int(last['epoch'])}"
    knn = history["knn_top1"].dropna()
    if len(knn) >= 2:
        best = history.loc[knn.idxmax()]
        text += (f"; kNN top-1 from {knn.iloc[0]:.1f}% to {knn.iloc[-1]:.1f}% "
                 f"(best {best['knn_top1']:.1f}% at epoch {int(best['epoch'])})")
    return text + "."


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


def read_confusion(conf: pd.DataFrame) -> str:
    per_class = conf.assign(ok=conf["actual"] == conf["predicted"]).groupby("actual")["ok"].mean() * 100
    wrong = conf[conf["actual"] != conf["predicted"]]
    text = (f"Best recognised: {per_class.idxmax()} ({per_class.max():.0f}%); worst: {per_class.idxmin()} "
            f"({per_class.min():.0f}%).")
    if len(wrong):
        a, p = wrong.groupby(["actual", "predicted"]).size().idxmax()
        text += f" The most frequent confusion is {a} taken for {p}."
    return text


def standard_error(top1: float, n: int) -> float:
    """Binomial standard error of a top-1 (%) measured on n test images, in points."""
    p = min(max(top1 / 100.0, 1e-3), 1 - 1e-3)
    return 100.0 * float(np.sqrt(p * (1 - p) / max(n, 1)))


def with_base(params: Params, kind: str, rows: list[dict], results: dict[str, list[dict]]) -> list[dict]:
    """Add the base configuration's points (every seed), measured in another grid, to a one-knob grid:
    at each budget ``kind`` runs, from the first other grid that ran the base at that budget."""
    base = params.ablation.base
    base_values = {"temperature": base.temperature, "head": base.head, "batch_size": base.batch_size}
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


def _noise_note(n: int, top1: float) -> str:
    return (f"at {n} test images, a gap between two models whose errors are independent has a 95% "
            f"interval of about ±{Z975 * 2**0.5 * standard_error(top1, n):.1f} points; models that agree on most "
            "images get a narrower one")


def temperature_finding(df: pd.DataFrame, n: int) -> Finding:
    """An optimum inside the grid: the best τ strictly inside against the best at either edge."""
    claim = "an intermediate NT-Xent temperature works best (Table 5)"
    if len(df) < 3:
        return Finding(claim, CANNOT_TELL, "fewer than three temperatures in the grid")
    at_edge = df["temperature"].isin([df["temperature"].min(), df["temperature"].max()])
    inside, edge = df[~at_edge].loc[lambda d: d["top1_h"].idxmax()], df[at_edge].loc[lambda d: d["top1_h"].idxmax()]
    g = row_gap(inside, edge, n)
    return Finding(claim, g.verdict,
                   f"best inside the grid τ = {inside['temperature']} ({inside['top1_h']:.1f}%) vs best at an edge "
                   f"τ = {edge['temperature']} ({edge['top1_h']:.1f}%; {_gap(g)})")


def read_temperature(df: pd.DataFrame, n: int) -> str:
    best, worst = df.loc[df["top1_h"].idxmax()], df.loc[df["top1_h"].idxmin()]
    text = (f"Linear top-1 on h is highest at τ = {best['temperature']} ({best['top1_h']:.1f}%) and lowest at "
            f"τ = {worst['temperature']} ({worst['top1_h']:.1f}%). ")
    paper = ("The paper finds an intermediate temperature best (τ = 0.1 on ImageNet, Table 5; its CIFAR-10 settings, "
             "Appendix B.9, use 0.5)")
    if len(df) < 3:
        return text + paper + "; two temperatures cannot show an optimum in between."
    finding = temperature_finding(df, n)
    if finding.verdict == CANNOT_TELL:
        return text + paper + f"; here the {finding.evidence}: the interval covers 0, so this run cannot tell."
    if finding.verdict == REPRODUCED:
        return text + paper + f"; this run agrees: the best τ is inside the grid, beyond noise ({finding.evidence})."
    return text + paper + f"; this run does not show that: the best τ is at the edge of the grid ({finding.evidence})."


def _claim(by: pd.DataFrame, a: str, b: str, n: int) -> str:
    """How `a > b` fares: holds, within noise, or reversed (with the gap in points)."""
    g = row_gap(by.loc[a], by.loc[b], n)
    status = {CANNOT_TELL: "within noise", REPRODUCED: "holds", NOT_REPRODUCED: "is reversed"}[g.verdict]
    return f"{a} > {b} {status} ({g.signed} points)"


def read_heads(df: pd.DataFrame, n: int) -> str:
    by = df.set_index("head")
    present = [h for h in HEAD_ORDER if h in by.index]
    order = sorted(present, key=lambda h: -by.loc[h, "top1_h"])
    text = "Probing h: " + ", ".join(f"{h} {by.loc[h, 'top1_h']:.1f}%" for h in order) + ". "
    chain = [h for h in ("mlp", "linear", "none") if h in present]
    if len(chain) >= 2:
        claims = [_claim(by, a, b, n) for a, b in zip(chain, chain[1:])]
        text += "Against the paper's order (nonlinear > linear > none, Figure 8): " + ", ".join(claims) + ". "
    gaps = [(h, h_minus_gh(by.loc[h], n)) for h in present if h != "none"]
    if gaps:
        text += ("h minus g(h): " + ", ".join(f"{h} {g.signed} points" for h, g in gaps)
                 + "; the paper finds the layer before the head much better (over 10 points): ")
        verdict = combined_verdict([g.verdict for _, g in gaps])
        text += {REPRODUCED: "at the ablation budget this run agrees.",
                 NOT_REPRODUCED: "at the ablation budget this run contradicts it (g(h) ahead beyond noise).",
                 CANNOT_TELL: "at the ablation budget this run cannot tell (within noise)."}[verdict]
    return text


def head_order_finding(df: pd.DataFrame, n: int) -> Finding | None:
    """Nonlinear > linear > none on h (Figure 8): reproduced only if every step holds beyond noise."""
    by = df.set_index("head")
    chain = [h for h in ("mlp", "linear", "none") if h in by.index]
    if len(chain) < 2:
        return None
    gaps = [(a, b, row_gap(by.loc[a], by.loc[b], n)) for a, b in zip(chain, chain[1:])]
    names = {"mlp": "a nonlinear projection head", "linear": "a linear head", "none": "no head"}
    claim = " beats ".join(names[h] for h in chain) + " (Figure 8" + ("" if len(chain) == 3 else ", in part") + ")"
    return Finding(claim, combined_verdict([g.verdict for _, _, g in gaps]),
                   ", ".join(f"{a} vs {b}: {_gap(g)}" for a, b, g in gaps))


def head_gap_finding(df: pd.DataFrame, n: int) -> Finding | None:
    """h beats z = g(h) for every head that has one (Section 4.2, Figure 8), paired by seed."""
    by = df.set_index("head")
    heads = [h for h in ("linear", "mlp") if h in by.index]
    if not heads:
        return None
    gaps = {h: h_minus_gh(by.loc[h], n) for h in heads}
    return Finding("the layer before the projection head (h) is the better representation than z = g(h) (Section 4.2)",
                   combined_verdict([g.verdict for g in gaps.values()]),
                   ", ".join(f"{h} head: h − g(h) {g.signed} points" for h, g in gaps.items()))


def budget_gaps(heads: pd.DataFrame, n: int) -> pd.DataFrame:
    """h − g(h) per head and budget with its 95% interval: the data of the budget figure."""
    rows = [(r["head"], r["epochs"], g.mean, g.half) for _, r in heads.iterrows() if r["head"] != "none"
            for g in [h_minus_gh(r, n)]]
    return pd.DataFrame(rows, columns=["head", "epochs", "gap", "half"])


def read_budgets(temperatures: pd.DataFrame | None, heads: pd.DataFrame | None, n: int) -> str:
    """How the temperature optimum and h − g(h) move with the pretraining budget."""
    parts = []
    if temperatures is not None and len(temperatures):
        best = [(e, at_budget(temperatures, e).loc[lambda d: d["top1_h"].astype(float).idxmax()])
                for e in sorted(set(temperatures["epochs"]))]
        parts.append("The best τ by budget: " + ", ".join(
            f"{r['temperature']} after {e} epochs ({estimate(seeds_of(r, 'top1_h'), n)}%)" for e, r in best))
        if "top1_z" in temperatures:  # the head's cost depends on τ too: h − g(h) per τ at the longest budget
            last = at_budget(temperatures, max(temperatures["epochs"]))
            parts.append(f"h − g(h) by τ after {max(temperatures['epochs'])} epochs: " + ", ".join(
                f"τ {r['temperature']} {h_minus_gh(r, n).signed}" for _, r in last.iterrows()))
    if heads is not None and len(heads):
        gaps = budget_gaps(heads, n)
        for head in [h for h in ("mlp", "linear") if h in set(gaps["head"])]:
            g = gaps[gaps["head"] == head]
            parts.append(f"h − g(h) with the {head} head: " + ", ".join(
                f"{r.gap:+.1f} ± {r.half:.1f} after {r.epochs} epochs" for r in g.itertuples()))
    return "; ".join(parts) + "." if parts else ""


def augment_shown(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The augment matrix as the report prints it: each measured cell as mean ± its 95% interval."""
    shown = pd.DataFrame("", index=table.index, columns=table.columns, dtype=object)
    for first in table.index:
        for second in table.columns:
            if not np.isnan(table.loc[first, second]):
                shown.loc[first, second] = str(estimate(_cell(table, first, second), n))
    return shown.rename_axis(index="1st \\ 2nd", columns=None).reset_index()


def augment_cells(table: pd.DataFrame) -> tuple[dict, dict]:
    """The measured cells of the augment matrix: single ops {op: top1}, compositions {(op1, op2): top1}."""
    singles = {op: table.loc[op, op] for op in table.index if not np.isnan(table.loc[op, op])}
    pairs = {(a, b): table.loc[a, b] for a in table.index for b in table.columns if a != b and not np.isnan(table.loc[a, b])}
    return singles, pairs


def _cell(table: pd.DataFrame, first: str, second: str) -> PerSeed | float:
    return table.attrs.get("seeds", {}).get((first, second), table.loc[first, second])


def read_augment(table: pd.DataFrame, n: int) -> str:
    singles, pairs = augment_cells(table)
    parts = []
    if singles:
        best_single = max(singles, key=singles.get)
        parts.append(f"The best single op is {best_single} ({singles[best_single]:.1f}%)")
    if pairs:
        best_pair = max(pairs, key=pairs.get)
        parts.append(f"the best composition {best_pair[0]} then {best_pair[1]} ({pairs[best_pair]:.1f}%)")
    text = "; ".join(parts) + ". "
    finding = augment_finding(table, n)
    if finding is not None:
        mean_single, mean_pair = np.mean(list(singles.values())), np.mean(list(pairs.values()))
        text += (f"Compositions average {mean_pair:.1f}% against {mean_single:.1f}% for single ops. The paper finds that "
                 "no single op suffices, that composing ops helps, and that crop then colour stands out (Figure 5). "
                 f"The best composition against the best single op: {finding.evidence}; ")
        best_pair = max(pairs, key=pairs.get)
        crop_color = {("crop", "color"), ("color", "crop")} & set(pairs)
        if finding.verdict == CANNOT_TELL:
            text += "within noise, so this run cannot tell whether composition helps."
        elif finding.verdict == NOT_REPRODUCED:
            text += "this run does not show composition helping: the best single op is ahead beyond noise."
        elif best_pair in crop_color and len(pairs) == 1:
            text += "this run agrees that composition helps (crop and colour is the only composition in this grid)."
        elif best_pair in crop_color:
            text += "this run agrees on both."
        else:
            text += "this run agrees that composition helps" + (
                ", but crop and colour is not its best cell." if crop_color else " (crop and colour were not in the grid).")
    return text


def batch_size_finding(df: pd.DataFrame, n: int) -> Finding:
    df = df.sort_values("batch_size")
    first, last = df.iloc[0], df.iloc[-1]
    g = row_gap(last, first, n)
    return Finding("at a short, fixed number of epochs a larger batch is better (Figure 9)", g.verdict,
                   f"batch {last['batch_size']} {last['top1_h']:.1f}% vs batch {first['batch_size']} {first['top1_h']:.1f}% "
                   f"({_gap(g)})")


def augment_finding(table: pd.DataFrame, n: int) -> Finding | None:
    """Composing two ops beats the best single op (Figure 5), compared on the best cells."""
    singles, pairs = augment_cells(table)
    if not singles or not pairs:
        return None
    best_single, best_pair = max(singles, key=singles.get), max(pairs, key=pairs.get)
    g = paired_gap(_cell(table, *best_pair), _cell(table, best_single, best_single), n)
    return Finding("composing augmentations beats any single one (Figure 5)", g.verdict,
                   f"best composition {best_pair[0]} then {best_pair[1]} {pairs[best_pair]:.1f}% vs best single op "
                   f"{best_single} {singles[best_single]:.1f}% ({_gap(g)})")


def read_batch_size(df: pd.DataFrame, n: int, epochs: int) -> str:
    df = df.sort_values("batch_size")
    first, last = df.iloc[0], df.iloc[-1]
    best = df.loc[df["top1_h"].idxmax()]
    text = (f"At a fixed {epochs} epochs, linear top-1 on h goes from {first['top1_h']:.1f}% at batch "
            f"{first['batch_size']} to {last['top1_h']:.1f}% at batch {last['batch_size']} (best {best['top1_h']:.1f}% at "
            f"{best['batch_size']}). The paper finds larger batches better when training is short (Figure 9): ")
    verdict = batch_size_finding(df, n).verdict
    if verdict == CANNOT_TELL:
        return text + f"here the difference ({_gap(row_gap(last, first, n))}) is within noise."
    return text + ("this run agrees." if verdict == REPRODUCED else
                   "this run does not; with few images a large batch also means few steps.")


FINETUNE_COLUMNS = ["label_fraction", "labelled_images", "finetune_top1", "scratch_top1", "linear_top1",
                    "gain_over_scratch"]


def finetune_table(rows: list[dict]) -> pd.DataFrame:
    """One row per label fraction (and its ``correct`` record, which the report does not print)."""
    df = pd.DataFrame(rows).sort_values("label_fraction")
    return df[FINETUNE_COLUMNS + (["correct"] if "correct" in df else [])].astype(object)


def read_finetune(df: pd.DataFrame, n: int) -> str:
    """Fine-tuned vs from scratch at each label fraction, each gap against the test-set noise."""
    parts = []
    for _, r in df.iterrows():
        gap = r["finetune_top1"] - r["scratch_top1"]
        verdict = {CANNOT_TELL: "within noise", REPRODUCED: "beyond noise",
                   NOT_REPRODUCED: "reversed, beyond noise"}[gap_verdict(scores(r, "finetune_top1"),
                                                                         scores(r, "scratch_top1"), n)]
        parts.append(f"with {r['label_fraction'] * 100:g}% of the labels ({r['labelled_images']} images) fine-tuning "
                     f"reaches {r['finetune_top1']:.1f}% against {r['scratch_top1']:.1f}% from scratch ({gap:+.1f} "
                     f"points, {verdict}) and the linear probe {r['linear_top1']:.1f}%")
    holds = finetune_finding(df, n).verdict == REPRODUCED
    paper = ("The paper (Table 7) finds fine-tuning a SimCLR network far ahead of supervised training on the same "
             "labels (ImageNet top-1 48.3% vs 25.4% at 1%, 65.6% vs 56.4% at 10%)")
    text = "; ".join(parts)
    verdict = ("this run agrees at every fraction" if holds
               else "this run does not show that at every fraction")
    return f"{text[0].upper()}{text[1:]}. {paper}; {verdict} ({_noise_note(n, float(df['scratch_top1'].mean()))})."
