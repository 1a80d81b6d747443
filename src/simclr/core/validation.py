"""The machinery behind params.yaml's declaration (simclr.core.config): value types whose
constraints are written once, and pydantic's errors turned into one line derived from them::

    params.yaml: KEY = VALUE is not allowed; expected WHAT THE FIELD ALLOWS
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from simclr.core.errors import SimCLRError


class ParamsError(SimCLRError, ValueError):
    """A params.yaml key or value is wrong; the message names key, value and what is allowed."""


def problem(sub: str, value: Any, expected: str) -> PydanticCustomError:
    """A cross-field or custom check's failure: `sub` is the key below the validated field."""
    return PydanticCustomError("params_problem", "{expected}", {"sub": sub, "value": value, "expected": expected})


@dataclass(frozen=True)
class Described:
    """What a custom type allows, in words, for its error messages (``expected`` reads it)."""

    text: str


@dataclass(frozen=True)
class Interval:
    """A [low, high] pair with lo <= low <= high <= hi."""

    lo: float
    hi: float

    def __call__(self, v: Any) -> tuple[float, float]:
        numbers = isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        if not numbers or not self.lo <= v[0] <= v[1] <= self.hi:
            raise problem("", v, self.text())
        return float(v[0]), float(v[1])

    def text(self) -> str:
        return f"[low, high] with {self.lo} <= low <= high <= {self.hi}"


def interval(lo: float, hi: float):
    check = Interval(lo, hi)
    return Annotated[tuple[float, float], BeforeValidator(check), check]


Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict(), at.MinLen(1)]
Prob = Annotated[Float, at.Ge(0.0), at.Le(1.0)]
Positive = Annotated[Float, at.Gt(0.0)]
Fraction = Annotated[Float, at.Gt(0.0), at.Le(1.0)]
Epochs = Annotated[Int, at.Ge(1)]
Seed = Annotated[Int, at.Ge(0), at.Le(2**31 - 1)]

class Section(BaseModel):
    # a field's docstring (the string right below it) is its description: the params reference's text
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _distinct(values: tuple) -> tuple:
    if len(set(map(str, values))) != len(values):
        raise problem("", list(values), "a list without repeated values (each value names one stage)")
    return values


def Grid(item):  # a type, read like one
    """A list of distinct values, each one DVC stage named after it; [] turns the grid off."""
    return Annotated[tuple[item, ...], AfterValidator(_distinct)]


def Axis(item):  # a type, read like one
    """A non-empty list of distinct values: every point runs at each (seeds, budgets, probe choices)."""
    return Annotated[tuple[item, ...], at.MinLen(1), AfterValidator(_distinct)]


def unwrap(tp: Any) -> tuple[Any, list]:
    """An Annotated type's base type and its metadata, outermost last."""
    meta: list = []
    while typing.get_origin(tp) is Annotated:
        tp, *more = typing.get_args(tp)
        meta = [*more, *meta]
    return tp, meta


def expected(tp: Any, meta: list = ()) -> str:
    """What a declared type allows, in words (the `expected ...` of an error)."""
    tp, inner = unwrap(tp)
    meta = [*inner, *meta]
    for m in meta:
        if isinstance(m, Interval):
            return m.text()
        if isinstance(m, Described):
            return m.text
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin is tuple:
        if any(isinstance(m, at.MinLen) and m.min_length for m in meta):
            return "a non-empty list"
        return "a list (may be empty)"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a mapping of " + ", ".join(tp.model_fields)
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a non-empty string"
    if tp in (int, float):
        kind = "an integer" if tp is int else "a finite number"
        lo = next((m for m in meta if isinstance(m, (at.Ge, at.Gt))), None)
        hi = next((m.le for m in meta if isinstance(m, at.Le)), None)
        if lo is not None and hi is not None:
            return f"{kind} in {'(' if isinstance(lo, at.Gt) else '['}{_bound(lo)}, {hi}]"
        if lo is not None:
            return f"{kind} {'>' if isinstance(lo, at.Gt) else '>='} {_bound(lo)}"
        return kind
    return str(tp)


def _bound(m: at.Ge | at.Gt) -> Any:
    return m.gt if isinstance(m, at.Gt) else m.ge


def describe_error(model: type[BaseModel], error: dict, prefix: str = "") -> tuple[str, Any, str]:
    """(key, value, expected) for pydantic's first error, from the declarations along its loc."""
    loc = error["loc"]
    tp: Any = model
    meta: list = []
    parent_name, parent = prefix, model  # the mapping the key sits in (for an unknown key)
    key = prefix
    for part in loc:
        base, _ = unwrap(tp)
        if isinstance(part, int) and typing.get_origin(base) is tuple:
            key += f"[{part}]"
            tp, meta = typing.get_args(base)[0], []
            continue
        parent_name, parent = key, base
        key = f"{key}.{part}" if key else str(part)  # a non-string key (YAML `1:` or `yes:`) too
        field = base.model_fields.get(part) if isinstance(base, type) and issubclass(base, BaseModel) else None
        tp, meta = (field.annotation, list(field.metadata)) if field else (None, [])
    kind = error["type"]
    if kind == "params_problem":
        ctx = error["ctx"]
        sub = ctx["sub"]
        key = f"{key}.{sub}" if key and sub and not sub.startswith("[") else f"{key}{sub}" if key else sub
        return key, ctx["value"], ctx["expected"]
    if kind == "extra_forbidden" or (tp is None and isinstance(parent, type) and issubclass(parent, BaseModel)):
        keys = ", ".join(parent.model_fields)
        allowed = f"keys of {parent_name}: {keys}" if parent_name else f"top-level keys {keys}"
        return key, error["input"], allowed
    if kind == "missing":
        return key, None, expected(tp, meta)
    return key, error["input"], expected(tp, meta)


def error_line(model: Any, exc: ValidationError, prefix: str = "", source: str = "params.yaml") -> str:
    # A wrong key or value first: a typo (`temprature`) also leaves its key missing, and the typo
    # is what the user needs to see.
    errors = exc.errors()
    error = next((e for e in errors if e["type"] != "missing"), errors[0])
    key, value, allowed = describe_error(model, error, prefix)
    where = f"{source}: " if source else ""
    if error["type"] == "missing":
        return f"{where}{key} is missing; expected {allowed}"
    return f"{where}{key} = {value!r} is not allowed; expected {allowed}"


def check_value(key: str, tp: Any, value: Any, source: str = "params.yaml") -> Any:
    """One value against a declared type (the augment ops; with ``source=""`` a value given on the
    command line, whose error names no file)."""
    try:
        return TypeAdapter(tp).validate_python(value)
    except ValidationError as exc:
        raise ParamsError(error_line(tp, exc, prefix=key, source=source)) from None
