"""dvc.yaml's deps and params, checked against the code, so a stage reruns whenever what it runs changes.

A hand-kept list drifts: here each stage's code dependencies are derived from its entry point's
imports (simclr.sources.project_imports, the same function the checkpoint fingerprint uses) and
its params from the declarations the code itself uses (training_param_keys, point_param_keys).
"""

import dataclasses

import pytest
import yaml
from conftest import ROOT

from simclr.ablation import Point, point_param_keys, point_params
from simclr.params import Params, load_params, training_param_keys
from simclr.sources import project_imports

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def entry_point(stage: dict) -> str:
    words = stage["cmd"].split()
    (script,) = [w for w in words if w.startswith("stages/") and w.endswith(".py")]
    return script


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_project_file_a_stage_runs_is_a_dependency(name):
    stage = STAGES[name]
    listed = {d for d in stage["deps"] if d.endswith(".py")}
    imported = {p.relative_to(ROOT).as_posix() for p in project_imports(ROOT / entry_point(stage))}
    assert sorted(imported - listed) == [], f"dvc.yaml: stage {name} misses these deps"
    assert sorted(listed - imported) == [], f"dvc.yaml: stage {name} lists code it does not run (needless reruns)"


def test_no_stage_keeps_a_persistent_output():
    """DVC never run-caches a stage with a `persist` output (dvc/stage/cache.py)."""
    for name, stage in STAGES.items():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            options = next(iter(entry.values())) if isinstance(entry, dict) else {}
            assert not (options or {}).get("persist"), f"{name}: {entry}"


def test_pretrain_depends_on_exactly_the_params_that_train():
    assert STAGES["pretrain"]["params"] == training_param_keys()


def test_every_ablation_point_depends_on_exactly_the_params_it_reads():
    for grid in ("temperature", "head", "batch_size", "augment"):
        assert STAGES[f"ablate_{grid}"]["params"] == point_param_keys(), grid


def leaves(obj, prefix: str = "") -> list[str]:
    """Every dotted key of params, down to the values (``ablation.base.temperature``)."""
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        keys += leaves(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]
    return keys


def perturbed(obj, key: str):
    """obj with the value at `key` changed (not validated: only whether anything reads it matters)."""
    head, _, rest = key.partition(".")
    value = getattr(obj, head)
    if rest:
        return dataclasses.replace(obj, **{head: perturbed(value, rest)})
    if isinstance(value, bool):
        new = not value
    elif isinstance(value, (int, float)):
        new = value * 2 + 1
    elif isinstance(value, str):
        new = value + "-other"
    else:  # a tuple: the augment ops or a grid
        new = value[:-1] if value else ("other",)
    return dataclasses.replace(obj, **{head: new})


def covered(key: str, declared: list[str]) -> bool:
    """Whether a declared param (a key or a group) holds `key`; augment_spec travels with augment."""
    key = key.replace("augment_spec", "augment")
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
        return pp.training_config(), pp.linear_eval, p.ablation.train_images

    for point in (Point("temperature", 0.5), Point("head", "none"), Point("batch_size", 64), Point("augment", "crop")):
        for key in leaves(params):
            if not covered(key, point_param_keys()):
                assert effective(perturbed(params, key), point) == effective(params, point), (point, key)
