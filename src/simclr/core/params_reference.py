"""The params reference: every key of params.yaml with what it allows and its meaning, generated from
the declarations in :mod:`simclr.core.config` (docs/params.md holds it; `simclr params-reference --write`)."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from simclr.core.config import Params
from simclr.core.validation import Described, expected, unwrap

REFERENCE_START = ("<!-- params reference: generated from src/simclr/core/config.py and the sections it imports by "
                   "`simclr params-reference --write` -->")
REFERENCE_END = "<!-- end of the generated params reference -->"


def reference_rows(model: type[BaseModel] = None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, what it allows, its description) for every documented field, in declaration order;
    a mapping's own row (when it has a docstring) comes before its keys'."""
    rows = []
    for name, field in (model or Params).model_fields.items():
        key = prefix + name
        if field.description:
            allowed = expected(field.annotation, list(field.metadata))
            base, _ = unwrap(field.annotation)
            described = any(isinstance(m, Described) for m in [*unwrap(field.annotation)[1], *field.metadata])
            if typing.get_origin(base) is tuple and not described:  # a grid or a list: what each value may be
                allowed += ", each " + expected(typing.get_args(base)[0])
            rows.append((key, allowed, " ".join(field.description.split())))
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            rows += reference_rows(field.annotation, key + ".")
    return rows


def params_reference() -> str:
    """The params table of docs/params.md, between its markers."""
    lines = [REFERENCE_START, "", "| key | allowed | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | {allowed.replace('|', '/')} | {text} |" for key, allowed, text in reference_rows()]
    return "\n".join([*lines, "", REFERENCE_END])
