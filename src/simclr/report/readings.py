"""The report's readings: each sentence that interprets a number, computed from it.

Pure functions of the stage outputs (pandas frames and dicts): no file, no figure, so each
reading is tested on its own numbers. The paper's findings they compare against are cited inline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simclr.core.config import FIGURE5_OPS, Params
from simclr.core.errors import SimCLRError

HEAD_ORDER = ("none", "linear", "mlp")
REPRODUCED, NOT_REPRODUCED, CANNOT_TELL = "reproduced", "not reproduced", "cannot tell"


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings as this run measured it: what the headline lists."""

    claim: str  # the paper's finding, with where it is in the paper
    verdict: str  # REPRODUCED | NOT_REPRODUCED | CANNOT_TELL (a gap within the test-set noise, or too few points)
    evidence: str  # the numbers behind the verdict


def gap_verdict(a: float, b: float, n: int) -> str:
    """`a > b` on the same n test images: reproduced or reversed beyond 2 standard errors, else cannot tell."""
    if not beyond_noise(a, b, n):
        return CANNOT_TELL
    return REPRODUCED if a > b else NOT_REPRODUCED


def combined_verdict(verdicts: list[str]) -> str:
    """Several gaps of one finding: reproduced only if every one is; any reversed beyond noise, not."""
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_REPRODUCED if NOT_REPRODUCED in verdicts else CANNOT_TELL


def _gap(a: float, b: float, n: int) -> str:
    return f"{a - b:+.1f} points; 2 SE of the difference {two_standard_errors(a, b, n):.1f}"


def read_gain(le: dict, n: int) -> str:
    gain = le["top1_h"] - le["random_init_top1"]
    verdict = ("did not beat the random-init features" if gain <= 0 else
               "is within the test-set noise of the random-init features" if not beyond_noise(le["top1_h"], le["random_init_top1"], n)
               else "learned useful features")
    return (f"The linear probe on the pretrained h reaches {le['top1_h']:.1f}% top-1 against {le['random_init_top1']:.1f}% "
            f"for the same architecture at random init ({_gap(le['top1_h'], le['random_init_top1'], n)}): "
            f"pretraining {verdict}.")


def h_vs_gh_finding(le: dict, head: str, n: int) -> Finding | None:
    """The run's own probes on h and on z = g(h) (None with head `none`: z = h)."""
    if head == "none":
        return None
    return Finding("the layer before the projection head (h) is the better representation than z = g(h) (Section 4.2)",
                   gap_verdict(le["top1_h"], le["top1_z"], n),
                   f"h {le['top1_h']:.1f}% vs g(h) {le['top1_z']:.1f}% ({_gap(le['top1_h'], le['top1_z'], n)})")


def read_head(le: dict, head: str, n: int) -> str:
    f = h_vs_gh_finding(le, head, n)
    if f is None:
        return "With head `none`, z = h, so the two probes read the same features."
    says = {REPRODUCED: "agrees with", NOT_REPRODUCED: "contradicts",
            CANNOT_TELL: "cannot tell, within the test-set noise, whether it agrees with"}[f.verdict]
    return (f"The probe on h scores {le['top1_h']:.1f}% and on z = g(h) {le['top1_z']:.1f}% "
            f"({_gap(le['top1_h'], le['top1_z'], n)}); this run {says} the paper's finding that the layer before the "
            "projection head is the better representation.")


def finetune_finding(df: pd.DataFrame, n: int) -> Finding:
    verdict = combined_verdict([gap_verdict(r["finetune_top1"], r["scratch_top1"], n) for _, r in df.iterrows()])
    return Finding("with few labels, fine-tuning the pretrained network beats training it from scratch (Table 7)",
                   verdict, "; ".join(f"{r['label_fraction'] * 100:g}% of labels: {r['finetune_top1']:.1f}% vs "
                                      f"{r['scratch_top1']:.1f}% ({_gap(r['finetune_top1'], r['scratch_top1'], n)})"
                                      for _, r in df.iterrows()))


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


def two_standard_errors(a: float, b: float, n: int) -> float:
    """Twice the standard error of the difference of two top-1 values on the same n test images."""
    return 2 * float(np.hypot(standard_error(a, n), standard_error(b, n)))


def beyond_noise(a: float, b: float, n: int) -> bool:
    """Whether two top-1 values on the same n test images differ by more than 2 standard errors."""
    return abs(a - b) > two_standard_errors(a, b, n)


def with_base(params: Params, kind: str, rows: list[dict], results: dict[str, list[dict]]) -> list[dict]:
    """Add the base configuration's point, measured in another grid, to a one-knob grid."""
    base = params.ablation.base
    base_values = {"temperature": base.temperature, "head": base.head, "batch_size": base.batch_size}
    if any(r["value"] == base_values[kind] for r in rows):
        return rows
    for other, value in base_values.items():
        for r in results.get(other, []) if other != kind else []:
            if r["value"] == value:
                return rows + [{**r, "kind": kind, "value": base_values[kind], "shared_from": f"{other}={value}"}]
    return rows


def grid_table(rows: list[dict], kind: str, columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df = df.sort_values("value", key=lambda v: v.map(HEAD_ORDER.index) if kind == "head" else v)
    df = df.rename(columns={"value": kind})
    if "shared_from" not in df:
        df["shared_from"] = ""
    df["note"] = df["shared_from"].fillna("").map(lambda s: f"base point (the {s} run)" if s else "")
    return df[[kind, *columns, "note"]].astype(object)


def augment_matrix(rows: list[dict]) -> pd.DataFrame:
    """Linear top-1 on h by (first op, second op); a single op sits on the diagonal (Figure 5)."""
    cells = {}
    for r in rows:
        ops = str(r["value"]).split("+")
        first, second = ops[0], ops[-1]
        cells[(first, second)] = r["top1_h"]
    names = [op for op in FIGURE5_OPS if any(op in key for key in cells)]
    table = pd.DataFrame(np.nan, index=names, columns=names)
    for (first, second), v in cells.items():
        table.loc[first, second] = v
    table.index.name, table.columns.name = "1st transformation", "2nd transformation"
    return table


def _noise_note(n: int, top1: float) -> str:
    return f"one standard error is about {standard_error(top1, n):.1f} points at {n} test images"


def temperature_finding(df: pd.DataFrame, n: int) -> Finding:
    """An optimum inside the grid: the best τ strictly inside against the best at either edge."""
    claim = "an intermediate NT-Xent temperature works best (Table 5)"
    if len(df) < 3:
        return Finding(claim, CANNOT_TELL, "fewer than three temperatures in the grid")
    at_edge = df["temperature"].isin([df["temperature"].min(), df["temperature"].max()])
    inside, edge = df[~at_edge].loc[lambda d: d["top1_h"].idxmax()], df[at_edge].loc[lambda d: d["top1_h"].idxmax()]
    return Finding(claim, gap_verdict(inside["top1_h"], edge["top1_h"], n),
                   f"best inside the grid τ = {inside['temperature']} ({inside['top1_h']:.1f}%) vs best at an edge "
                   f"τ = {edge['temperature']} ({edge['top1_h']:.1f}%; {_gap(inside['top1_h'], edge['top1_h'], n)})")


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
        return (text + paper + f"; here the {finding.evidence} are within noise ({_noise_note(n, best['top1_h'])}), "
                "so this run cannot tell.")
    if finding.verdict == REPRODUCED:
        return text + paper + f"; this run agrees: the best τ is inside the grid, beyond noise ({finding.evidence})."
    return text + paper + f"; this run does not show that: the best τ is at the edge of the grid ({finding.evidence})."


def _claim(by: pd.DataFrame, a: str, b: str, n: int) -> str:
    """How `a > b` fares: holds, within noise, or reversed (with the gap in points)."""
    d = by.loc[a, "top1_h"] - by.loc[b, "top1_h"]
    status = ("within noise" if not beyond_noise(by.loc[a, "top1_h"], by.loc[b, "top1_h"], n)
              else "holds" if d > 0 else "is reversed")
    return f"{a} > {b} {status} ({d:+.1f} points)"


def read_heads(df: pd.DataFrame, n: int) -> str:
    by = df.set_index("head")
    present = [h for h in HEAD_ORDER if h in by.index]
    order = sorted(present, key=lambda h: -by.loc[h, "top1_h"])
    text = "Probing h: " + ", ".join(f"{h} {by.loc[h, 'top1_h']:.1f}%" for h in order) + ". "
    chain = [h for h in ("mlp", "linear", "none") if h in present]
    if len(chain) >= 2:
        claims = [_claim(by, a, b, n) for a, b in zip(chain, chain[1:])]
        text += "Against the paper's order (nonlinear > linear > none, Figure 8): " + ", ".join(claims) + ". "
    gaps = [(h, by.loc[h, "top1_h"] - by.loc[h, "top1_z"]) for h in present if h != "none"]
    if gaps:
        text += ("h minus g(h): " + ", ".join(f"{h} {g:+.1f} points" for h, g in gaps) + "; the paper finds the layer "
                 "before the head much better (over 10 points): ")
        verdict = combined_verdict([gap_verdict(by.loc[h, "top1_h"], by.loc[h, "top1_z"], n) for h, _ in gaps])
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
    verdict = combined_verdict([gap_verdict(by.loc[a, "top1_h"], by.loc[b, "top1_h"], n) for a, b in zip(chain, chain[1:])])
    names = {"mlp": "a nonlinear projection head", "linear": "a linear head", "none": "no head"}
    claim = " beats ".join(names[h] for h in chain) + " (Figure 8" + ("" if len(chain) == 3 else ", in part") + ")"
    return Finding(claim, verdict,
                   ", ".join(f"{a} vs {b}: {_gap(by.loc[a, 'top1_h'], by.loc[b, 'top1_h'], n)}"
                             for a, b in zip(chain, chain[1:])))


def augment_cells(table: pd.DataFrame) -> tuple[dict, dict]:
    """The measured cells of the augment matrix: single ops {op: top1}, compositions {(op1, op2): top1}."""
    singles = {op: table.loc[op, op] for op in table.index if not np.isnan(table.loc[op, op])}
    pairs = {(a, b): table.loc[a, b] for a in table.index for b in table.columns if a != b and not np.isnan(table.loc[a, b])}
    return singles, pairs


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
    return Finding("at a short, fixed number of epochs a larger batch is better (Figure 9)",
                   gap_verdict(last["top1_h"], first["top1_h"], n),
                   f"batch {last['batch_size']} {last['top1_h']:.1f}% vs batch {first['batch_size']} {first['top1_h']:.1f}% "
                   f"({_gap(last['top1_h'], first['top1_h'], n)})")


def augment_finding(table: pd.DataFrame, n: int) -> Finding | None:
    """Composing two ops beats the best single op (Figure 5), compared on the best cells."""
    singles, pairs = augment_cells(table)
    if not singles or not pairs:
        return None
    best_single, best_pair = max(singles, key=singles.get), max(pairs, key=pairs.get)
    return Finding("composing augmentations beats any single one (Figure 5)",
                   gap_verdict(pairs[best_pair], singles[best_single], n),
                   f"best composition {best_pair[0]} then {best_pair[1]} {pairs[best_pair]:.1f}% vs best single op "
                   f"{best_single} {singles[best_single]:.1f}% ({_gap(pairs[best_pair], singles[best_single], n)})")


def read_batch_size(df: pd.DataFrame, n: int, epochs: int) -> str:
    df = df.sort_values("batch_size")
    first, last = df.iloc[0], df.iloc[-1]
    best = df.loc[df["top1_h"].idxmax()]
    text = (f"At a fixed {epochs} epochs, linear top-1 on h goes from {first['top1_h']:.1f}% at batch "
            f"{first['batch_size']} to {last['top1_h']:.1f}% at batch {last['batch_size']} (best {best['top1_h']:.1f}% at "
            f"{best['batch_size']}). The paper finds larger batches better when training is short (Figure 9): ")
    verdict = batch_size_finding(df, n).verdict
    if verdict == CANNOT_TELL:
        return text + f"here the difference is within noise ({_noise_note(n, last['top1_h'])})."
    return text + ("this run agrees." if verdict == REPRODUCED else
                   "this run does not; with few images a large batch also means few steps.")


def finetune_table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows).sort_values("label_fraction")
    return df[["label_fraction", "labelled_images", "finetune_top1", "scratch_top1", "linear_top1",
               "gain_over_scratch"]].astype(object)


def read_finetune(df: pd.DataFrame, n: int) -> str:
    """Fine-tuned vs from scratch at each label fraction, each gap against the test-set noise."""
    parts = []
    for _, r in df.iterrows():
        gap = r["finetune_top1"] - r["scratch_top1"]
        verdict = {CANNOT_TELL: "within noise", REPRODUCED: "beyond noise",
                   NOT_REPRODUCED: "reversed, beyond noise"}[gap_verdict(r["finetune_top1"], r["scratch_top1"], n)]
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
