"""The report stage: every metric, curve and ablation point -> ``report.md``, its figures and the
self-contained ``index.html``.

Imports run one way: :mod:`statistics` (intervals and paired gaps) feeds :mod:`tables` (the stage
outputs as frames), both feed :mod:`readings` (the sentences and the paper's findings) and
:mod:`figures` (seaborn), :mod:`ablations` turns each grid into its section, and all of them feed
the sections assembled here; :mod:`render` writes the Markdown once and converts it to HTML;
:mod:`experiments` tabulates ``dvc exp show`` for the optional section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from simclr.core.atomic import write_text_atomic
from simclr.core.augment_config import describe_ops
from simclr.core.config import Params, dotted
from simclr.core.correctness import read_record
from simclr.core.data import images_per_split
from simclr.core.errors import SimCLRError
from simclr.core.grids import GRIDS, read_points
from simclr.report.ablations import ablation_sections, ablation_tables, grid_findings
from simclr.report.figures import plot_confusion, plot_curves, plot_finetune, plot_metrics, plot_view_pairs
from simclr.report.readings import (
    Finding,
    finetune_finding,
    h_vs_gh_finding,
    read_confusion,
    read_curves,
    read_finetune,
    read_gain,
    read_head,
    read_pairing,
)
from simclr.report.statistics import independent_test_errors
from simclr.report.tables import FINETUNE_COLUMNS, finetune_table
from simclr.report.render import FIGURES, ReportSection, markdown_to_html, render_markdown

TITLE = "SimCLR run report"


@dataclass(frozen=True)
class ReportPaths:
    prepared: Path  # inputs: the stages' outputs
    pretrain_metrics: Path
    history: Path
    linear_eval: Path
    confusion: Path
    linear_eval_correct: Path  # which test images each of linear_eval's probes got right
    ablation: Path  # the folder of the ablation points' metrics
    ablation_correct: Path  # the folder of their per-image records
    finetune: Path  # the folder of the finetune points' metrics
    out: Path  # output folder: report.md, index.html, figures/


def build_report(params: Params, paths: ReportPaths) -> Path:
    pre = _read_json(paths.pretrain_metrics, "`dvc repro -f pretrain`")
    le = _read_json(paths.linear_eval, "`dvc repro -f linear_eval`")
    history = _read_csv(paths.history)
    conf = read_confusion_csv(paths.confusion)
    manifest = _read_json(paths.prepared / "manifest.json", "`dvc repro -f prepare`")
    images = images_per_split(manifest)
    n = images["test"]  # every top-1 is scored on the whole test split: the noise of each reading
    points = read_points(params, paths.ablation, paths.ablation_correct, n)  # before any file is written
    le["correct"] = read_record(paths.linear_eval_correct, n, "`dvc repro -f linear_eval`")
    fractions = [{**_read_json(fraction_file(paths.finetune, f), f"`dvc repro -f finetune@{f}`"),
                  "correct": read_record(fraction_file(paths.finetune, f, "-correct"), n, f"`dvc repro -f finetune@{f}`")}
                 for f in params.finetune.label_fractions]

    figures = paths.out / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    plot_curves(history, figures / "curves.png")
    plot_metrics(le, figures / "metrics.png")
    plot_confusion(conf, manifest["class_names"], figures / "confusion.png")
    plot_view_pairs(params, paths.prepared, figures / "view_pairs.png")

    grids: dict[str, pd.DataFrame] = {}
    main_run = f"main run, {pre['epochs']} epochs, 1 seed"
    tables = ablation_tables(params, points)
    ft = finetune_table(fractions) if fractions else None
    findings = run_findings(params, le, tables, ft, n, main_run)
    with independent_test_errors():  # the same gaps, their test errors unpaired: what the pairing decided
        unpaired = run_findings(params, le, tables, ft, n, main_run)
    ablations = ablation_sections(params, tables, figures, n, grids)
    finetune = [] if ft is None else finetune_sections(ft, figures, n)
    sections = [
        ReportSection("Headline", [read_gain(le, n), setup_text(params, pre, manifest), HEADLINE_NOTE.format(n=n),
                             read_pairing(findings, unpaired)], table=findings_table(findings)),
        ReportSection("Results", [read_head(le, params.head, n)], table=metrics_table(params, pre, le),
                figures=[("metrics.png", "Top-1 on the test split: pretrained vs random-init encoder")]),
        ReportSection("Training curves", [read_curves(history)],
                figures=[("curves.png", "Per-epoch NT-Xent loss, learning rate and kNN top-1")]),
        ReportSection("Confusion matrix", [read_confusion(conf)],
                figures=[("confusion.png", "Linear probe on h: row-normalised confusion matrix (%)")]),
        ReportSection("Augmented views", [
            f"Each column: a test image and two views drawn by the `augment` policy ({describe_ops(params.augment)}); "
            "the pair is the positive pair the loss pulls together."],
            figures=[("view_pairs.png", "Pairs of augmented views")]),
        *finetune,
        *ablations,
    ]
    if params.report.experiments:
        from simclr.report.experiments import dvc_exp_show, experiments_table, metric_keys

        metrics = metric_keys(Path("."), (paths.linear_eval.as_posix(), paths.pretrain_metrics.as_posix()))
        sections.append(ReportSection("Experiments in this workspace", [
            "From `dvc exp show`: one row per experiment, the params that differ between them, then the metrics "
            "(`simclr experiments` prints the same table)."], table=experiments_table(dvc_exp_show(), metrics)))
    sections.append(ReportSection("Params", ["Every value of params.yaml this report was built from."], folded=True,
                            table=pd.DataFrame(sorted(_flatten(params.to_dict()).items()), columns=["param", "value"])))
    write_grids(grids, paths.out / GRIDS_FOLDER)
    markdown = render_markdown(TITLE, sections)
    write_text_atomic(paths.out / "report.md", markdown)
    write_text_atomic(paths.out / "index.html", markdown_to_html(markdown, TITLE, figures))
    return paths.out / "index.html"


def metrics_table(params: Params, pre: dict, le: dict) -> pd.DataFrame:
    """The Results table: linear_eval's metrics and the pretraining run's, each with its split and meaning."""
    return pd.DataFrame(
        [(key, le[key], split, meaning) for key, split, meaning in metric_rows(params, le)]
        + [("loss", round(pre["loss"], 4), "train", "final NT-Xent (mean of the last epoch)"),
           ("epochs", pre["epochs"], "", "pretraining epochs"),
           ("images_per_second", pre["images_per_second"], "", "pretraining throughput (images, 2 views each)"),
           ("wall_seconds", pre["wall_seconds"], "", "pretraining wall time")],
        columns=["metric", "value", "split", "meaning"], dtype=object)  # object: ints stay ints (no 50.0)


def setup_text(params: Params, pre: dict, manifest: dict) -> str:
    """The headline's sentence on what ran: the data, its splits, and the main run's configuration."""
    images = images_per_split(manifest)
    unlabeled = f" + {images['unlabeled']} unlabeled" if "unlabeled" in images else ""
    return (f"Data: `{manifest['source']}`, {images['train']} train / {images['test']} test images{unlabeled}, "
            f"{len(manifest['class_names'])} classes, {manifest['image_size'][0]}x{manifest['image_size'][1]}; "
            f"pretrained on {pre.get('pretrain_images', images['train'])} images (`data.pretrain_on: "
            f"{params.data.pretrain_on}`). "
            f"Encoder `{params.model.encoder}`, head `{params.head}`, temperature {params.temperature}, "
            f"global batch {params.batch_size}, {pre['epochs']} epochs of `{params.pretrain.optimizer}`.")


HEADLINE_NOTE = (
    "The paper's findings as this run measured them, each at the budget and with the seeds of the run that measured "
    "it. A gap is read with its 95% interval: the spread of the per-seed differences (Student t) combined with the "
    "sampling error of the {n} test images, paired: both models are scored on the same images, so the error comes "
    "from the images on which they disagree (McNemar). *Reproduced* or *not reproduced* means the interval excludes 0; "
    "*cannot tell* means it covers 0, or the grid is too small to show the finding. The main run's probe settings were "
    "chosen on a validation split held out of the train split (the ablation points use fixed ones); every top-1 here "
    "is on the test split.")
GRIDS_FOLDER = "grids"  # beside report.md: one CSV per ablation grid, the DVC plots ablation_<grid> (dvc.yaml)


def findings_table(findings: list[Finding]) -> pd.DataFrame:
    return pd.DataFrame([(f.claim, f.run, f"**{f.verdict}**", f.evidence) for f in findings],
                        columns=["the paper's finding", "measured on", "this run", "gap (95% interval)"])


def metric_rows(params: Params, le: dict) -> list[tuple[str, str, str]]:
    """(metric, split, meaning) of the Results table: which split each number comes from."""
    rows = [("top1_h", "test", "linear probe on h (frozen encoder), settings chosen on validation"),
            ("val_top1_h", "validation", f"the same probe on the validation split ({le.get('val_images', '?')} images "
                                         "held out of train), where its settings were chosen"),
            ("top1_z", "test", "linear probe on z = g(h)"),
            ("knn_top1", "test", f"weighted kNN on h (k={params.linear_eval.knn_k})"),
            ("random_init_top1", "test", "linear probe on h of the untrained encoder (its own settings choice)"),
            ("probe_epochs", "validation", "the probe's epochs, chosen from linear_eval.search"),
            ("probe_lr", "validation", "the probe's lr, chosen"),
            ("probe_weight_decay", "validation", "the probe's weight decay, chosen")]
    return [r for r in rows if r[0] in le]


def write_grids(grids: dict[str, pd.DataFrame], folder: Path) -> None:
    """Each ablation grid as the data of a DVC bar plot: point (text) and linear top-1 (%)."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind in (grid.kind for grid in GRIDS):
        df = grids.get(kind, pd.DataFrame(columns=["point", "top1"]))
        write_text_atomic(folder / f"{kind}.csv", df.to_csv(index=False))


def run_findings(params: Params, le: dict, tables: dict[str, pd.DataFrame], finetune: pd.DataFrame | None, n: int,
                 main_run: str) -> list[Finding]:
    """Every finding the run measured, in the headline's order: the main run's, the grids', fine-tuning's."""
    findings = [replace(f, run=main_run) for f in [h_vs_gh_finding(le, params.head, n)] if f]
    findings += grid_findings(params, tables, n)
    if finetune is not None:
        findings.append(replace(finetune_finding(finetune, n), run=f"fine-tuned encoder of the {main_run}"))
    return findings


def finetune_sections(df: pd.DataFrame, figures: Path, n: int) -> list[ReportSection]:
    plot_finetune(df, figures / "finetune.png")
    return [ReportSection("Few labels: fine-tuned vs from scratch vs linear", [
        "The paper's semi-supervised evaluation (Table 7), scaled down (`params.yaml: finetune`): at each fraction "
        "a class-balanced subset of the labelled train split; the pretrained network fine-tuned whole, the same "
        "network trained from scratch with the same recipe and steps, and the linear probe on the frozen h, each "
        "scored on the whole test split.", read_finetune(df, n)], table=df[FINETUNE_COLUMNS],
        figures=[("finetune.png", "Test top-1 vs the fraction of labelled train images")])]


def fraction_file(root: Path, fraction: float, suffix: str = "") -> Path:
    """A file of stage finetune@<fraction> (its metrics; ``suffix="-correct"``: its per-image record):
    DVC writes the value as params.yaml has it (`1` for 1.0)."""
    path = root / f"{fraction}{suffix}.json"
    if not path.is_file() and float(fraction).is_integer():
        return root / f"{int(fraction)}{suffix}.json"
    return path


def _read_json(path: Path, rerun: str) -> dict:
    """A stage's JSON output; worded as :func:`simclr.core.correctness.read_record` words a record."""
    if not path.is_file():
        raise SimCLRError(f"{path} does not exist; run the stages before the report (dvc repro)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SimCLRError(f"{path} is not valid JSON ({exc}); rerun {rerun}") from None


def read_confusion_csv(path: Path) -> pd.DataFrame:
    """linear_eval's confusion CSV with every class name as text: "3" stays "3", "NA" stays "NA"."""
    return _read_csv(path, dtype=str)


def _read_csv(path: Path, dtype=None) -> pd.DataFrame:
    if not path.is_file():
        raise SimCLRError(f"{path} does not exist; run the stages before the report (dvc repro)")
    return pd.read_csv(path, dtype=dtype, keep_default_na=dtype is None)  # text: a class "NA" stays "NA"


def _flatten(d: dict) -> dict[str, str]:
    """Dotted keys two levels deep (``ablation.base`` stays one cell); lists and mappings as JSON."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in dotted(d, depth=2).items()}
