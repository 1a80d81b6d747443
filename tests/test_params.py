"""params.yaml validation: one line naming key, value and what is allowed; exit 2; nothing touched."""

import pytest
import yaml
from support import ROOT, run, stage_command

from simclr.core.config import ParamsError, dotted, load_params, validate


def default_raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_shipped_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    assert p.temperature > 0 and p.head in ("none", "linear", "mlp")
    assert [op.name for op in p.augment]


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda r: r.update(temprature=0.1), "temprature = 0.1 is not allowed; expected top-level keys"),
        (lambda r: r.update(temperature=-1), "temperature = -1 is not allowed; expected a finite number > 0"),
        (lambda r: r.update(temperature="hot"), "temperature = 'hot' is not allowed"),
        (lambda r: r.update(head="deep"), "head = 'deep' is not allowed; expected one of none, linear, mlp"),
        (lambda r: r.update(batch_size=1), "batch_size = 1 is not allowed; expected an integer >= 2"),
        (lambda r: r.update(batch_size=2.5), "batch_size = 2.5 is not allowed"),
        (lambda r: r.update(augment="simclr-imagenet"), "augment = 'simclr-imagenet' is not allowed; expected a preset"),
        (lambda r: r.update(augment={"crop": {}, "solarize": {}}), "augment = 'solarize' is not allowed; expected ops from"),
        (lambda r: r.update(augment={"color": {"strenght": 1}}), "augment.color.strenght = 1 is not allowed"),
        (lambda r: r.update(augment={"crop": {"scale": [0.9, 0.1]}}), "augment.crop.scale = [0.9, 0.1] is not allowed"),
        (lambda r: r["pretrain"].update(optimizer="lamb"), "pretrain.optimizer = 'lamb' is not allowed; expected one of lars, sgd, adam"),
        (lambda r: r["pretrain"].update(epocs=3), "pretrain.epocs = 3 is not allowed; expected keys of pretrain"),
        (lambda r: (r.update(batch_size=256), r["pretrain"].update(num_processes=3)),
         "batch_size = 256 is not allowed; expected a multiple of pretrain.num_processes (3)"),
        (lambda r: r["pretrain"].update(warmup_epochs=99), "pretrain.warmup_epochs = 99 is not allowed"),
        (lambda r: r["data"].update(source="imagenet"), "data.source = 'imagenet' is not allowed; expected one of cifar10-sample"),
        (lambda r: r["model"].update(encoder="vit"), "model.encoder = 'vit' is not allowed"),
        (lambda r: r.pop("seed"), "seed is missing"),
        (lambda r: r.pop("augment"), "augment is missing; expected a preset (simclr, simclr-cifar"),
        (lambda r: r["pretrain"].update({1: 2}), "pretrain.1 = 1 is not allowed; expected keys of pretrain: epochs"),
        (lambda r: r.update(augment={"crop": {"scale": [0.5]}}), "augment.crop.scale = [0.5] is not allowed; expected [low"),
        (lambda r: r.update(augment={"crop": {"scale": ["0.1", "0.5"]}}), "augment.crop.scale = ['0.1', '0.5'] is not"),
        (lambda r: r.update(augment=[{"crop": {}}, {"crop": {}}]), "augment = ['crop', 'crop'] is not allowed; expected each op once"),
        (lambda r: r["pretrain"].update(train_images=100), "batch_size = 128 is not allowed; expected at most pretrain.train_images (100)"),
        (lambda r: r["ablation"].update(augment_pairs=[3]), "ablation.augment_pairs[0] = 3 is not allowed; expected an op or op1+op2"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(edit, fragment):
    raw = default_raw()
    edit(raw)
    with pytest.raises(ParamsError) as err:
        validate(raw)
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_augment_mapping_keeps_order_and_fills_defaults():
    raw = default_raw()
    raw["augment"] = {"color": {"strength": 0.5}, "crop": None}
    ops = validate(raw).augment
    assert [o.name for o in ops] == ["color", "crop"]
    assert ops[0].options == {"strength": 0.5, "p": 0.8}
    assert ops[1].options["scale"] == (0.08, 1.0)


def test_cli_exits_2_with_one_line_and_touches_no_output(tmp_path):
    raw = default_raw()
    raw["temprature"] = 0.1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "keep.txt").write_text("old output")
    proc = run(stage_command("prepare", scripts=ROOT, prepared=out), cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: params.yaml: temprature = 0.1 is not allowed; expected top-level keys "
        "temperature, batch_size, head, augment, seed, data, model, pretrain, linear_eval, finetune, report, ablation"
    ]
    assert (out / "keep.txt").read_text() == "old output"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("content, fragment", [
    ("", "params.yaml: params.yaml is empty; it must hold every param (`git checkout params.yaml` restores the shipped one)"),
    (None, "params.yaml: params.yaml does not exist; run from the project root"),
])
def test_an_empty_or_missing_params_file_is_one_line_before_dvc_parses_it(tmp_path, content, fragment):
    """DVC's own error for these names a matrix key, not the file: `make repro` runs check_params first."""
    if content is not None:
        (tmp_path / "params.yaml").write_text(content)
    proc = run(["python", str(ROOT / "stages/check_params.py")], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [f"error: {fragment}"]
    # a clean make: under `make test` MAKELEVEL and MAKEFLAGS would add "Leaving directory" lines
    recipe = run(["make", "--no-print-directory", "-n", "repro"], ROOT, env={"MAKELEVEL": "", "MAKEFLAGS": ""}).stdout.splitlines()
    assert recipe[-2:] == [f"{ROOT / '.venv/bin'}/python stages/check_params.py", "dvc repro"]


def test_invalid_yaml_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("temperature: [0.5\n")
    proc = run(["python", str(ROOT / "stages/check_params.py")], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "is not valid YAML" in proc.stderr


def test_unquoted_no_from_dvc_exp_is_read_as_no():
    raw = default_raw()
    raw["pretrain"]["mixed_precision"] = False  # what PyYAML makes of `mixed_precision: no`
    assert validate(raw).pretrain.mixed_precision == "no"


@pytest.mark.parametrize("preset", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_is_valid_and_complete(preset):
    p = load_params(preset)
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(yaml.safe_load(preset.read_text())) == set(shipped)  # a full params.yaml, copyable as is
    assert p.data.source in ("cifar10", "stl10")  # a real dataset, not the embedded sample


def test_dotted_keys_flatten_to_the_depth_asked():
    nested = {"a": {"b": 1, "c": {"d": [2]}}, "e": "x", "f": {}}
    assert dotted(nested) == {"a.b": 1, "a.c.d": [2], "e": "x", "f": {}}
    assert dotted(nested, depth=2) == {"a.b": 1, "a.c": {"d": [2]}, "e": "x", "f": {}}
    assert dotted({}) == {}
