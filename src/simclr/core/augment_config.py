"""The ``augment`` param declared: each op's options with the paper's ranges and defaults (Chen et
al. 2020, Appendix A; :mod:`simclr.core.augment` implements the ops), the named presets, the ops of
the paper's augmentation ablation (Figure 5), and the resolution of a preset or a mapping into the
ops that train (:class:`AugmentOp`), which is what the fingerprint and the report see.
No torch here: the ``check_params`` stage imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import annotated_types as at
from pydantic import AfterValidator, PlainValidator, Strict, ValidationError

from simclr.core.validation import (
    Described,
    Float,
    Fraction,
    Prob,
    Section,
    check_value,
    describe_error,
    interval,
    problem,
)


class CropOptions(Section):
    scale: interval(1e-3, 1.0) = (0.08, 1.0)
    ratio: interval(0.1, 10.0) = (3 / 4, 4 / 3)


class FlipOptions(Section):
    p: Prob = 0.5


class ColorOptions(Section):
    strength: Annotated[Float, at.Ge(0.0), at.Le(10.0)] = 1.0
    p: Prob = 0.8


class GrayscaleOptions(Section):
    p: Prob = 0.2


class BlurOptions(Section):
    p: Prob = 0.5
    sigma: interval(1e-3, 100.0) = (0.1, 2.0)
    kernel_fraction: Fraction = 0.1


# The paper's Figure 5 ablation ops; the paper gives no parameters (see simclr.core.augment).
class CutoutOptions(Section):
    p: Prob = 1.0
    size: Fraction = 0.5


class NoiseOptions(Section):
    p: Prob = 1.0
    sigma: interval(0.0, 1.0) = (0.05, 0.15)


class ApplyOptions(Section):
    p: Prob = 1.0


# An op's defaults are the paper's settings, not a second copy of params.yaml's values: a
# mapping may leave an option out, as the presets below do.
AUGMENT_OPS: dict[str, type[Section]] = {
    "crop": CropOptions, "flip": FlipOptions, "color": ColorOptions, "grayscale": GrayscaleOptions,
    "blur": BlurOptions, "cutout": CutoutOptions, "noise": NoiseOptions, "sobel": ApplyOptions,
    "rotate": ApplyOptions,
}

AUGMENT_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # ImageNet policy of the paper: crop+flip, colour distortion s=1, blur.
    "simclr": {"crop": {}, "flip": {}, "color": {"strength": 1.0}, "grayscale": {}, "blur": {}},
    # CIFAR policy of the paper (Appendix B.9): colour strength 0.5 and no blur.
    "simclr-cifar": {"crop": {}, "flip": {}, "color": {"strength": 0.5}, "grayscale": {}},
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


@dataclass(frozen=True)
class AugmentOp:
    """One op of the policy, every option filled in (what simclr.core.augment.AugmentPolicy runs)."""

    name: str
    options: dict[str, Any]


def _resolve_augment(spec: Any) -> tuple[AugmentOp, ...]:
    """A preset name, or an ordered mapping op -> options (null/{} = the paper's defaults); also
    the resolved list [{op: options}, ...] that :meth:`Params.to_dict` writes."""
    if isinstance(spec, list) and all(isinstance(op, dict) and len(op) == 1 for op in spec):
        names = [name for op in spec for name in op]
        if len(set(names)) != len(names):
            raise problem("", names, "each op once")
        spec = {name: options for op in spec for name, options in op.items()}  # as to_dict() writes it
    ops_text = ", ".join(AUGMENT_OPS)
    if isinstance(spec, str):
        if spec not in AUGMENT_PRESETS:
            raise problem("", spec, f"a preset ({', '.join(AUGMENT_PRESETS)}) or a mapping of ops ({ops_text})")
        spec = AUGMENT_PRESETS[spec]
    if not isinstance(spec, dict):
        raise problem("", spec, f"a preset name or a mapping of ops ({ops_text})")
    ops = []
    for name, options in spec.items():
        if name not in AUGMENT_OPS:
            raise problem("", name, f"ops from {ops_text}")
        model = AUGMENT_OPS[name]
        try:
            resolved = model.model_validate({} if options is None else options)
        except ValidationError as exc:
            key, value, expected = describe_error(model, exc.errors()[0], name)
            raise problem(key, value, expected) from None
        ops.append(AugmentOp(name, resolved.model_dump()))
    return tuple(ops)


Augment = Annotated[tuple[AugmentOp, ...], PlainValidator(_resolve_augment),
                    Described(f"a preset ({', '.join(AUGMENT_PRESETS)}) or a mapping of ops ({', '.join(AUGMENT_OPS)})")]


def parse_augment(spec: Any) -> tuple[AugmentOp, ...]:
    """``augment`` as written (preset or mapping) -> its ops, or ParamsError."""
    return check_value("augment", Augment, spec)


def _augment_pair(v: str) -> str:
    """`op` (the op alone) or `op1+op2` (op1 then op2), ops from FIGURE5_OPS."""
    ops = v.split("+")
    if len(ops) > 2 or any(op not in FIGURE5_OPS for op in ops):
        raise problem("", v, "an op or op1+op2 with ops from " + ", ".join(FIGURE5_OPS))
    if len(ops) == 2 and ops[0] == ops[1]:
        raise problem("", v, f"two different ops (write `{ops[0]}` for the op alone)")
    return v


AugmentPair = Annotated[str, Strict(), AfterValidator(_augment_pair),
                        Described("an op or op1+op2 with ops from " + ", ".join(FIGURE5_OPS))]


def augment_pair_ops(pair: str) -> tuple[AugmentOp, ...]:
    """The augment ops one branch gets at an augmentation-ablation point."""
    spec: dict[str, Any] = {}
    for op in pair.split("+"):
        spec.update(FIGURE5_OPS[op])
    return _resolve_augment(spec)


def describe_ops(ops: tuple[AugmentOp, ...]) -> str:
    return ", ".join(op.name for op in ops) or "no ops"
