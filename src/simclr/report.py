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
from simclr.params import Params


@dataclass
class ReportInputs:
    pretrain_metrics: Path = Path("metrics/pretrain.json")
    history: Path = Path("metrics/pretrain_history.csv")
    linear_eval: Path = Path("metrics/linear_eval.json")
    confusion: Path = Path("metrics/confusion.csv")
    prepared: Path = Path("data/prepared")


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
# rendering
# --------------------------------------------------------------------------------------------
def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        if s.table is not None:
            lines += [_md_table(s.table), ""]
        for name, caption in s.figures:
            lines += [f"![{caption}](figures/{name})", "", f"*{caption}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _md_table(df: pd.DataFrame) -> str:
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
    title = "SimCLR run report"
    write_text_atomic(out_dir / "report.md", render_markdown(title, sections))
    write_text_atomic(out_dir / "index.html", render_html(title, sections, figures))
    return out_dir / "index.html"
