"""dvc.yaml's deps and params, checked against the code, so a stage reruns whenever what it runs changes.

Code deps are folders (src/simclr/core, src/simclr/report) and single modules: each stage's
imports, derived from its entry point (simclr.core.sources.project_imports, the function the
checkpoint fingerprint uses too), must all fall inside its deps, and every dep must hold code
it runs. Params come from the declarations the code uses (training_param_keys, point_param_keys).
"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import ROOT, dvc_paths

from simclr.ablation import POINT_PROBE, point_param_keys, point_params
from simclr.core.config import Params, Section, load_params, training_param_keys
from simclr.core.grids import Point
from simclr.core.sources import project_imports
from simclr.finetune import finetune_param_keys
from simclr.linear_eval import linear_eval_param_keys

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def entry_point(stage: dict) -> str:
    (script,) = [w for w in stage["cmd"].split() if w.startswith("stages/") and w.endswith(".py")]
    return script


def code_deps(stage: dict) -> list[str]:
    return [d for d in stage["deps"] if d.startswith(("src/", "stages/"))]


def covers(dep: str, path: str) -> bool:
    return path == dep or path.startswith(dep.rstrip("/") + "/")


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_project_file_a_stage_runs_is_inside_its_deps(name):
    stage = STAGES[name]
    deps = code_deps(stage)
    imported = [p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / entry_point(stage))]
    assert [f for f in imported if not any(covers(d, f) for d in deps)] == [], f"dvc.yaml: stage {name} misses these"
    unused = [d for d in deps if not any(covers(d, f) for f in imported)]
    assert unused == [], f"dvc.yaml: stage {name} depends on code it does not run (needless reruns)"


def test_code_deps_are_folders_or_single_modules_that_exist():
    for name, stage in STAGES.items():
        for dep in code_deps(stage):
            assert (ROOT / dep).exists(), (name, dep)


def test_bytecode_does_not_count_as_a_change_of_a_folder_dep():
    assert {"__pycache__/", "*.pyc"} <= set((ROOT / ".dvcignore").read_text().split())


def test_paths_are_written_only_in_the_paths_group():
    """Every path a stage reads or writes is ${paths.X} (or below it), never a literal."""
    paths = dvc_paths()
    for name, stage in STAGES.items():
        entries = [*stage["deps"], *(next(iter(e)) if isinstance(e, dict) else e
                                     for key in ("outs", "metrics", "plots") for e in stage.get(key, []))]
        for entry in entries:
            if entry.startswith(("src/", "stages/")):
                continue
            assert entry.startswith("${paths."), (name, entry)
        assert not any(literal in stage["cmd"] for literal in paths.values()), name


def test_no_stage_keeps_a_persistent_output():
    """DVC never run-caches a stage with a `persist` output (dvc/stage/cache.py)."""
    for name, stage in STAGES.items():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            options = next(iter(entry.values())) if isinstance(entry, dict) else {}
            assert not (options or {}).get("persist"), f"{name}: {entry}"


def test_pretrain_depends_on_exactly_the_params_that_train():
    assert STAGES["pretrain"]["params"] == training_param_keys()


def test_every_finetune_point_depends_on_exactly_the_params_it_reads():
    assert STAGES["finetune"]["params"] == finetune_param_keys()


def test_linear_eval_depends_on_exactly_the_params_it_reads():
    assert STAGES["linear_eval"]["params"] == linear_eval_param_keys()


def test_every_ablation_point_depends_on_exactly_the_params_it_reads():
    from simclr.core.grids import GRIDS

    for kind in (grid.kind for grid in GRIDS):
        assert STAGES[f"ablate_{kind}"]["params"] == point_param_keys(), kind


def leaves(model, prefix: str = "") -> list[str]:
    """Every dotted key of params, down to the values (``ablation.base.temperature``)."""
    keys = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        keys += leaves(value, f"{prefix}{name}.") if isinstance(value, Section) else [prefix + name]
    return keys


def perturbed(params: Params, key: str) -> Params:
    """params with the value at `key` changed to another valid one (only whether anything reads it matters)."""
    value = params
    for part in key.split("."):
        value = getattr(value, part)
    candidates = {
        "augment": "crop-flip", "ablation.base.augment": "crop-flip", "head": "linear", "ablation.base.head": "linear",
        "data.source": "npz", "model.encoder": "resnet18", "pretrain.optimizer": "sgd", "pretrain.lr_scaling": "sqrt",
        "pretrain.augment_views": "one", "pretrain.mixed_precision": "bf16", "ablation.heads": ["mlp"],
        "ablation.augment_pairs": ["crop"], "ablation.temperatures": [0.3], "ablation.batch_sizes": [64],
        "pretrain.momentum": 0.5, "report.view_pairs": 3, "pretrain.num_processes": 2, "seed": 7,
        "pretrain.warmup_epochs": 1, "ablation.warmup_epochs": 0, "pretrain.dist_timeout_seconds": 300,
        "ablation.train_images": 4096, "pretrain.train_images": 1000, "model.head_layers": 3,
        "finetune.label_fractions": [0.5], "finetune.momentum": 0.5, "pretrain.log_with": "tensorboard",
        "ablation.epochs": [2, 4], "ablation.seeds": [5], "linear_eval.val_fraction": 0.25,
        "linear_eval.search.epochs": [7], "linear_eval.search.lr": [0.5], "linear_eval.search.weight_decay": [0.1],
    }
    if key in candidates:
        new = candidates[key]
    elif isinstance(value, bool):
        new = not value
    elif isinstance(value, (int, float)):
        new = value * 2 + 1
    else:
        new = value + "-other"
    changed = params.replace(**{key: new})
    assert changed != params, key
    return changed


def covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def test_a_key_pretrain_does_not_declare_changes_nothing_it_trains():
    params = load_params(ROOT / "params.yaml")
    for key in leaves(params):
        if not covered(key, training_param_keys()):
            assert perturbed(params, key).training_config() == params.training_config(), key


def test_a_key_an_ablation_point_does_not_declare_changes_nothing_it_runs():
    params = load_params(ROOT / "params.yaml")

    def effective(p: Params, point: Point):
        pp = point_params(p, point)
        return pp.training_config(), POINT_PROBE.view(pp)

    points = (Point("temperature", 0.5, 3, 0), Point("head", "none", 3, 1), Point("batch_size", 64, 3, 0),
              Point("augment", "crop", 3, 0))
    for point in points:
        for key in leaves(params):
            if not covered(key, point_param_keys()):
                assert effective(perturbed(params, key), point) == effective(params, point), (point, key)


def test_the_stage_modules_do_not_import_each_other_the_wrong_way():
    """core imports nothing outside core; report imports no stage module (no cycle, one way)."""
    core = ROOT / "src/simclr/core"
    for path in core.glob("*.py"):
        outside = [p for p in project_imports(path) if not p.is_relative_to(core) and p.name != "__init__.py"]
        assert outside == [], path.name
    report = {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / "src/simclr/report/__init__.py")}
    assert not report & {"src/simclr/pretrain.py", "src/simclr/ablation.py", "src/simclr/linear_eval.py"}
    for pure in ("statistics", "tables", "readings"):  # numbers and sentences: no figure
        assert "matplotlib" not in (ROOT / f"src/simclr/report/{pure}.py").read_text(), pure
    assert "import pandas" not in (ROOT / "src/simclr/report/statistics.py").read_text()  # numbers only


@pytest.mark.parametrize("module", ["ablation", "finetune", "linear_eval"])
def test_linear_eval_keys_are_read_only_through_the_declared_view(module):
    """A direct ``params.linear_eval.X`` would read a key the stage may not depend on: a stale result."""
    import ast

    tree = ast.parse((ROOT / f"src/simclr/{module}.py").read_text())
    direct = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "linear_eval"]
    assert not direct, f"src/simclr/{module}.py reads .linear_eval directly at lines {direct}; use its SectionReads"


def test_check_params_loads_neither_torch_nor_pandas():
    """The stage that guards `dvc repro` starts fast: nothing it imports pulls in torch or pandas."""
    probe = ("import sys; sys.path.insert(0, 'stages'); import check_params; "
             "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
