"""The report's figures (seaborn), each written to the path it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simclr.core.config import Params
from simclr.report.readings import HEAD_ORDER


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
    from simclr.report.readings import confusion_matrix

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
