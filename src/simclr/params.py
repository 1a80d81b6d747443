"""params.yaml: read once, validate everything, hand typed objects down.

Every stage and the CLI read params through :func:`load_params`; nothing else opens
params.yaml. A wrong key or value raises :class:`ParamsError` whose message is one line
naming the key, the value and what is allowed. This module does not import torch so the
``check_params`` stage that guards ``dvc repro`` starts in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simclr.errors import SimCLRError


class ParamsError(SimCLRError, ValueError):
    """A params.yaml key or value is wrong; the message names key, value and what is allowed."""


# --------------------------------------------------------------------------------------------
# Augmentation ops: name -> {option: default}. Ranges and probabilities are the paper's
# (Chen et al. 2020, Appendix A); `simclr.augment` implements them.
# --------------------------------------------------------------------------------------------
AUGMENT_OPS: dict[str, dict[str, Any]] = {
    "crop": {"scale": [0.08, 1.0], "ratio": [3 / 4, 4 / 3]},
    "flip": {"p": 0.5},
    "color": {"strength": 1.0, "p": 0.8},
    "grayscale": {"p": 0.2},
    "blur": {"p": 0.5, "sigma": [0.1, 2.0], "kernel_fraction": 0.1},
    # The paper's Figure 5 ablation ops; the paper gives no parameters (see simclr.augment).
    "cutout": {"p": 1.0, "size": 0.5},
    "noise": {"p": 1.0, "sigma": [0.05, 0.15]},
    "sobel": {"p": 1.0},
    "rotate": {"p": 1.0},
}

AUGMENT_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # ImageNet policy of the paper: crop+flip, colour distortion s=1, blur.
    "simclr": {
        "crop": {},
        "flip": {},
        "color": {"strength": 1.0},
        "grayscale": {},
        "blur": {},
    },
    # CIFAR policy of the paper (Appendix B.9): colour strength 0.5 and no blur.
    "simclr-cifar": {
        "crop": {},
        "flip": {},
        "color": {"strength": 0.5},
        "grayscale": {},
    },
    "crop-flip": {"crop": {}, "flip": {}},
    "none": {},
}

# The ops of the paper's augmentation ablation (Figure 5), each as the augment ops it stands for:
# crop is "crop and resize (with flip)" and colour is "colour distortion" (jitter + drop).
FIGURE5_OPS: dict[str, dict[str, dict[str, Any]]] = {
    "crop": {"crop": {}, "flip": {}},
    "cutout": {"cutout": {}},
    "color": {"color": {}, "grayscale": {}},
    "sobel": {"sobel": {}},
    "noise": {"noise": {}},
    "blur": {"blur": {}},
    "rotate": {"rotate": {}},
}

SOURCES = ("cifar10-sample", "cifar10", "cifar100", "imagefolder", "npz")
ENCODERS = ("small_cnn", "resnet18", "resnet34", "resnet50")
HEADS = ("none", "linear", "mlp")
OPTIMIZERS = ("lars", "sgd", "adam")
LR_SCALINGS = ("linear", "sqrt", "none")
MIXED_PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class AugmentOp:
    name: str
    options: dict[str, Any]


@dataclass(frozen=True)
class DataParams:
    source: str = "cifar10-sample"
    root: str = "data/raw"
    download: bool = False
    image_size: int = 32


@dataclass(frozen=True)
class ModelParams:
    encoder: str = "small_cnn"
    width: int = 32
    cifar_stem: bool = True
    head_hidden_dim: int = 512
    head_out_dim: int = 128
    head_layers: int = 2


@dataclass(frozen=True)
class PretrainParams:
    epochs: int = 30
    optimizer: str = "lars"
    lr: float = 0.3
    lr_scaling: str = "linear"
    momentum: float = 0.9
    weight_decay: float = 1e-6
    trust_coefficient: float = 0.001
    warmup_epochs: int = 10
    num_processes: int = 1
    mixed_precision: str = "no"
    channels_last: bool = True
    compile: bool = False
    knn_every: int = 1
    knn_k: int = 200
    knn_temperature: float = 0.1
    dist_timeout_seconds: int = 120
    checkpoint_dir: str = ".simclr/checkpoints"


# The pretrain keys that do not change the trained weights: how the run is watched (the kNN
# monitor), how long a hung process is waited for, where checkpoints are kept. They are not
# dependencies of the pretrain stage (dvc.yaml) nor part of its checkpoint fingerprint, so
# changing one neither retrains nor discards a checkpoint; it takes effect the next time it trains.
PRETRAIN_RUNTIME_KEYS = ("knn_every", "knn_k", "knn_temperature", "dist_timeout_seconds", "checkpoint_dir")


@dataclass(frozen=True)
class LinearEvalParams:
    epochs: int = 100
    lr: float = 0.001
    batch_size: int = 256
    weight_decay: float = 1e-5
    knn_k: int = 200
    knn_temperature: float = 0.1


@dataclass(frozen=True)
class ReportParams:
    view_pairs: int = 8
    experiments: bool = False


@dataclass(frozen=True)
class AblationBase:
    """The configuration every ablation grid varies one knob of."""

    temperature: float = 0.2
    batch_size: int = 128
    head: str = "mlp"
    augment: tuple[AugmentOp, ...] = ()
    augment_spec: Any = "simclr-cifar"


@dataclass(frozen=True)
class AblationParams:
    epochs: int = 3
    warmup_epochs: int = 1
    train_images: int = 0
    linear_eval_epochs: int = 50
    base: AblationBase = field(default_factory=AblationBase)
    temperatures: tuple[float, ...] = ()
    heads: tuple[str, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    augment_pairs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Params:
    temperature: float = 0.5
    batch_size: int = 256
    head: str = "mlp"
    augment: tuple[AugmentOp, ...] = ()
    augment_spec: Any = "simclr-cifar"
    seed: int = 0
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    linear_eval: LinearEvalParams = field(default_factory=LinearEvalParams)
    report: ReportParams = field(default_factory=ReportParams)
    ablation: AblationParams = field(default_factory=AblationParams)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view with `augment` as written in params.yaml."""
        out = dataclasses.asdict(self)
        out.pop("augment")
        out["augment"] = out.pop("augment_spec")
        base = out["ablation"]["base"]
        base.pop("augment")
        base["augment"] = base.pop("augment_spec")
        return out

    def training_config(self) -> dict[str, Any]:
        """Everything in params that determines pretraining's weights, resolved: the augment ops
        with their options (not a preset's name, whose ops live in this module)."""
        d = self.to_dict()
        return {
            "seed": self.seed,
            "temperature": self.temperature,
            "batch_size": self.batch_size,
            "head": self.head,
            "augment": [{op.name: op.options} for op in self.augment],
            "model": d["model"],
            "data.image_size": self.data.image_size,
            "pretrain": {k: v for k, v in d["pretrain"].items() if k not in PRETRAIN_RUNTIME_KEYS},
        }


TOP_LEVEL = ("temperature", "batch_size", "head", "augment", "seed")
GROUPS = {
    "data": DataParams,
    "model": ModelParams,
    "pretrain": PretrainParams,
    "linear_eval": LinearEvalParams,
    "report": ReportParams,
}


# --------------------------------------------------------------------------------------------
# value checkers: each returns the typed value or raises ParamsError naming key/value/allowed
# --------------------------------------------------------------------------------------------
def training_param_keys() -> list[str]:
    """The params.yaml keys :meth:`Params.training_config` reads: the pretrain stage's params in dvc.yaml."""
    config = Params().training_config()
    return [k for k in config if k != "pretrain"] + [f"pretrain.{k}" for k in config["pretrain"]]


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ParamsError(f"params.yaml: {key} = {value!r} is not allowed; expected {allowed}")


def _int(key: str, v: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        _fail(key, v, _range_text("an integer", lo, hi))
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        _fail(key, v, _range_text("an integer", lo, hi))
    return v


def _float(
    key: str, v: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail(key, v, _range_text("a finite number", lo, hi, lo_open))
    v = float(v)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        _fail(key, v, _range_text("a finite number", lo, hi, lo_open))
    if hi is not None and v > hi:
        _fail(key, v, _range_text("a finite number", lo, hi, lo_open))
    return v


def _range_text(kind: str, lo: Any, hi: Any, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{lo}, {hi}]"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def _choice(key: str, v: Any, choices: tuple[str, ...]) -> str:
    if v not in choices:
        _fail(key, v, "one of " + ", ".join(choices))
    return v


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        _fail(key, v, "true or false")
    return v


def _str(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        _fail(key, v, "a non-empty string")
    return v


def _interval(key: str, v: Any, lo: float, hi: float) -> list[float]:
    ok = (
        isinstance(v, (list, tuple))
        and len(v) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        and lo <= v[0] <= v[1] <= hi
    )
    if not ok:
        _fail(key, v, f"[low, high] with {lo} <= low <= high <= {hi}")
    return [float(v[0]), float(v[1])]


def _prob(key: str, v: Any) -> float:
    return _float(key, v, 0.0, 1.0)


# The knobs the ablation grids vary: one check each, for the top level, ablation.base, the grids
# and `simclr ablate`.
KNOB_CHECKS = {
    "temperature": lambda k, v: _float(k, v, 0.0, lo_open=True),
    "batch_size": lambda k, v: _int(k, v, 2),
    "head": lambda k, v: _choice(k, v, HEADS),
}


_OPTION_CHECKS = {
    ("crop", "scale"): lambda k, v: _interval(k, v, 1e-3, 1.0),
    ("crop", "ratio"): lambda k, v: _interval(k, v, 0.1, 10.0),
    ("flip", "p"): _prob,
    ("color", "strength"): lambda k, v: _float(k, v, 0.0, 10.0),
    ("color", "p"): _prob,
    ("grayscale", "p"): _prob,
    ("blur", "p"): _prob,
    ("blur", "sigma"): lambda k, v: _interval(k, v, 1e-3, 100.0),
    ("blur", "kernel_fraction"): lambda k, v: _float(k, v, 0.0, 1.0, lo_open=True),
    ("cutout", "p"): _prob,
    ("cutout", "size"): lambda k, v: _float(k, v, 0.0, 1.0, lo_open=True),
    ("noise", "p"): _prob,
    ("noise", "sigma"): lambda k, v: _interval(k, v, 0.0, 1.0),
    ("sobel", "p"): _prob,
    ("rotate", "p"): _prob,
}


def parse_augment(spec: Any) -> tuple[AugmentOp, ...]:
    """`augment` is a preset name, or an ordered mapping op -> options (null/{} = defaults).

    Ops run in the order written. Presets: see AUGMENT_PRESETS.
    """
    if isinstance(spec, str):
        if spec not in AUGMENT_PRESETS:
            _fail(
                "augment",
                spec,
                "a preset (" + ", ".join(AUGMENT_PRESETS) + ") or a mapping of ops ("
                + ", ".join(AUGMENT_OPS) + ")",
            )
        spec = AUGMENT_PRESETS[spec]
    if not isinstance(spec, dict):
        _fail("augment", spec, "a preset name or a mapping of ops (" + ", ".join(AUGMENT_OPS) + ")")
    ops = []
    for name, options in spec.items():
        key = f"augment.{name}"
        if name not in AUGMENT_OPS:
            _fail("augment", name, "ops from " + ", ".join(AUGMENT_OPS))
        options = {} if options is None else options
        if not isinstance(options, dict):
            _fail(key, options, "a mapping of options (" + ", ".join(AUGMENT_OPS[name]) + ") or {}")
        merged = dict(AUGMENT_OPS[name])
        for opt, value in options.items():
            if opt not in AUGMENT_OPS[name]:
                _fail(f"{key}.{opt}", value, "options of " + name + ": " + ", ".join(AUGMENT_OPS[name]))
            merged[opt] = _OPTION_CHECKS[(name, opt)](f"{key}.{opt}", value)
        ops.append(AugmentOp(name, merged))
    return tuple(ops)


def _build_group(name: str, cls: type, raw: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail(name, raw, "a mapping of " + ", ".join(f.name for f in dataclasses.fields(cls)))
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            _fail(f"{name}.{key}", raw[key], "keys of " + name + ": " + ", ".join(known))
    values = {k: raw.get(k, known[k].default) for k in known}
    checked = {k: _check_field(f"{name}.{k}", v) for k, v in values.items()}
    return cls(**checked)


def _check_field(key: str, v: Any) -> Any:
    check = _FIELD_CHECKS[key]
    return check(key, v)


_FIELD_CHECKS: dict[str, Any] = {
    "data.source": lambda k, v: _choice(k, v, SOURCES),
    "data.root": _str,
    "data.download": _bool,
    "data.image_size": lambda k, v: _int(k, v, 8, 1024),
    "model.encoder": lambda k, v: _choice(k, v, ENCODERS),
    "model.width": lambda k, v: _int(k, v, 1, 4096),
    "model.cifar_stem": _bool,
    "model.head_hidden_dim": lambda k, v: _int(k, v, 1, 65536),
    "model.head_out_dim": lambda k, v: _int(k, v, 1, 65536),
    "model.head_layers": lambda k, v: _int(k, v, 2, 16),
    "pretrain.epochs": lambda k, v: _int(k, v, 1),
    "pretrain.optimizer": lambda k, v: _choice(k, v, OPTIMIZERS),
    "pretrain.lr": lambda k, v: _float(k, v, 0.0, lo_open=True),
    "pretrain.lr_scaling": lambda k, v: _choice(k, v, LR_SCALINGS),
    "pretrain.momentum": lambda k, v: _float(k, v, 0.0, 1.0),
    "pretrain.weight_decay": lambda k, v: _float(k, v, 0.0),
    "pretrain.trust_coefficient": lambda k, v: _float(k, v, 0.0, lo_open=True),
    "pretrain.warmup_epochs": lambda k, v: _int(k, v, 0),
    "pretrain.num_processes": lambda k, v: _int(k, v, 1, 4096),
    # YAML 1.1 reads an unquoted `no` (as `dvc exp run -S` writes it) as false: same meaning.
    "pretrain.mixed_precision": lambda k, v: _choice(k, "no" if v is False else v, MIXED_PRECISIONS),
    "pretrain.channels_last": _bool,
    "pretrain.compile": _bool,
    "pretrain.knn_every": lambda k, v: _int(k, v, 0),
    "pretrain.knn_k": lambda k, v: _int(k, v, 1),
    "pretrain.knn_temperature": lambda k, v: _float(k, v, 0.0, lo_open=True),
    "pretrain.dist_timeout_seconds": lambda k, v: _int(k, v, 10),
    "pretrain.checkpoint_dir": _str,
    "linear_eval.epochs": lambda k, v: _int(k, v, 1),
    "linear_eval.lr": lambda k, v: _float(k, v, 0.0, lo_open=True),
    "linear_eval.batch_size": lambda k, v: _int(k, v, 1),
    "linear_eval.weight_decay": lambda k, v: _float(k, v, 0.0),
    "linear_eval.knn_k": lambda k, v: _int(k, v, 1),
    "linear_eval.knn_temperature": lambda k, v: _float(k, v, 0.0, lo_open=True),
    "report.view_pairs": lambda k, v: _int(k, v, 1, 64),
    "report.experiments": _bool,
}


def _grid(key: str, v: Any, check) -> tuple:
    """A list of distinct values (each becomes a DVC stage named after it); [] turns the grid off."""
    if not isinstance(v, list):
        _fail(key, v, "a list (may be empty)")
    values = tuple(check(f"{key}[{i}]", item) for i, item in enumerate(v))
    if len(set(map(str, values))) != len(values):
        _fail(key, v, "a list without repeated values (each value names one stage)")
    return values


def parse_augment_pair(key: str, v: Any) -> str:
    """`op` (the op alone) or `op1+op2` (op1 then op2), ops from FIGURE5_OPS."""
    allowed = "an op or op1+op2 with ops from " + ", ".join(FIGURE5_OPS)
    if not isinstance(v, str):
        _fail(key, v, allowed)
    ops = v.split("+")
    if len(ops) > 2 or any(op not in FIGURE5_OPS for op in ops):
        _fail(key, v, allowed)
    if len(ops) == 2 and ops[0] == ops[1]:
        _fail(key, v, f"two different ops (write `{ops[0]}` for the op alone)")
    return v


def augment_pair_ops(pair: str) -> tuple[AugmentOp, ...]:
    """The augment ops one branch gets at an augmentation-ablation point."""
    spec: dict[str, Any] = {}
    for op in pair.split("+"):
        spec.update(FIGURE5_OPS[op])
    return parse_augment(spec)


_ABLATION_KEYS = ("epochs", "warmup_epochs", "train_images", "linear_eval_epochs", "base", "temperatures", "heads",
                  "batch_sizes", "augment_pairs")
_BASE_KEYS = ("temperature", "batch_size", "head", "augment")


def parse_ablation(raw: Any) -> AblationParams:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail("ablation", raw, "a mapping of " + ", ".join(_ABLATION_KEYS))
    for key in raw:
        if key not in _ABLATION_KEYS:
            _fail(f"ablation.{key}", raw[key], "keys of ablation: " + ", ".join(_ABLATION_KEYS))
    d = AblationParams()
    base_raw = raw.get("base", {})
    if not isinstance(base_raw, dict):
        _fail("ablation.base", base_raw, "a mapping of " + ", ".join(_BASE_KEYS))
    for key in base_raw:
        if key not in _BASE_KEYS:
            _fail(f"ablation.base.{key}", base_raw[key], "keys of ablation.base: " + ", ".join(_BASE_KEYS))
    b = AblationBase()
    spec = base_raw.get("augment", b.augment_spec)
    try:
        ops = parse_augment(spec)
    except ParamsError as exc:  # name the key the value sits under
        raise ParamsError(str(exc).replace("params.yaml: augment", "params.yaml: ablation.base.augment", 1)) from None
    base = AblationBase(
        **{k: KNOB_CHECKS[k](f"ablation.base.{k}", base_raw.get(k, getattr(b, k))) for k in KNOB_CHECKS},
        augment=ops,
        augment_spec=spec,
    )
    ab = AblationParams(
        epochs=_int("ablation.epochs", raw.get("epochs", d.epochs), 1),
        warmup_epochs=_int("ablation.warmup_epochs", raw.get("warmup_epochs", d.warmup_epochs), 0),
        train_images=_int("ablation.train_images", raw.get("train_images", d.train_images), 0),
        linear_eval_epochs=_int("ablation.linear_eval_epochs", raw.get("linear_eval_epochs", d.linear_eval_epochs), 1),
        base=base,
        temperatures=_grid("ablation.temperatures", raw.get("temperatures", []), KNOB_CHECKS["temperature"]),
        heads=_grid("ablation.heads", raw.get("heads", []), KNOB_CHECKS["head"]),
        batch_sizes=_grid("ablation.batch_sizes", raw.get("batch_sizes", []), KNOB_CHECKS["batch_size"]),
        augment_pairs=_grid("ablation.augment_pairs", raw.get("augment_pairs", []), parse_augment_pair),
    )
    if ab.warmup_epochs > ab.epochs:
        _fail("ablation.warmup_epochs", ab.warmup_epochs, f"<= ablation.epochs ({ab.epochs})")
    sizes = [("ablation.base.batch_size", base.batch_size)]
    sizes += [(f"ablation.batch_sizes[{i}]", bs) for i, bs in enumerate(ab.batch_sizes)]
    for key, bs in sizes:
        if ab.train_images and bs > ab.train_images:
            _fail(key, bs, f"at most ablation.train_images ({ab.train_images})")
    return ab


def validate(raw: Any) -> Params:
    """Turn the parsed YAML document into :class:`Params` or raise :class:`ParamsError`."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml: the document is {type(raw).__name__}; expected a mapping")
    allowed = TOP_LEVEL + tuple(GROUPS) + ("ablation",)
    for key in raw:
        if key not in allowed:
            _fail(key, raw[key], "top-level keys " + ", ".join(allowed))
    for key in TOP_LEVEL:
        if key not in raw:
            raise ParamsError(f"params.yaml: {key} is missing; it is required ({', '.join(TOP_LEVEL)})")
    params = Params(
        **{k: KNOB_CHECKS[k](k, raw[k]) for k in KNOB_CHECKS},
        augment=parse_augment(raw["augment"]),
        augment_spec=raw["augment"],
        seed=_int("seed", raw["seed"], 0, 2**31 - 1),
        **{name: _build_group(name, cls, raw.get(name)) for name, cls in GROUPS.items()},
        ablation=parse_ablation(raw.get("ablation")),
    )
    pre = params.pretrain
    if params.batch_size % pre.num_processes:
        _fail(
            "batch_size",
            params.batch_size,
            f"a multiple of pretrain.num_processes ({pre.num_processes}): it is the global batch",
        )
    if pre.warmup_epochs > pre.epochs:
        _fail("pretrain.warmup_epochs", pre.warmup_epochs, f"<= pretrain.epochs ({pre.epochs})")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params.yaml: {path} does not exist; run from the project root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ParamsError(f"params.yaml: {path} is not valid YAML ({first})") from None
    return validate(raw)
