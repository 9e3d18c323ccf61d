"""Command-line flags made from config dataclasses, so a default exists once: in the dataclass the
library uses (the idea of TRL's ``HfArgumentParser`` over ``RewardConfig``, kept to what the verbs need).

A verb lists the fields it exposes (:class:`Flag` for a different flag name, a parser or a help text);
each flag takes the field's type, default and, for ``Literal`` fields, its choices; a boolean field
that defaults to True becomes ``--no-NAME``. A number's range is its :class:`Flag` ``type``, one of the
checked types below (``positive_int``, ``fraction`` ...; a float flag is at least finite), so argparse
refuses ``--limit 0`` itself. :func:`values` reads them back as keyword arguments.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence


# ---------------------------------------------------------------- checked numbers
# argparse ``type=`` helpers: a value out of range is refused by argparse itself ("argument --limit:
# must be a positive integer, got 0"), before anything is loaded.

def _checked(kind: type, ok: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
non_negative_float = _checked(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
finite_float = _checked(float, math.isfinite, "a finite number")
fraction = _checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
share = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
open_fraction = _checked(float, lambda v: 0 < v < 1, "a number in (0, 1)")
probability = _checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
ratio = _checked(float, lambda v: math.isfinite(v) and v >= 1, "a ratio >= 1")
port = _checked(int, lambda v: 0 <= v <= 65535, "a port number in 0..65535")


@dataclass(frozen=True)
class Flag:
    field: str
    flag: str | None = None  # default: --field-name (--no-field-name for a field defaulting to True)
    help: str = ""
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    show_default: bool = True


def _base_type(hint: Any) -> tuple[Any, tuple | None]:
    """(scalar type, Literal choices) of a field's annotation; ``X | None`` counts as X."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        values = typing.get_args(hint)
        return type(values[0]), values
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            return _base_type(inner[0])
    return hint, None


def field_default(cls: type, name: str) -> Any:
    f = {x.name: x for x in dataclasses.fields(cls)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    raise ValueError(f"{cls.__name__}.{name} has no default")


def add_flags(parser: Any, cls: type, flags: Sequence[str | Flag]) -> None:
    """Add one flag per named field of dataclass ``cls`` to ``parser`` (a parser or an argument group)."""
    hints = typing.get_type_hints(cls)
    for item in flags:
        spec = Flag(item) if isinstance(item, str) else item
        default = field_default(cls, spec.field)
        scalar, choices = _base_type(hints[spec.field])
        kwargs: dict[str, Any] = {"dest": spec.field, "default": default}
        if scalar is bool and choices is None:
            name = spec.flag or ("--no-" if default else "--") + spec.field.replace("_", "-")
            kwargs["action"] = "store_false" if default else "store_true"
            text = spec.help
        else:
            name = spec.flag or "--" + spec.field.replace("_", "-")
            kwargs["type"] = spec.type or (finite_float if scalar is float else scalar if scalar in (int, str) else str)
            if choices is not None:
                kwargs["choices"] = list(choices)
            metavar = spec.metavar or {int: "N", float: "X"}.get(scalar) if choices is None else None
            if metavar:
                kwargs["metavar"] = metavar
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            text = spec.help
            if spec.show_default and default not in (None, "", ()) and "default" not in text:
                text = f"{text} (default {shown})" if text else f"default {shown}"
        kwargs["help"] = text or None
        parser.add_argument(name, **kwargs)


def values(cls: type, args: argparse.Namespace, flags: Sequence[str | Flag] | None = None) -> dict[str, Any]:
    """The fields of ``cls`` that ``args`` holds (those in ``flags``, or every field of ``cls``)."""
    names = [f if isinstance(f, str) else f.field for f in flags] if flags is not None else [f.name for f in dataclasses.fields(cls)]
    return {n: getattr(args, n) for n in names if hasattr(args, n)}
