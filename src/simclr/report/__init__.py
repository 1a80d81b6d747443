"""The report stage: every metric, curve and ablation point -> ``report.md``, its figures and the
self-contained ``index.html``.

Imports run one way: :mod:`readings` (pure: the numbers and the sentences that interpret them)
and :mod:`figures` (seaborn) feed the sections assembled here; :mod:`render` writes the Markdown
once and converts it to HTML; :mod:`experiments` tabulates ``dvc exp show`` for the optional section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simclr.core.atomic import write_text_atomic
from simclr.core.config import Params, describe_ops
from simclr.core.errors import SimCLRError
from simclr.core.grids import read_points
from simclr.report.figures import (
    plot_augment,
    plot_confusion,
    plot_curves,
    plot_finetune,
    plot_heads,
    plot_metrics,
    plot_one_knob,
    plot_view_pairs,
)
from simclr.report.readings import (
    augment_matrix,
    finetune_table,
    grid_table,
    read_augment,
    read_batch_size,
    read_confusion,
    read_curves,
    read_finetune,
    read_gain,
    read_head,
    read_heads,
    read_temperature,
    with_base,
)
from simclr.report.render import FIGURES, Section, markdown_to_html, render_markdown

TITLE = "SimCLR run report"


@dataclass(frozen=True)
class ReportPaths:
    prepared: Path  # inputs: the stages' outputs
    pretrain_metrics: Path
    history: Path
    linear_eval: Path
    confusion: Path
    ablation: Path  # the folder of the ablation points' metrics
    finetune: Path  # the folder of the finetune points' metrics
    out: Path  # output folder: report.md, index.html, figures/


def build_report(params: Params, paths: ReportPaths) -> Path:
    pre = _read_json(paths.pretrain_metrics)
    le = _read_json(paths.linear_eval)
    history = _read_csv(paths.history)
    conf = _read_csv(paths.confusion)
    manifest = _read_json(paths.prepared / "manifest.json")
    points = read_points(params, paths.ablation)  # before any file is written: a missing point changes nothing
    fractions = [_read_json(fraction_file(paths.finetune, f)) for f in params.finetune.label_fractions]

    figures = paths.out / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    plot_curves(history, figures / "curves.png")
    plot_metrics(le, figures / "metrics.png")
    plot_confusion(conf, manifest["class_names"], figures / "confusion.png")
    plot_view_pairs(params, paths.prepared, figures / "view_pairs.png")

    images = manifest.get("images") or {s: sum(c.values()) for s, c in manifest["counts"].items()}  # older manifests
    unlabeled = f" + {images['unlabeled']} unlabeled" if "unlabeled" in images else ""
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
            f"Data: `{manifest['source']}`, {images['train']} train / {images['test']} test images{unlabeled}, "
            f"{len(manifest['class_names'])} classes, {manifest['image_size'][0]}x{manifest['image_size'][1]}; "
            f"pretrained on {pre.get('pretrain_images', images['train'])} images (`data.pretrain_on: "
            f"{params.data.pretrain_on}`). "
            f"Encoder `{params.model.encoder}`, head `{params.head}`, temperature {params.temperature}, "
            f"global batch {params.batch_size}, {pre['epochs']} epochs of `{params.pretrain.optimizer}`."],
            table=pd.DataFrame(sorted(_flatten(params.to_dict()).items()), columns=["param", "value"])),
        Section("Results", [read_gain(le), read_head(le, params.head)], table=metrics_table,
                figures=[("metrics.png", "Top-1 on the test split: pretrained vs random-init encoder")]),
        *finetune_sections(fractions, figures),
        Section("Training curves", [read_curves(history)],
                figures=[("curves.png", "Per-epoch NT-Xent loss, learning rate and kNN top-1")]),
        Section("Confusion matrix", [read_confusion(conf)],
                figures=[("confusion.png", "Linear probe on h: row-normalised confusion matrix (%)")]),
        Section("Augmented views", [
            f"Each column: a test image and two views drawn by the `augment` policy ({describe_ops(params.augment)}); "
            "the pair is the positive pair the loss pulls together."],
            figures=[("view_pairs.png", "Pairs of augmented views")]),
    ]
    sections += ablation_sections(params, points, figures)
    if params.report.experiments:
        from simclr.report.experiments import dvc_exp_show, experiments_table, metric_keys

        metrics = metric_keys(Path("."), (paths.linear_eval.as_posix(), paths.pretrain_metrics.as_posix()))
        sections.append(Section("Experiments in this workspace", [
            "From `dvc exp show`: one row per experiment, the params that differ between them, then the metrics "
            "(`simclr experiments` prints the same table)."], table=experiments_table(dvc_exp_show(), metrics)))
    markdown = render_markdown(TITLE, sections)
    write_text_atomic(paths.out / "report.md", markdown)
    write_text_atomic(paths.out / "index.html", markdown_to_html(markdown, TITLE, figures))
    return paths.out / "index.html"


def finetune_sections(rows: list[dict], figures: Path) -> list[Section]:
    if not rows:
        return []
    df = finetune_table(rows)
    plot_finetune(df, figures / "finetune.png")
    return [Section("Few labels: fine-tuned vs from scratch vs linear", [
        "The paper's semi-supervised evaluation (Table 7), scaled down (`params.yaml: finetune`): at each fraction "
        "a class-balanced subset of the labelled train split; the pretrained network fine-tuned whole, the same "
        "network trained from scratch with the same recipe and steps, and the linear probe on the frozen h, each "
        "scored on the whole test split.", read_finetune(df, rows[0]["test_images"])], table=df,
        figures=[("finetune.png", "Test top-1 vs the fraction of labelled train images")])]


def ablation_sections(params: Params, results: dict[str, list[dict]], figures: Path) -> list[Section]:
    ab = params.ablation
    base = ab.base
    sections = [Section("Ablations", [
        f"Each grid point pretrains {ab.epochs} epochs on {ab.train_images or 'all'} training images from the base "
        f"configuration (temperature {base.temperature}, batch {base.batch_size}, head `{base.head}`, augment "
        f"{describe_ops(base.augment)}) with one knob changed, then probes the frozen encoder on the whole train split "
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
            df = grid_table(with_base(params, kind, results[kind], results), kind, ["top1_h", "top1_z", "knn_top1"])
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
            df = grid_table(with_base(params, kind, results[kind], results), kind,
                             ["top1_h", "top1_z", "knn_top1", extra])
            plot_one_knob(df, kind, figures / name, log_x=True)
            sections.append(Section(f"Ablation: {title}", [read(df, n)], table=df, figures=[(name, caption)]))
    return sections


def fraction_file(root: Path, fraction: float) -> Path:
    """The file of stage finetune@<fraction>: DVC writes the value as params.yaml has it (`1` for 1.0)."""
    path = root / f"{fraction}.json"
    if not path.is_file() and float(fraction).is_integer():
        return root / f"{int(fraction)}.json"
    return path


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
    """Dotted keys two levels deep (``ablation.base`` stays one cell); lists and mappings as JSON."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and prefix.count(".") < 1:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    return out
