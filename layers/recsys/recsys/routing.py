"""Routes, and the parameters and body they take, read from the handlers' annotations.

A route is a plain function; its parameters say where each value comes from and what it may be::

    @app.get("/users/{user_id}/history")
    def history(user_id: UserId, k: HistoryK = 20) -> History: ...

where ``UserId = Annotated[int, Path(ge=0, le=MAX_ID, description=...)]``. The request's text is
checked against the type and the `Spec` (`check`), and a failure names where and what, as
`InvalidRequestError`. A body parameter is a NamedTuple marked `Body()`; its fields are checked the
same way, from JSON instead of text. `scripts/openapi.py` writes the OpenAPI document from the
same annotations, so the document and the checks cannot disagree.

This is what serving needs of a web framework and no more: the imports are the standard library's,
so a cold start pays for no validation library (docs/BENCHMARKS.md, "Cold start"). The value
types are NamedTuples, as in the rest of the cold path: a dataclass costs about 1 ms to define
(it compiles its methods at import), a NamedTuple a tenth of that.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from recsys.errors import InvalidRequestError


class Spec(NamedTuple):
    """What a value may be beyond its type: bounds for numbers, a length for text and lists."""

    ge: int | None = None
    le: int | None = None
    max_length: int | None = None
    description: str | None = None
    pattern: str | None = None  # a regular expression the whole text must match


class Path(Spec):
    """A segment of the route's path, ``{name}``."""

    __slots__ = ()


class Query(Spec):
    """A query-string parameter; the last value wins when one is repeated."""

    __slots__ = ()


class Body(Spec):
    """The JSON body, checked against the NamedTuple the parameter is annotated with."""

    __slots__ = ()


class Invalid(InvalidRequestError):
    """A value that is not what its parameter or field says: where it was (`loc`) and what was wrong."""

    def __init__(self, loc: Sequence[str | int], problem: str) -> None:
        self.loc, self.problem = tuple(loc), problem
        super().__init__(f"{describe(self.loc)}: {problem}")


def describe(loc: Sequence[str | int]) -> str:
    """``query parameter k``, ``path segment user_id``, ``body parameter liked.0`` or ``body``."""
    where, *rest = [str(p) for p in loc] or ["request"]
    if not rest:
        return where
    return f"{'path segment' if where == 'path' else where + ' parameter'} {'.'.join(rest)}"


def unwrap(tp: Any) -> tuple[Any, Spec | None]:
    """The type inside ``Annotated[...]``, and its `Spec` if it has one."""
    if get_origin(tp) is Annotated:
        inner, *extras = get_args(tp)
        return inner, next((e for e in extras if isinstance(e, Spec)), None)
    return tp, None


def optional(tp: Any) -> tuple[Any, bool]:
    """``X`` of ``X | None`` and True; anything else and False."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


_INTEGER = re.compile(r"[-+]?\d{1,20}")
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on", "t", "y"}), frozenset({"false", "0", "no", "off", "f", "n"})


def check(value: Any, tp: Any, loc: Sequence[str | int], text: bool = False) -> Any:
    """`value` as type `tp`, or `Invalid` naming `loc`. The types: int, bool, str, a Literal of
    strings, ``tuple[X, ...]`` (from a JSON array), ``X | None``, each optionally ``Annotated`` with
    a `Spec`.

    With `text`, `value` is the text of a path segment or query parameter and is parsed; otherwise
    it is a parsed JSON value, taken as it is: an integer field admits a JSON integer or a whole
    number written as a float (JSON Schema's integer), never a string or a boolean.
    """
    tp, spec = unwrap(tp)
    tp, nullable = optional(tp)
    if value is None and nullable:
        return None
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices or not isinstance(value, str):
            raise Invalid(loc, "Input should be " + " or ".join(repr(c) for c in choices))
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise Invalid(loc, "Input should be a valid boolean")
    if tp is int:
        value = _integer(value, loc, text)
        if spec is not None and spec.ge is not None and value < spec.ge:
            raise Invalid(loc, f"Input should be greater than or equal to {spec.ge}")
        if spec is not None and spec.le is not None and value > spec.le:
            raise Invalid(loc, f"Input should be less than or equal to {spec.le}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise Invalid(loc, "Input should be a valid number")
        if spec is not None and spec.ge is not None and value < spec.ge:
            raise Invalid(loc, f"Input should be greater than or equal to {spec.ge}")
        if spec is not None and spec.le is not None and value > spec.le:
            raise Invalid(loc, f"Input should be less than or equal to {spec.le}")
        return float(value)
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):  # a NamedTuple: an object
        return check_object(value, tp, loc)
    if tp is str:
        if not isinstance(value, str):
            raise Invalid(loc, "Input should be a valid string")
        if spec is not None and spec.max_length is not None and len(value) > spec.max_length:
            raise Invalid(loc, f"String should have at most {spec.max_length} characters")
        if spec is not None and spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            raise Invalid(loc, f"String should match pattern '{spec.pattern}'")
        return value
    if origin is tuple:  # tuple[X, ...]: a JSON array, kept immutable
        if not isinstance(value, list):
            raise Invalid(loc, "Input should be a valid list")
        if spec is not None and spec.max_length is not None and len(value) > spec.max_length:
            raise Invalid(loc, f"List should have at most {spec.max_length} items, not {len(value)}")
        item = get_args(tp)[0]
        return tuple(check(v, item, [*loc, i]) for i, v in enumerate(value))
    raise TypeError(f"{describe(loc)}: no check for {tp!r}")  # a route declared with a type this module lacks


def _integer(value: Any, loc: Sequence[str | int], text: bool) -> int:
    if text:
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise Invalid(loc, "Input should be a valid integer")


def check_object(value: Any, cls: Any, loc: Sequence[str | int]) -> Any:
    """An instance of NamedTuple `cls` from a JSON object: every field checked (`check`), the
    missing ones at their defaults, a missing required field or an unknown key refused."""
    if not isinstance(value, dict):
        raise Invalid(loc, "Input should be a JSON object")
    hints = _field_types(cls)
    for key in value:
        if key not in cls._fields:
            raise Invalid([*loc, key], "Extra inputs are not permitted")
    values = {}
    for name in cls._fields:
        if name in value:
            values[name] = check(value[name], hints[name], [*loc, name])
        elif name not in cls._field_defaults:
            raise Invalid([*loc, name], "Field required")
    return cls(**values)


@functools.cache
def _field_types(cls: Any) -> dict[str, Any]:
    """The annotated types of a body's fields, read once per class, not once per request."""
    return typing.get_type_hints(cls, include_extras=True)


class Parameter(NamedTuple):
    name: str
    where: type[Spec]  # Path, Query or Body
    type: Any  # as annotated, Annotated[...] included
    default: Any  # inspect.Parameter.empty when required


class Route:
    """One operation: its method, path template, function, and what the OpenAPI document says of it."""

    def __init__(
        self, method: str, path: str, function: Callable[..., Any], tags: tuple[str, ...], responses: dict[int, Any]
    ) -> None:
        self.method, self.path, self.function, self.tags, self.responses = method, path, function, tags, responses
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
        self.pattern = re.compile(f"{regex}/?")
        self._parameters: tuple[Parameter, ...] | None = None

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """The function's parameters, read from its annotations on first use."""
        if self._parameters is None:
            hints = typing.get_type_hints(self.function, include_extras=True)
            found = []
            for name, p in inspect.signature(self.function).parameters.items():
                _, spec = unwrap(hints[name])
                if spec is None:
                    raise TypeError(f"{self.function.__name__}({name}): annotate it with Path, Query or Body")
                found.append(Parameter(name, type(spec), hints[name], p.default))
            self._parameters = tuple(found)
        return self._parameters

    def arguments(self, match: re.Match[str], event: dict[str, Any], body: Callable[[], Any]) -> dict[str, Any]:
        """The function's keyword arguments from the request; `Invalid` for the first bad one."""
        query = _query(event)
        out: dict[str, Any] = {}
        for p in self.parameters:
            if p.where is Path:
                out[p.name] = check(match.group(p.name), p.type, ["path", p.name], text=True)
            elif p.where is Query:
                if p.name in query:
                    out[p.name] = check(query[p.name], p.type, ["query", p.name], text=True)
                elif p.default is inspect.Parameter.empty:
                    raise Invalid(["query", p.name], "Field required")
            else:
                out[p.name] = check_object(body(), unwrap(p.type)[0], ["body"])
        return out


def _query(event: dict[str, Any]) -> dict[str, str]:
    """The query string's values, the last of each repeated name, as API Gateway's single-value map has it."""
    multi = event.get("multiValueQueryStringParameters") or {}
    single = event.get("queryStringParameters") or {}
    return {**single, **{k: v[-1] for k, v in multi.items() if isinstance(v, list) and v}}
