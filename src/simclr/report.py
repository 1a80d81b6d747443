"""The report stage: figures (seaborn) and one document rendered twice.

``reports/report.md`` links ``reports/figures/*.png``; ``reports/index.html`` embeds the same
PNGs as data URIs and inline CSS, so it opens offline and from anywhere (no CDN, unlike
``dvc plots``' HTML). Every sentence that interprets a number is computed from it.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simclr.atomic import write_text_atomic
from simclr.errors import SimCLRError
from simclr.params import FIGURE5_OPS, Params


@dataclass
class ReportInputs:
    pretrain_metrics: Path = Path("metrics/pretrain.json")
    history: Path = Path("metrics/pretrain_history.csv")
    linear_eval: Path = Path("metrics/linear_eval.json")
    confusion: Path = Path("metrics/confusion.csv")
    prepared: Path = Path("data/prepared")
    ablation: Path = Path("metrics/ablation")


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise SimCLRError(f"{path} does not exist; run the stages before the report (dvc repro)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SimCLRError(f"{path} is not valid JSON ({exc}); rerun the stage that writes it") from None


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SimCLRError(f"{path} does not exist; run the stages before the report (dvc repro)")
    return pd.read_csv(path)


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and prefix.count(".") < 1 and k != "augment":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    return out


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def plot_curves(history: pd.DataFrame, path: Path) -> None:
    plt, sns = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, col, label in zip(axes, ("loss", "lr", "knn_top1"), ("NT-Xent loss", "learning rate (end of epoch)", "kNN top-1 (%)")):
        data = history[["epoch", col]].dropna()
        sns.lineplot(data=data, x="epoch", y=col, marker="o", ax=ax)
        ax.set_title(label)
        ax.set_ylabel("")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_metrics(le: dict, path: Path) -> None:
    plt, sns = _plt()
    rows = [("linear probe on h", le["top1_h"], "pretrained"), ("linear probe on z = g(h)", le["top1_z"], "pretrained"),
            ("kNN on h", le["knn_top1"], "pretrained"), ("linear probe on h", le["random_init_top1"], "random init"),
            ("kNN on h", le.get("random_init_knn_top1", float("nan")), "random init")]
    df = pd.DataFrame(rows, columns=["evaluation", "top-1 (%)", "encoder"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(data=df, y="evaluation", x="top-1 (%)", hue="encoder", ax=ax, orient="h")
    for container in ax.containers:
        ax.bar_label(container, fmt="%.1f", padding=3)
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(conf: pd.DataFrame, class_names: list[str], path: Path) -> None:
    plt, sns = _plt()
    table = pd.crosstab(conf["actual"], conf["predicted"], normalize="index").reindex(
        index=class_names, columns=class_names, fill_value=0.0) * 100
    size = max(5.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    sns.heatmap(table, annot=len(class_names) <= 12, fmt=".0f", cmap="Blues", vmin=0, vmax=100, ax=ax,
                cbar_kws={"label": "% of the actual class"})
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_view_pairs(params: Params, prepared: Path, path: Path) -> None:
    import torch

    from simclr.augment import AugmentPolicy
    from simclr.data import load_prepared

    plt, _ = _plt()
    data = load_prepared(prepared, verify=False)
    n = min(params.report.view_pairs, len(data.test.x))
    rng = np.random.default_rng(params.seed)
    idx = np.sort(rng.choice(len(data.test.x), n, replace=False))
    images = torch.from_numpy(np.array(data.test.x[idx]))
    gen = torch.Generator().manual_seed(params.seed)
    policy = AugmentPolicy(params.augment)
    v1, v2 = policy(images, gen), policy(images, gen)
    fig, axes = plt.subplots(3, n, figsize=(1.5 * n, 4.8), squeeze=False)
    for j in range(n):
        for i, (img, label) in enumerate(((images[j].numpy(), "image"), (v1[j].permute(1, 2, 0).numpy(), "view 1"),
                                          (v2[j].permute(1, 2, 0).numpy(), "view 2"))):
            axes[i, j].imshow(img, interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            axes[i, j].grid(False)
            if j == 0:
                axes[i, j].set_ylabel(label)
        axes[0, j].set_title(data.class_names[int(data.test.y[idx[j]])], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# reading the numbers
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# the ablation grids (simclr.ablation): four figures, each with its table and its reading
# --------------------------------------------------------------------------------------------
def standard_error(top1: float, n: int) -> float:
    """Binomial standard error of a top-1 (%) measured on n test images, in points."""
    p = min(max(top1 / 100.0, 1e-3), 1 - 1e-3)
    return 100.0 * float(np.sqrt(p * (1 - p) / max(n, 1)))


def beyond_noise(a: float, b: float, n: int) -> bool:
    """Whether two top-1 values on the same n test images differ by more than 2 standard errors."""
    return abs(a - b) > 2 * float(np.hypot(standard_error(a, n), standard_error(b, n)))


def _with_base(params: Params, kind: str, rows: list[dict], results: dict[str, list[dict]]) -> list[dict]:
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


def _grid_table(rows: list[dict], kind: str, columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df = df.sort_values("value", key=lambda v: v.map(HEAD_ORDER.index) if kind == "head" else v)
    df = df.rename(columns={"value": kind})
    if "shared_from" not in df:
        df["shared_from"] = ""
    df["note"] = df["shared_from"].fillna("").map(lambda s: f"base point (the {s} run)" if s else "")
    return df[[kind, *columns, "note"]].astype(object)


def plot_one_knob(df: pd.DataFrame, kind: str, path: Path, log_x: bool) -> None:
    plt, sns = _plt()
    long = df.melt(id_vars=[kind], value_vars=["top1_h", "knn_top1"], var_name="evaluation", value_name="top-1 (%)")
    long["evaluation"] = long["evaluation"].map({"top1_h": "linear probe on h", "knn_top1": "kNN on h"})
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    sns.lineplot(data=long, x=kind, y="top-1 (%)", hue="evaluation", marker="o", ax=ax)
    if log_x:
        ax.set_xscale("log", base=2 if kind == "batch_size" else 10)
        ax.set_xticks(df[kind].astype(float).tolist())
        ax.set_xticklabels([str(v) for v in df[kind].tolist()])
        ax.minorticks_off()
    ax.set_xlabel({"temperature": "temperature τ", "batch_size": "global batch size"}[kind])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heads(df: pd.DataFrame, path: Path) -> None:
    plt, sns = _plt()
    long = df.melt(id_vars=["head"], value_vars=["top1_h", "top1_z"], var_name="representation", value_name="top-1 (%)")
    long["representation"] = long["representation"].map({"top1_h": "h (before the head)", "top1_z": "z = g(h)"})
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    sns.barplot(data=long, x="head", y="top-1 (%)", hue="representation", order=[h for h in HEAD_ORDER if h in set(df["head"])],
                ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.1f", padding=2, fontsize=8)
    ax.set_ylim(0, min(100, long["top-1 (%)"].max() + 8))
    sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, title=None, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def plot_augment(table: pd.DataFrame, path: Path) -> None:
    plt, sns = _plt()
    size = 1.0 * len(table) + 2.5
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    ax.grid(False)
    ax.set_facecolor("#eeeeee")  # a pair that is not in the grid: a plain gray cell
    sns.heatmap(table, annot=True, fmt=".1f", cmap="Greens", ax=ax, cbar_kws={"label": "linear top-1 on h (%)"},
                linewidths=0.5, linecolor="white")
    ax.set_xlabel("2nd transformation")
    ax.set_ylabel("1st transformation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


HEAD_ORDER = ("none", "linear", "mlp")


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


def ablation_sections(params: Params, results: dict[str, list[dict]], figures: Path) -> list[Section]:
    ab = params.ablation
    base = ab.base
    sections = [Section("Ablations", [
        f"Each grid point pretrains {ab.epochs} epochs on {ab.train_images or 'all'} training images from the base "
        f"configuration (temperature {base.temperature}, batch {base.batch_size}, head `{base.head}`, augment "
        f"`{base.augment_spec}`) with one knob changed, then probes the frozen encoder on the whole train split "
        "(`params.yaml: ablation`; one DVC stage per point). The budget is short, so read the gaps against the noise "
        "each reading states."])]
    one_knob = {  # kind -> (title, extra table column, reading, caption)
        "temperature": ("temperature", "loss", read_temperature, "Top-1 vs NT-Xent temperature"),
        "batch_size": ("batch size", "epochs", read_batch_size, "Top-1 vs global batch size at fixed epochs"),
    }
    for kind in ("temperature", "head", "augment", "batch_size"):
        if not results[kind]:
            continue
        n = results[kind][0]["test_images"]
        name = f"ablation_{kind}.png"
        if kind == "head":
            df = _grid_table(_with_base(params, kind, results[kind], results), kind, ["top1_h", "top1_z", "knn_top1"])
            plot_heads(df, figures / name)
            sections.append(Section("Ablation: projection head", [read_heads(df, n)], table=df,
                                    figures=[(name, "Linear top-1 on h and on z = g(h) for each head")]))
        elif kind == "augment":
            table = augment_matrix(results[kind])
            plot_augment(table, figures / name)
            shown = table.rename_axis(index="1st \\ 2nd", columns=None).reset_index()
            sections.append(Section("Ablation: augmentation pairs", [
                "Ops on one branch only, the other view is the image (the paper's asymmetric setting). "
                + read_augment(table, n)], table=shown.astype(object).where(shown.notna(), ""),
                figures=[(name, "Linear top-1 on h: single ops on the diagonal, op1 then op2 off it")]))
        else:
            title, extra, read, caption = one_knob[kind]
            df = _grid_table(_with_base(params, kind, results[kind], results), kind,
                             ["top1_h", "top1_z", "knn_top1", extra])
            plot_one_knob(df, kind, figures / name, log_x=True)
            sections.append(Section(f"Ablation: {title}", [read(df, n)], table=df, figures=[(name, caption)]))
    return sections


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        if s.table is not None:
            lines += [markdown_table(s.table), ""]
        for name, caption in s.figures:
            lines += [f"![{caption}](figures/{name})", "", f"*{caption}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of df (floats as they are; format them before)."""
    cols = [str(c) for c in df.columns]
    rows = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        rows.append("| " + " | ".join(str(v).replace("|", "\\|") for v in r.tolist()) + " |")
    return "\n".join(rows)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:1.6em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f4f4f4}figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
"""


def render_html(title: str, sections: list[Section], figures_dir: Path) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        out.append(f"<h2>{html.escape(s.title)}</h2>")
        for p in s.paragraphs:
            out.append(f"<p>{_inline(p)}</p>")
        if s.table is not None:
            out.append(s.table.to_html(index=False, border=0, escape=True))
        for name, caption in s.figures:
            data = base64.b64encode((figures_dir / name).read_bytes()).decode()
            out.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Escape, then render `code` spans (the only Markdown our paragraphs use)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def build_report(params: Params, inputs: ReportInputs = ReportInputs(), out_dir: Path = Path("reports")) -> Path:
    pre = _read_json(inputs.pretrain_metrics)
    le = _read_json(inputs.linear_eval)
    history = _read_csv(inputs.history)
    conf = _read_csv(inputs.confusion)
    manifest = _read_json(inputs.prepared / "manifest.json")

    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plot_curves(history, figures / "curves.png")
    plot_metrics(le, figures / "metrics.png")
    plot_confusion(conf, manifest["class_names"], figures / "confusion.png")
    plot_view_pairs(params, inputs.prepared, figures / "view_pairs.png")

    counts = {s: sum(c.values()) for s, c in manifest["counts"].items()}
    flat = _flatten(params.to_dict())
    metrics_table = pd.DataFrame(
        [("top1_h", le["top1_h"], "linear probe on h (frozen encoder)"),
         ("top1_z", le["top1_z"], "linear probe on z = g(h)"),
         ("knn_top1", le["knn_top1"], f"weighted kNN on h (k={params.linear_eval.knn_k})"),
         ("random_init_top1", le["random_init_top1"], "linear probe on h of the untrained encoder"),
         ("loss", round(pre["loss"], 4), "final NT-Xent (mean of the last epoch)"),
         ("epochs", pre["epochs"], "pretraining epochs"),
         ("images_per_second", pre["images_per_second"], "pretraining throughput (images, 2 views each)"),
         ("wall_seconds", pre["wall_seconds"], "pretraining wall time")],
        columns=["metric", "value", "meaning"], dtype=object)  # object: ints stay ints (no 50.0)
    sections = [
        Section("Run", [
            f"Data: `{manifest['source']}`, {counts['train']} train / {counts['test']} test images, "
            f"{len(manifest['class_names'])} classes, {manifest['image_size'][0]}x{manifest['image_size'][1]}. "
            f"Encoder `{params.model.encoder}`, head `{params.head}`, temperature {params.temperature}, "
            f"global batch {params.batch_size}, {pre['epochs']} epochs of `{params.pretrain.optimizer}`.",
        ], table=pd.DataFrame(sorted(flat.items()), columns=["param", "value"])),
        Section("Results", [read_gain(le), read_head(le, params.head)], table=metrics_table,
                figures=[("metrics.png", "Top-1 on the test split: pretrained vs random-init encoder")]),
        Section("Training curves", [read_curves(history)],
                figures=[("curves.png", "Per-epoch NT-Xent loss, learning rate and kNN top-1")]),
        Section("Confusion matrix", [read_confusion(conf)],
                figures=[("confusion.png", "Linear probe on h: row-normalised confusion matrix (%)")]),
        Section("Augmented views", [
            "Each column: a test image and two views drawn by the `augment` policy "
            f"({', '.join(op.name for op in params.augment) or 'no ops'}); "
            "the pair is the positive pair the loss pulls together."],
            figures=[("view_pairs.png", "Pairs of augmented views")]),
    ]
    from simclr.ablation import read_points

    sections += ablation_sections(params, read_points(params, inputs.ablation), figures)
    if params.report.experiments:
        from simclr.experiments import dvc_exp_show, experiments_table

        sections.append(Section("Experiments in this workspace", [
            "From `dvc exp show`: one row per experiment, the params that differ between them, then the metrics "
            "(`simclr experiments` prints the same table)."], table=experiments_table(dvc_exp_show())))
    title = "SimCLR run report"
    write_text_atomic(out_dir / "report.md", render_markdown(title, sections))
    write_text_atomic(out_dir / "index.html", render_html(title, sections, figures))
    return out_dir / "index.html"
