"""The report stage: every metric, curve and ablation point -> ``report.md``, its figures and the
self-contained ``index.html``.

Imports run one way: :mod:`statistics` (intervals and paired gaps) feeds :mod:`tables` (the stage
outputs as frames), both feed :mod:`readings` (the sentences and the paper's findings) and
:mod:`figures` (seaborn), and all of them feed the sections assembled here; :mod:`render` writes the Markdown
once and converts it to HTML; :mod:`experiments` tabulates ``dvc exp show`` for the optional section.
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
from simclr.core.grids import GRIDS, budgets, read_points
from simclr.report.figures import (
    plot_augment,
    plot_budgets,
    plot_confusion,
    plot_curves,
    plot_finetune,
    plot_heads,
    plot_metrics,
    plot_one_knob,
    plot_view_pairs,
)
from simclr.report.readings import (
    Finding,
    augment_finding,
    batch_size_finding,
    finetune_finding,
    h_vs_gh_finding,
    head_gap_finding,
    head_order_finding,
    read_augment,
    read_batch_size,
    read_budgets,
    read_confusion,
    read_curves,
    read_finetune,
    read_gain,
    read_head,
    read_heads,
    read_pairing,
    read_temperature,
    temperature_finding,
)
from simclr.report.statistics import independent_test_errors
from simclr.report.tables import (
    FINETUNE_COLUMNS,
    at_budget,
    augment_cell,
    augment_matrix,
    augment_shown,
    budget_gaps,
    finetune_table,
    grid_table,
    shown_table,
    with_base,
)
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
    pre = _read_json(paths.pretrain_metrics)
    le = _read_json(paths.linear_eval)
    history = _read_csv(paths.history)
    conf = read_confusion_csv(paths.confusion)
    manifest = _read_json(paths.prepared / "manifest.json")
    images = images_per_split(manifest)
    n = images["test"]  # every top-1 is scored on the whole test split: the noise of each reading
    points = read_points(params, paths.ablation, paths.ablation_correct, n)  # before any file is written
    le["correct"] = read_record(paths.linear_eval_correct, n, "`dvc repro -f linear_eval`")
    fractions = [{**_read_json(fraction_file(paths.finetune, f)),
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
GRID_COLUMNS = {kind: ["top1_h", "top1_z", "knn_top1", *(["loss"] if kind == "temperature" else [])]
                for kind in ("temperature", "head", "batch_size")}  # what a one-knob grid's table carries
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
    for kind in GRIDS.values():
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


def ablation_tables(params: Params, results: dict[str, list[dict]]) -> dict[str, pd.DataFrame]:
    """Each grid that ran as the readings take it: a table of values x budgets (the augment grid: its matrix)."""
    tables = {}
    for kind in ("temperature", "head", "augment", "batch_size"):
        if results[kind]:
            tables[kind] = (augment_matrix(results[kind]) if kind == "augment" else
                            grid_table(with_base(params, kind, results[kind], results), kind, GRID_COLUMNS[kind]))
    return tables


def grid_findings(params: Params, tables: dict[str, pd.DataFrame], n: int) -> list[Finding]:
    """The grids' findings, one per budget each grid ran at."""
    seeds, found = len(params.ablation.seeds), []
    for kind, table in tables.items():
        for e in budgets(params, kind):
            if kind == "augment":
                candidates = [augment_finding(table, n)]
            elif kind == "head":
                candidates = [head_order_finding(at_budget(table, e), n), head_gap_finding(at_budget(table, e), n)]
            else:
                candidates = [{"temperature": temperature_finding, "batch_size": batch_size_finding}[kind](
                    at_budget(table, e), n)]
            found += [_at(f, e, seeds) for f in candidates if f]
    return found


def finetune_sections(df: pd.DataFrame, figures: Path, n: int) -> list[ReportSection]:
    plot_finetune(df, figures / "finetune.png")
    return [ReportSection("Few labels: fine-tuned vs from scratch vs linear", [
        "The paper's semi-supervised evaluation (Table 7), scaled down (`params.yaml: finetune`): at each fraction "
        "a class-balanced subset of the labelled train split; the pretrained network fine-tuned whole, the same "
        "network trained from scratch with the same recipe and steps, and the linear probe on the frozen h, each "
        "scored on the whole test split.", read_finetune(df, n)], table=df[FINETUNE_COLUMNS],
        figures=[("finetune.png", "Test top-1 vs the fraction of labelled train images")])]


def ablations_intro(params: Params) -> str:
    """What every grid point is and how the readings compare two of them."""
    ab, base = params.ablation, params.ablation.base
    return (
        f"Each grid point pretrains on {ab.train_images or 'all'} training images from the base configuration "
        f"(temperature {base.temperature}, batch {base.batch_size}, head `{base.head}`, augment "
        f"{describe_ops(base.augment)}) with one knob changed, then probes the frozen encoder (fixed probe settings: "
        "trained on the whole train split, scored on the test split; `params.yaml: ablation`, one DVC stage per point). "
        f"The head and temperature grids run at every budget of `ablation.epochs` ({_epochs(ab.epochs)}), the "
        f"batch-size and augmentation grids at {_epochs(ab.epochs[:1])}. Every point runs once per seed "
        f"({', '.join(map(str, ab.seeds))}): a top-1 is the mean over seeds ± the half-width of its 95% interval "
        "(Student t over seeds, combined with the binomial error of the test split), and each reading compares two "
        "points by their per-seed differences (the same seed draws the same subset, init and order), with the test "
        "error of the difference paired over the images both were scored on."
        + (" With one seed the interval is the test error alone; training noise is not in it." if len(ab.seeds) == 1
           else ""))


def ablation_sections(params: Params, tables: dict[str, pd.DataFrame], figures: Path, n: int,
                      grids: dict[str, pd.DataFrame]) -> list[ReportSection]:
    """The ablation sections; adds each grid's plot data to ``grids``."""
    ab = params.ablation
    seeds = len(ab.seeds)
    sections = [ReportSection("Ablations", [ablations_intro(params)])]
    one_knob = {  # kind -> (title, reading, caption)
        "temperature": ("temperature", read_temperature, "Linear top-1 on h vs NT-Xent temperature, per budget (95% intervals)"),
        "batch_size": ("batch size", lambda df, n: read_batch_size(df, n, ab.epochs[0]),
                       "Linear top-1 on h vs global batch size at fixed epochs (95% intervals)"),
    }
    for kind, table in tables.items():
        name = f"ablation_{kind}.png"
        epochs = budgets(params, kind)
        if kind == "augment":
            grids[kind] = pd.DataFrame([(str(v), table.loc[augment_cell(v)]) for v in ab.augment_pairs],
                                       columns=["point", "top1"])
            plot_augment(table, figures / name)
            sections.append(ReportSection("Ablation: augmentation pairs", [
                "Ops on one branch only, the other view is the image (the paper's asymmetric setting); each cell is the "
                f"mean over {seeds} seed{'s' if seeds > 1 else ''} ± its 95% interval. " + read_augment(table, n)],
                table=augment_shown(table, n),
                figures=[(name, "Linear top-1 on h: single ops on the diagonal, op1 then op2 off it")]))
            continue
        df, columns = table, GRID_COLUMNS[kind]
        grids[kind] = pd.DataFrame(_grid_points(df, kind, len(epochs) > 1), columns=["point", "top1"])
        readings = []
        for e in epochs:
            at = at_budget(df, e)
            prefix = f"After {e} epochs: " if len(epochs) > 1 else ""
            readings.append(prefix + (read_heads(at, n) if kind == "head" else one_knob[kind][1](at, n)))
        shown = shown_table(df, kind, columns, n)
        if kind == "head":
            plot_heads(df, n, figures / name)
            sections.append(ReportSection("Ablation: projection head", readings, table=shown,
                                    figures=[(name, "Linear top-1 on h and on z = g(h) for each head and budget "
                                                    "(95% intervals)")]))
        else:
            title, _, caption = one_knob[kind]
            plot_one_knob(df, kind, n, figures / name, log_x=True)
            sections.append(ReportSection(f"Ablation: {title}", readings, table=shown, figures=[(name, caption)]))
    if len(ab.epochs) > 1 and ("temperature" in tables or "head" in tables):
        heads = tables.get("head")
        plot_budgets(tables.get("temperature"), None if heads is None else budget_gaps(heads, n), n,
                     figures / "ablation_budgets.png")
        sections.append(ReportSection("When the findings appear: training length", [
            "The head and temperature grids at each pretraining budget: does a finding that a short budget cannot "
            "show appear with more training? " + read_budgets(tables.get("temperature"), heads, n)],
            figures=[("ablation_budgets.png", "Left: linear top-1 on h per temperature vs budget. Right: h − g(h) "
                                              "per head vs budget (above 0: h is better). 95% intervals")]))
    return sections


def _epochs(epochs: tuple[int, ...]) -> str:
    return ", ".join(map(str, epochs)) + (" epoch" if epochs == (1,) else " epochs")


def _at(finding: Finding, epochs: int, seeds: int) -> Finding:
    return replace(finding, run=f"ablation, {epochs} epochs, {seeds} seed{'s' if seeds > 1 else ''}")


def _grid_points(df: pd.DataFrame, kind: str, per_budget: bool) -> list[tuple[str, float]]:
    """The grid's bars for `dvc plots`: mean top-1 per point (h and g(h) for the heads), budget in the name."""
    rows = []
    for _, r in df.iterrows():
        at = f" @{r['epochs']}ep" if per_budget else ""
        if kind == "head":
            rows += [(f"{r['head']} h{at}", r["top1_h"]), (f"{r['head']} g(h){at}", r["top1_z"])]
        else:
            rows.append((f"{r[kind]}{at}", r["top1_h"]))
    return [(p, round(float(v), 2)) for p, v in rows]


def fraction_file(root: Path, fraction: float, suffix: str = "") -> Path:
    """A file of stage finetune@<fraction> (its metrics; ``suffix="-correct"``: its per-image record):
    DVC writes the value as params.yaml has it (`1` for 1.0)."""
    path = root / f"{fraction}{suffix}.json"
    if not path.is_file() and float(fraction).is_integer():
        return root / f"{int(fraction)}{suffix}.json"
    return path


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise SimCLRError(f"{path} does not exist; run the stages before the report (dvc repro)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SimCLRError(f"{path} is not valid JSON ({exc}); rerun the stage that writes it") from None


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
