"""The report's readings: each sentence that interprets a number, computed from it.

Pure functions of the stage outputs (pandas frames and dicts): no file, no figure, so each
reading is tested on its own numbers. The paper's findings they compare against are cited inline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simclr.core.config import FIGURE5_OPS, Params

HEAD_ORDER = ("none", "linear", "mlp")


def read_gain(le: dict) -> str:
    gain = le["top1_h"] - le["random_init_top1"]
    verdict = ("learned useful features" if gain >= 10 else
               "learned a little" if gain > 0 else "did not beat the random-init features")
    return (f"The linear probe on the pretrained h reaches {le['top1_h']:.1f}% top-1 against {le['random_init_top1']:.1f}% "
            f"for the same architecture at random init ({gain:+.1f} points): pretraining {verdict}.")


def read_head(le: dict, head: str) -> str:
    if head == "none":
        return "With head `none`, z = h, so the two probes read the same features."
    diff = le["top1_h"] - le["top1_z"]
    agrees = "agrees with" if diff > 0 else "does not agree with"
    return (f"The probe on h scores {le['top1_h']:.1f}% and on z = g(h) {le['top1_z']:.1f}% ({diff:+.1f} points); "
            f"this {agrees} the paper's finding that the layer before the projection head is the better representation.")


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


def standard_error(top1: float, n: int) -> float:
    """Binomial standard error of a top-1 (%) measured on n test images, in points."""
    p = min(max(top1 / 100.0, 1e-3), 1 - 1e-3)
    return 100.0 * float(np.sqrt(p * (1 - p) / max(n, 1)))


def beyond_noise(a: float, b: float, n: int) -> bool:
    """Whether two top-1 values on the same n test images differ by more than 2 standard errors."""
    return abs(a - b) > 2 * float(np.hypot(standard_error(a, n), standard_error(b, n)))


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


def read_temperature(df: pd.DataFrame, n: int) -> str:
    best, worst = df.loc[df["top1_h"].idxmax()], df.loc[df["top1_h"].idxmin()]
    text = (f"Linear top-1 on h is highest at τ = {best['temperature']} ({best['top1_h']:.1f}%) and lowest at "
            f"τ = {worst['temperature']} ({worst['top1_h']:.1f}%). ")
    paper = ("The paper finds an intermediate temperature best (τ = 0.1 on ImageNet, Table 5; its CIFAR-10 settings, "
             "Appendix B.9, use 0.5)")
    if len(df) < 3:
        return text + paper + "; two temperatures cannot show an optimum in between."
    if not beyond_noise(best["top1_h"], worst["top1_h"], n):
        return text + paper + f"; here the spread is within noise ({_noise_note(n, best['top1_h'])}), so this run cannot tell."
    interior = best["temperature"] not in (df["temperature"].min(), df["temperature"].max())
    if interior:
        return text + paper + "; this run agrees: the best τ is inside the grid."
    ordered = df.sort_values("temperature").reset_index(drop=True)
    i = int(ordered.index[ordered["temperature"] == best["temperature"]][0])
    neighbour = ordered.iloc[1 if i == 0 else i - 1]
    close = "" if beyond_noise(best["top1_h"], neighbour["top1_h"], n) else (
        f", though within noise of τ = {neighbour['temperature']} ({neighbour['top1_h']:.1f}%)")
    return text + paper + f"; this run does not show that: the best τ is at the edge of the grid{close}."


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
        if all(g > 0 and beyond_noise(by.loc[h, "top1_h"], by.loc[h, "top1_z"], n) for h, g in gaps):
            text += "this run agrees."
        elif all(g > 0 for h, g in gaps):
            text += "this run points the same way, within noise."
        else:
            text += "this run does not show it."
    return text


def read_augment(table: pd.DataFrame, n: int) -> str:
    singles = {op: table.loc[op, op] for op in table.index if not np.isnan(table.loc[op, op])}
    pairs = {(a, b): table.loc[a, b] for a in table.index for b in table.columns if a != b and not np.isnan(table.loc[a, b])}
    parts = []
    if singles:
        best_single = max(singles, key=singles.get)
        parts.append(f"The best single op is {best_single} ({singles[best_single]:.1f}%)")
    if pairs:
        best_pair = max(pairs, key=pairs.get)
        parts.append(f"the best composition {best_pair[0]} then {best_pair[1]} ({pairs[best_pair]:.1f}%)")
    text = "; ".join(parts) + ". "
    if singles and pairs:
        mean_single, mean_pair = np.mean(list(singles.values())), np.mean(list(pairs.values()))
        text += (f"Compositions average {mean_pair:.1f}% against {mean_single:.1f}% for single ops. The paper finds that "
                 "no single op suffices, that composing ops helps, and that crop then colour stands out (Figure 5): ")
        best_pair = max(pairs, key=pairs.get)
        crop_color = {("crop", "color"), ("color", "crop")} & set(pairs)
        if mean_pair > mean_single and best_pair in crop_color and len(pairs) == 1:
            text += "this run agrees that composition helps (crop and colour is the only composition in this grid)."
        elif mean_pair > mean_single and best_pair in crop_color:
            text += "this run agrees on both."
        elif mean_pair > mean_single:
            text += "this run agrees that composition helps" + (
                ", but crop and colour is not its best cell." if crop_color else " (crop and colour were not in the grid).")
        else:
            text += "this run does not show composition helping."
    return text


def read_batch_size(df: pd.DataFrame, n: int) -> str:
    df = df.sort_values("batch_size")
    first, last = df.iloc[0], df.iloc[-1]
    best = df.loc[df["top1_h"].idxmax()]
    text = (f"At a fixed {int(first['epochs'])} epochs, linear top-1 on h goes from {first['top1_h']:.1f}% at batch "
            f"{first['batch_size']} to {last['top1_h']:.1f}% at batch {last['batch_size']} (best {best['top1_h']:.1f}% at "
            f"{best['batch_size']}). The paper finds larger batches better when training is short (Figure 9): ")
    if not beyond_noise(first["top1_h"], last["top1_h"], n):
        return text + f"here the difference is within noise ({_noise_note(n, last['top1_h'])})."
    return text + ("this run agrees." if last["top1_h"] > first["top1_h"] else
                   "this run does not; with few images a large batch also means few steps.")


def finetune_table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows).sort_values("label_fraction")
    return df[["label_fraction", "labelled_images", "finetune_top1", "scratch_top1", "linear_top1",
               "gain_over_scratch"]].astype(object)


def read_finetune(df: pd.DataFrame, n: int) -> str:
    """Fine-tuned vs from scratch at each label fraction, each gap against the test-set noise."""
    parts, verdicts = [], []
    for _, r in df.iterrows():
        gap = r["finetune_top1"] - r["scratch_top1"]
        verdict = ("within noise" if not beyond_noise(r["finetune_top1"], r["scratch_top1"], n)
                   else "beyond noise" if gap > 0 else "reversed, beyond noise")
        verdicts.append(verdict)
        parts.append(f"with {r['label_fraction'] * 100:g}% of the labels ({r['labelled_images']} images) fine-tuning "
                     f"reaches {r['finetune_top1']:.1f}% against {r['scratch_top1']:.1f}% from scratch ({gap:+.1f} "
                     f"points, {verdict}) and the linear probe {r['linear_top1']:.1f}%")
    holds = all(v == "beyond noise" for v in verdicts)
    paper = ("The paper (Table 7) finds fine-tuning a SimCLR network far ahead of supervised training on the same "
             "labels (ImageNet top-1 48.3% vs 25.4% at 1%, 65.6% vs 56.4% at 10%)")
    text = "; ".join(parts)
    verdict = ("this run agrees at every fraction" if holds
               else "this run does not show that at every fraction")
    return f"{text[0].upper()}{text[1:]}. {paper}; {verdict} ({_noise_note(n, float(df['scratch_top1'].mean()))})."
