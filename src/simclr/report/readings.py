"""The report's readings: each sentence that interprets a number, computed from it, and the
paper's findings with this run's verdicts.

Pure functions of the tables (:mod:`simclr.report.tables`) and the statistics
(:mod:`simclr.report.statistics`): no file, no figure, so each reading is tested on its own numbers. The paper's findings they compare against are cited inline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simclr.report.statistics import (
    CANNOT_TELL,
    NOT_REPRODUCED,
    REPRODUCED,
    Z975,
    Estimate,
    combined_verdict,
    estimate,
    paired_gap,
    standard_error,
)
from simclr.report.tables import (
    HEAD_ORDER,
    at_budget,
    augment_cells,
    budget_gaps,
    cell_scores,
    h_minus_gh,
    row_gap,
    scores,
    seeds_of,
)


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings as this run measured it: what the headline lists."""

    claim: str  # the paper's finding, with where it is in the paper
    verdict: str  # REPRODUCED | NOT_REPRODUCED | CANNOT_TELL (a gap within the test-set noise, or too few points)
    evidence: str  # the numbers behind the verdict
    run: str = ""  # which run measured it: the main run, or an ablation budget and its seeds


def read_pairing(paired: list[Finding], unpaired: list[Finding]) -> str:
    """How many findings are decided with each gap's test error paired over images, and with it taken as
    two independent binomials (the same findings, in the same order), and which ones the pairing changed."""
    def decided(findings: list[Finding]) -> int:
        return sum(f.verdict != CANNOT_TELL for f in findings)

    if not paired:
        return ""
    text = (f"Paired over the test images, {decided(paired)} of {len(paired)} findings are decided (reproduced or "
            f"not); with the two top-1s' test errors taken as independent, {decided(unpaired)}.")
    changed = [f"{p.claim} ({p.run}): {u.verdict} → {p.verdict}" for p, u in zip(paired, unpaired)
               if p.verdict != u.verdict]
    return text + (" The pairing changed " + "; ".join(changed) + "." if changed else "")


def _gap(g: Estimate) -> str:
    over = f" over {g.seeds} seeds" if g.seeds > 1 else ""
    return f"{g.signed} points, 95% interval{over}"


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


def read_confusion(conf: pd.DataFrame) -> str:
    per_class = conf.assign(ok=conf["actual"] == conf["predicted"]).groupby("actual")["ok"].mean() * 100
    wrong = conf[conf["actual"] != conf["predicted"]]
    text = (f"Best recognised: {per_class.idxmax()} ({per_class.max():.0f}%); worst: {per_class.idxmin()} "
            f"({per_class.min():.0f}%).")
    if len(wrong):
        a, p = wrong.groupby(["actual", "predicted"]).size().idxmax()
        text += f" The most frequent confusion is {a} taken for {p}."
    return text


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
    g = paired_gap(cell_scores(table, *best_pair), cell_scores(table, best_single, best_single), n)
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


def read_finetune(df: pd.DataFrame, n: int) -> str:
    """Fine-tuned vs from scratch at each label fraction, each gap against the test-set noise."""
    parts = []
    for _, r in df.iterrows():
        gap = r["finetune_top1"] - r["scratch_top1"]
        verdict = {CANNOT_TELL: "within noise", REPRODUCED: "beyond noise",
                   NOT_REPRODUCED: "reversed, beyond noise"}[paired_gap(scores(r, "finetune_top1"),
                                                                        scores(r, "scratch_top1"), n).verdict]
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
