"""params.yaml, declared once: pydantic models read it, validate it and hand typed objects down.

Every key is a field below with its type and range; the values live in params.yaml only (every
key is required, so no default here can drift from it). :func:`load_params` is the one reader.
A wrong key or value raises :class:`ParamsError` with one line, derived from the declaration::

    params.yaml: KEY = VALUE is not allowed; expected WHAT THE FIELD ALLOWS

``augment`` (a preset name or a mapping of ops) is resolved into its ops with every option filled
in (:mod:`simclr.core.augment_config` declares the ops), so what trains, what is fingerprinted and
what the report shows is the resolved policy.
This module does not import torch: the ``check_params`` stage that guards ``dvc repro`` starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import annotated_types as at
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Strict,
    ValidationError,
    model_validator,
)

from simclr.core.ablation_config import AblationParams, BatchSize, Head, Temperature
from simclr.core.augment_config import Augment, AugmentOp
from simclr.core.validation import (
    Axis,
    Bool,
    Epochs,
    Float,
    Fraction,
    Grid,
    Int,
    ParamsError,
    Positive,
    Prob,
    Section,
    Seed,
    Text,
    error_line,
    problem,
)

# --------------------------------------------------------------------------------------------
# the sections of params.yaml
# --------------------------------------------------------------------------------------------
# The sources that bring no unlabeled images (imagefolder, npz and stl10 may).
LABELLED_ONLY_SOURCES = ("cifar10-sample", "cifar10", "cifar100")


class DataParams(Section):
    source: Literal["cifar10-sample", "cifar10", "cifar100", "stl10", "imagefolder", "npz"]
    """where images come from ([Real data](data.md#real-data))"""
    root: Text  # imagefolder folder, npz file, or where torchvision keeps its copy
    """the imagefolder folder, the .npz file, or where torchvision's CIFAR / STL-10 copy is / goes"""
    download: Bool
    """may torchvision download CIFAR / STL-10 into `data.root` (an existing copy is used as is)"""
    image_size: Annotated[Int, at.Ge(8), at.Le(1024)]
    """images are resized (shorter side, bicubic) and centre-cropped to this; 32-96 px is what the pipeline is
    tested and measured at
    """
    pretrain_on: Literal["train", "unlabeled", "train+unlabeled"]  # probes and kNN always use train/test
    """the images pretraining (and the ablation points) draw from. `unlabeled` needs a source that has them (stl10,
    imagefolder's `unlabeled/`, npz's `x_unlabeled`); the CIFAR sources allow only `train`. Probes, kNN and
    fine-tuning always use the labelled train/test splits
    """

    @model_validator(mode="after")
    def _source_has_unlabeled(self):
        if self.pretrain_on != "train" and self.source in LABELLED_ONLY_SOURCES:
            raise problem("pretrain_on", self.pretrain_on,
                          f"train: data.source {self.source} has no unlabeled images "
                          "(stl10, imagefolder and npz can bring them)")
        return self


class ModelParams(Section):
    encoder: Literal["small_cnn", "small_resnet", "resnet18", "resnet34", "resnet50"]
    """encoder f; h is its pooled output (`small_resnet`: a stride-2 stem and three ResNet basic blocks, most of
    its FLOPs at low resolution; `simclr.core.encoders`)
    """
    width: Annotated[Int, at.Ge(1), at.Le(4096)]
    """`small_cnn` and `small_resnet` widths w, 2w, 4w, 8w (h is 8w-d)"""
    cifar_stem: Bool
    """ResNets: 3x3 stride-1 first conv and no max-pool, for images up to about 64 px; above that the ImageNet stem
    (`false`: 7x7 stride 2 + max-pool) brings 96 px down to 24 px before layer1, about CIFAR's cost, where the
    CIFAR stem would keep 9x the activations
    """
    head_hidden_dim: Annotated[Int, at.Ge(1), at.Le(65536)]
    """MLP head hidden width"""
    head_out_dim: Annotated[Int, at.Ge(1), at.Le(65536)]
    """z dimension (linear and mlp heads)"""
    head_layers: Annotated[Int, at.Ge(2), at.Le(16)]
    """MLP head linear layers"""


class PretrainParams(Section):
    epochs: Annotated[Int, at.Ge(1)]
    """pretraining epochs"""
    optimizer: Literal["lars", "sgd", "adam"]
    """LARS excludes biases and BN parameters from weight decay and trust-ratio adaptation"""
    lr: Positive
    """base lr, scaled by `lr_scaling`"""
    lr_scaling: Literal["linear", "sqrt", "none"]
    """peak lr = lr x batch/256, lr x sqrt(batch), or lr"""
    momentum: Prob
    """LARS / SGD momentum"""
    weight_decay: Annotated[Float, at.Ge(0.0)]
    """weights only (not biases / BN)"""
    trust_coefficient: Positive
    """LARS η"""
    warmup_epochs: Annotated[Int, at.Ge(0)]
    """linear warmup, then cosine decay to 0, per step"""
    train_images: Annotated[Int, at.Ge(0)]  # a fixed seeded subset of this many images; 0: all
    """train on a fixed seeded subset of this many of the images `data.pretrain_on` names (0: all of them); the kNN
    monitor uses the labelled train split
    """
    augment_views: Literal["both", "one"]  # one: ops on one view, the other is the image (Figure 5)
    """`both`: each view drawn with `augment`; `one`: the first view is the image itself and only the second is
    augmented (the paper's asymmetric setting of Figure 5, which the augmentation grid uses)
    """
    num_processes: Annotated[Int, at.Ge(1), at.Le(4096)]
    """processes (one per GPU); the stage starts them itself with torchrun, see [Many GPUs](scaling.md#many-gpus)"""
    # YAML 1.1 reads an unquoted `no` (as `dvc exp run -S` writes it) as false: same meaning.
    mixed_precision: Annotated[Literal["no", "bf16", "fp16"], BeforeValidator(lambda v: "no" if v is False else v)]
    """autocast for the encoder; the loss is always fp32"""
    channels_last: Bool
    """NHWC memory format for the encoder (faster on the AVX2 CPU of BENCHMARKS.md, no gain on the AVX-512 one)"""
    compile: Bool
    """`torch.compile` (inductor) through Accelerate's dynamo backend"""
    knn_every: Annotated[Int, at.Ge(0)]
    """kNN monitor every n epochs (and the last); 0 = never"""
    log_every_steps: Annotated[Int, at.Ge(1)]  # the host reads the loss and the finite-check every n steps
    """the host reads the loss and the finite-check back from the device every n steps and at each epoch's end, and
    nowhere else; a non-finite step is never applied and stops the run at the next read (see
    [Many GPUs](scaling.md#many-gpus), "A loop that does not wait on the host")
    """
    knn_k: Annotated[Int, at.Ge(1)]
    """neighbours of the weighted kNN monitor"""
    knn_temperature: Positive
    """temperature T of the weighted kNN monitor (votes weighted by exp(sim/T))"""
    dist_timeout_seconds: Annotated[Int, at.Ge(10)]
    """process-group timeout: a hung or dead rank fails the run after this long"""
    checkpoint_dir: Annotated[str, Strict()]  # "": keep no checkpoints (the short ablation points)
    """the checkpoint store of unfinished runs; a relative path is taken from the DVC project (for queued and
    temporary experiments: the project they were started from). See [Checkpoints and
    resume](experiments.md#checkpoints-and-resume); `""` keeps none (what the ablation points use); `~` and
    `$VARS` are expanded
    """
    log_with: Literal["none", "dvclive", "tensorboard", "wandb"]  # a live view (simclr.core.tracking)
    """a live view of the run through Accelerate's trackers (its package must be installed); changes nothing
    trained. See [Watching a run](experiments.md#watching-a-run)
    """

    @model_validator(mode="after")
    def _warmup_within_training(self):
        if self.warmup_epochs > self.epochs:
            raise problem("warmup_epochs", self.warmup_epochs, f"<= pretrain.epochs ({self.epochs})")
        return self


# The pretrain keys that do not change the trained weights: how the run is watched (the kNN
# monitor, how often the host reads the loss, the tracker), how long a hung process is waited
# for, where checkpoints are kept. They are not dependencies of the pretrain stage (dvc.yaml) nor part of its checkpoint fingerprint, so
# changing one neither retrains nor discards a checkpoint; it takes effect the next time it trains.
PRETRAIN_RUNTIME_KEYS = ("knn_every", "knn_k", "knn_temperature", "log_every_steps", "dist_timeout_seconds",
                         "checkpoint_dir", "log_with")


WeightDecay = Annotated[Float, at.Ge(0.0)]


class ProbeSearch(Section):
    """The linear probe settings the linear_eval stage tries, every combination, on the validation split."""

    epochs: Axis(Epochs)
    """probe epochs the linear_eval stage tries; with `.lr` and `.weight_decay`, every combination is trained on
    the train split minus validation and scored on validation, and the best (the first listed on a tie) is
    scored on the test split once
    """
    lr: Axis(Positive)
    """probe learning rates the linear_eval stage tries (every combination with `.epochs` and `.weight_decay`)"""
    weight_decay: Axis(WeightDecay)
    """probe weight decays the linear_eval stage tries (every combination with `.epochs` and `.lr`)"""


class LinearEvalParams(Section):
    # The fixed probe, where no choice is made: the ablation points (lr, batch, weight decay) and
    # finetune's linear baseline. The linear_eval stage chooses from `search` on the validation split.
    epochs: Epochs
    """epochs of the **fixed** linear probe (Adam, cosine lr, standardised features) where no choice is made:
    finetune's linear baseline (the ablation points take `ablation.linear_eval_epochs`)
    """
    lr: Positive
    """lr of the fixed linear probe: finetune's linear baseline and the ablation points"""
    batch_size: Annotated[Int, at.Ge(1)]
    """probe batch, everywhere"""
    weight_decay: WeightDecay
    """weight decay of the fixed linear probe: finetune's linear baseline and the ablation points"""
    knn_k: Annotated[Int, at.Ge(1)]
    """neighbours of the weighted kNN (cosine, votes weighted by exp(sim/T))"""
    knn_temperature: Positive
    """T of the weighted kNN"""
    val_fraction: Annotated[Float, at.Gt(0.0), at.Le(0.5)]  # of each class of the labelled train split
    """of each class of the labelled train split, held out (seeded by `seed`, class-balanced, at least one image
    per class left to train on) as the validation split the linear_eval stage chooses its probe on
    """
    search: ProbeSearch


class FinetuneParams(Section):
    """The paper's semi-supervised evaluation (Section 6, Table 7), scaled down: per label fraction, the
    whole network fine-tuned vs the same network from scratch vs a linear probe, on the same labels."""

    label_fractions: Grid(Fraction)  # one DVC stage each: finetune@<fraction>
    """one `finetune@<fraction>` stage each; `[]` turns fine-tuning off"""
    steps: Annotated[Int, at.Ge(1)]  # optimizer steps per run, the same at every fraction
    """optimizer steps per run (fine-tuned and from scratch alike), the same at every fraction"""
    batch_size: Annotated[Int, at.Ge(1)]
    """images per step (at most the labelled subset)"""
    lr: Positive
    """peak lr = lr x batch/256 (the paper's 0.05 x batch/256), cosine decay to 0, no warmup"""
    momentum: Prob
    """SGD with Nesterov momentum (the paper's fine-tuning optimiser)"""
    weight_decay: Annotated[Float, at.Ge(0.0)]
    """0 as in the paper (no regularisation)"""


class ReportParams(Section):
    view_pairs: Annotated[Int, at.Ge(1), at.Le(64)]
    """columns in the augmented-views figure"""
    experiments: Bool
    """add a section tabulating `dvc exp show` (what `simclr experiments` prints); off by default because it reads
    git/DVC state that is not a stage dependency
    """


class Params(Section):
    """The whole params.yaml. The knobs experiments sweep are top level; the rest is per stage."""

    temperature: Temperature
    """NT-Xent τ"""
    batch_size: BatchSize  # the GLOBAL batch, split across pretrain.num_processes
    """the **global** batch (N images, 2N views); a multiple of `pretrain.num_processes`"""
    head: Head
    """projection head g: identity, one linear layer, or (Linear-BN-ReLU) x (layers-1) + Linear"""
    augment: Augment
    """the augmentation policy ([The augmentation policy](#the-augmentation-policy))"""
    seed: Seed
    """model init, data order, augmentation draws, probes, the validation split, finetune's labelled subsets (not
    the ablation points: `ablation.seeds`)
    """
    data: DataParams
    model: ModelParams
    pretrain: PretrainParams
    linear_eval: LinearEvalParams
    finetune: FinetuneParams
    report: ReportParams
    ablation: AblationParams

    @model_validator(mode="after")
    def _batch_splits_over_processes(self):
        n, images = self.pretrain.num_processes, self.pretrain.train_images
        if self.batch_size % n:
            raise problem("batch_size", self.batch_size,
                           f"a multiple of pretrain.num_processes ({n}): it is the global batch")
        if images and self.batch_size > images:
            raise problem("batch_size", self.batch_size, f"at most pretrain.train_images ({images})")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data, `augment` as its resolved ops ([{op: options}, ...])."""
        return _plain(self)

    def training_config(self) -> dict[str, Any]:
        """Everything in params that determines pretraining's weights, resolved (a preset's ops,
        not its name): the pretrain stage's params in dvc.yaml and its checkpoint fingerprint."""
        return {key: _plain(value_at(self, key)) for key in training_param_keys()}

    def replace(self, **changes: Any) -> Params:
        """A copy with dotted keys changed (``replace(**{"pretrain.epochs": 3})``), validated again."""
        raw = self.to_dict()
        for key, value in changes.items():
            *parents, last = key.split(".")
            node = raw
            for part in parents:
                node = node[part]
            node[last] = _plain(value)  # resolved ops as to_dict() writes them
        return validate(raw)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, AugmentOp):
        return {value.name: _plain(value.options)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def dotted(d: Any, depth: int | None = None, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys, ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, values untouched;
    mappings below ``depth`` levels of keys, and empty ones inside, stay one value (``{}`` gives ``{}``)."""
    if isinstance(d, dict) and not d and not prefix:
        return {}
    if not isinstance(d, dict) or not d or depth == 0:
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(dotted(v, None if depth is None else depth - 1, key) if isinstance(v, dict) else {key: v})
    return out


def value_at(params: BaseModel, key: str) -> Any:
    for part in key.split("."):
        params = getattr(params, part)
    return params


@dataclass(frozen=True)
class SectionReads:
    """The keys of one params section that a consumer reads, declared once: the consumer reads the
    section only through :meth:`view`, and its dvc.yaml params come from :meth:`param_keys`, so the
    two cannot drift (a key it reads but does not depend on would be a stale result)."""

    section: str
    keys: tuple[str, ...]

    def view(self, params: Params) -> SimpleNamespace:
        part = getattr(params, self.section)
        return SimpleNamespace(**{k: getattr(part, k) for k in self.keys})

    def param_keys(self, leave: tuple[str, ...] = ()) -> list[str]:
        """The dotted params.yaml keys, less ``leave`` (keys the consumer sets itself)."""
        return [f"{self.section}.{k}" for k in self.keys if k not in leave]


def training_param_keys() -> list[str]:
    """The params.yaml keys that determine the pretrained weights: the pretrain stage's params."""
    top = ["seed", "temperature", "batch_size", "head", "augment", "model", "data.image_size", "data.pretrain_on"]
    return top + [f"pretrain.{k}" for k in PretrainParams.model_fields if k not in PRETRAIN_RUNTIME_KEYS]


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def validate(raw: Any) -> Params:
    """Turn the parsed YAML document into :class:`Params` or raise :class:`ParamsError`."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml: the document is {type(raw).__name__}; expected a mapping")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(error_line(Params, exc)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params.yaml: {path} does not exist; run from the project root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ParamsError(f"params.yaml: {path} is not valid YAML ({first})") from None
    if raw is None:
        raise ParamsError(f"params.yaml: {path} is empty; it must hold every param "
                          f"(`git checkout {path}` restores the shipped one)")
    return validate(raw)

