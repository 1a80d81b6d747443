"""The report's figures (seaborn), each written to the path it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simclr.core.config import Params
from simclr.report.tables import HEAD_ORDER, estimates


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


def plot_confusion(conf: pd.DataFrame, class_names: list[str], path: Path) -> pd.DataFrame:
    """The row-normalised confusion heatmap; returns the table it drew. Up to 12 classes each cell
    is annotated; more, the colours alone (100 classes: a 100x100 image, every 5th class named)."""
    from simclr.report.tables import confusion_matrix

    plt, sns = _plt()
    table = confusion_matrix(conf, class_names)
    k = len(class_names)
    size = max(5.0, 0.55 * k + 2) if k <= 20 else 12.0
    step = 1 if k <= 30 else -(-k // 20)  # at most ~20 tick labels
    fig, ax = plt.subplots(figsize=(size + 1, size))
    sns.heatmap(table, annot=k <= 12, fmt=".0f", cmap="Blues", vmin=0, vmax=100, ax=ax, square=k > 20,
                xticklabels=step, yticklabels=step, cbar_kws={"label": "% of the actual class"})
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return table


def plot_view_pairs(params: Params, prepared: Path, path: Path) -> None:
    import torch

    from simclr.core.augment import AugmentPolicy
    from simclr.core.data import load_prepared

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


def _with_intervals(df: pd.DataFrame, columns: list[str], n: int) -> pd.DataFrame:
    """The grid table with each column's mean and 95% half-width over seeds (``<col>_half``)."""
    out = df.copy()
    for col in columns:
        est = estimates(df, col, n)
        out[col], out[f"{col}_half"] = [e.mean for e in est], [e.half for e in est]
    return out


def plot_one_knob(df: pd.DataFrame, kind: str, n: int, path: Path, x_label: str, log_base: int) -> None:
    """Linear top-1 on h against the knob, one line per budget, each point with its 95% interval."""
    plt, sns = _plt()
    data = _with_intervals(df, ["top1_h"], n)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    budgets = sorted(set(data["epochs"]))
    colors = sns.color_palette("viridis", len(budgets))
    for color, e in zip(colors, budgets):
        d = data[data["epochs"] == e].sort_values(kind)
        ax.errorbar(d[kind].astype(float), d["top1_h"], yerr=d["top1_h_half"], marker="o", capsize=3, color=color,
                    label=f"{e} epochs")
    if log_base:
        ax.set_xscale("log", base=log_base)
        values = sorted(set(data[kind].astype(float)))
        ax.set_xticks(values)
        ax.set_xticklabels([f"{v:g}" for v in values])
        ax.minorticks_off()
    ax.set_xlabel(x_label)
    ax.set_ylabel("linear top-1 on h (%)")
    ax.legend(title="budget", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heads(df: pd.DataFrame, n: int, path: Path) -> None:
    """Top-1 on h and on z = g(h) per head, one panel per budget, 95% intervals as error bars."""
    plt, sns = _plt()
    data = _with_intervals(df, ["top1_h", "top1_z"], n)
    budgets = sorted(set(data["epochs"]))
    fig, axes = plt.subplots(1, len(budgets), figsize=(3.4 * len(budgets) + 1.5, 3.8), sharey=True, squeeze=False)
    heads = [h for h in HEAD_ORDER if h in set(data["head"])]
    x = np.arange(len(heads))
    for ax, e in zip(axes[0], budgets):
        d = data[data["epochs"] == e].set_index("head").reindex(heads)
        for k, (col, label) in enumerate((("top1_h", "h (before the head)"), ("top1_z", "z = g(h)"))):
            bars = ax.bar(x + (k - 0.5) * 0.38, d[col].astype(float), 0.38, yerr=d[f"{col}_half"].astype(float),
                          capsize=3, label=label, color=sns.color_palette()[k])
            ax.bar_label(bars, fmt="%.1f", label_type="center", color="white", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(heads)
        ax.set_title(f"{e} epochs", fontsize=10)
        top = max(float((data[c].astype(float) + data[f"{c}_half"].astype(float)).max()) for c in ("top1_h", "top1_z"))
        ax.set_ylim(0, min(100, top + 3))
    axes[0, 0].set_ylabel("linear top-1 (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _dodge(k: int, n: int) -> float:
    """A small multiplicative x offset (the axis is log) so the error bars of n series do not overlap."""
    return float(1.04 ** (k - (n - 1) / 2))


def plot_budgets(temperatures: pd.DataFrame | None, gaps: pd.DataFrame | None, n: int, path: Path) -> None:
    """When the findings appear: top-1 per temperature vs budget, and h − g(h) per head vs budget."""
    plt, sns = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    if temperatures is not None:
        data = _with_intervals(temperatures, ["top1_h"], n)
        taus = sorted(set(data["temperature"].astype(float)))
        for k, (color, tau) in enumerate(zip(sns.color_palette("rocket", len(taus)), taus)):
            d = data[data["temperature"].astype(float) == tau].sort_values("epochs")
            left.errorbar(d["epochs"].astype(float) * _dodge(k, len(taus)), d["top1_h"], yerr=d["top1_h_half"],
                          marker="o", capsize=3, color=color, label=f"τ = {tau:g}")
        left.legend(fontsize=9)
    left.set_title("temperature", fontsize=10)
    left.set_ylabel("linear top-1 on h (%)")
    if gaps is not None and len(gaps):
        heads = [h for h in ("linear", "mlp") if h in set(gaps["head"])]
        for k, head in enumerate(heads):
            d = gaps[gaps["head"] == head].sort_values("epochs")
            right.errorbar(d["epochs"].astype(float) * _dodge(k, len(heads)), d["gap"], yerr=d["half"], marker="o",
                           capsize=3, color=sns.color_palette()[k + 1], label=f"{head} head")
        right.legend(fontsize=9)
    right.axhline(0, color="gray", lw=1)
    right.set_title("h − g(h)", fontsize=10)
    right.set_ylabel("points")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("pretraining epochs (log)")
        ticks = sorted(set((temperatures if temperatures is not None else gaps)["epochs"].astype(float)))
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def plot_finetune(df: pd.DataFrame, path: Path) -> None:
    plt, sns = _plt()
    long = df.melt(id_vars=["label_fraction"], value_vars=["finetune_top1", "linear_top1", "scratch_top1"],
                   var_name="model", value_name="top-1 (%)")
    long["model"] = long["model"].map({"finetune_top1": "fine-tuned (pretrained)", "linear_top1": "linear probe (pretrained)",
                                       "scratch_top1": "from scratch"})
    long["label %"] = long["label_fraction"].astype(float) * 100
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    sns.lineplot(data=long, x="label %", y="top-1 (%)", hue="model", style="model", markers=True, ax=ax)
    if len(df) > 1:
        ax.set_xscale("log")
    ticks = (df["label_fraction"].astype(float) * 100).tolist()
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled train images (fraction of the split)")
    sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, title=None, frameon=False, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the legend below the axes stays whole
    plt.close(fig)
