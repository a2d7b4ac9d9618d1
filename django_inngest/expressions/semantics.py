"""Inngest's evaluation rules as operator implementations for celpy's transpiled code."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import (
    CELEvalError,
    base_functions,
)

ROOT_VARIABLES = ("event", "async")
_CACHE_SIZE = 10_000
_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one"})
# Grammar nodes that only wrap one child of a tighter-binding rule.
_WRAPPERS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
    | {"unary", "member", "primary"}
)
_TRUE, _FALSE = celtypes.BoolType(True), celtypes.BoolType(False)


class _Missing:
    """Inngest's "unknown": a field the event does not have. Distinct from an explicit null."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


# --- Operators with Inngest semantics -------------------------------------------------------


_BOOLS = (bool, celtypes.BoolType)


def _kind(value: Any) -> type:
    """The CEL type family: ints, uints and doubles share one, so they compare with each other."""
    if isinstance(value, _BOOLS):  # BoolType subclasses int; CEL keeps bools apart from numbers
        return bool
    for family in (int, float, str, bytes, list, dict, datetime, timedelta):
        if isinstance(value, family):
            return float if family is int else family
    return type(value)


def _num(value: Any) -> int | float:
    return int(value) if isinstance(value, int) else float(value)


def _zero_nulls(a: Any, b: Any) -> tuple[Any, Any]:
    """unknown.go ``ZeroValArgs``: a null next to an int, double or string is that type's zero."""
    if a is None or b is None:
        other = b if a is None else a
        if other is None or _kind(other) not in (float, str):
            raise TypeError("no such overload for null")
        zero: Any = type(other)(0) if _kind(other) is float else celtypes.StringType("")
        return (zero, b) if a is None else (a, zero)
    return a, b


def _errors_first(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An error value (from a short-circuit branch) propagates through every call."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        for arg in args:
            if isinstance(arg, CELEvalError):
                return arg
        return fn(*args)

    return call


def _unknown_is_false(fn: Callable[..., Any]) -> Callable[..., Any]:
    """unknown.go default: any call not special-cased returns false when an argument is unknown."""

    @_errors_first
    def call(*args: Any) -> Any:
        return _FALSE if any(arg is MISSING for arg in args) else fn(*args)

    return call


@_errors_first
def _eq(a: Any, b: Any) -> Any:
    if a is MISSING or b is MISSING:
        return celtypes.BoolType(a is None or b is None)  # even MISSING == MISSING is false
    if a is None or b is None:
        return celtypes.BoolType(a is b)
    if _kind(a) is not _kind(b):
        return _FALSE  # cel-go heterogeneous equality: different types are never equal
    if _kind(a) is float:
        return celtypes.BoolType(_num(a) == _num(b))
    try:
        return celtypes.BoolType(a == b)
    except TypeError:  # e.g. lists whose items differ in type
        return _FALSE


@_errors_first
def _ne(a: Any, b: Any) -> Any:
    if a is MISSING or b is MISSING:
        return celtypes.BoolType(a is not None and b is not None)
    return celtypes.BoolType(not _eq(a, b))


def _ordering(op: Callable[[Any, Any], bool], missing_left: bool) -> Callable[..., Any]:
    @_errors_first
    def compare(a: Any, b: Any) -> Any:
        if a is MISSING:  # "unknown is less than anything"
            return celtypes.BoolType(missing_left)
        if b is MISSING:
            return celtypes.BoolType(not missing_left)
        a, b = _zero_nulls(a, b)
        if _kind(a) is not _kind(b):
            raise TypeError("no such overload")
        if _kind(a) is float:
            return celtypes.BoolType(op(_num(a), _num(b)))
        return celtypes.BoolType(op(a, b))

    return compare


def _go_format(value: Any) -> str:
    """Go's ``%v``, which Inngest uses to concatenate a string with a number or bool."""
    if isinstance(value, _BOOLS):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(_num(value))


@_errors_first
def _add(a: Any, b: Any) -> Any:
    if a is MISSING or b is MISSING:
        other = b if a is MISSING else a
        return _FALSE if other is MISSING else other
    a, b = _zero_nulls(a, b)
    ka, kb = _kind(a), _kind(b)
    if ka is float and kb is float and type(a) is not type(b):
        return celtypes.DoubleType(float(a) + float(b))
    if ka is str and kb in (float, bool):
        return celtypes.StringType(a + _go_format(b))
    if kb is str and ka in (float, bool):
        return celtypes.StringType(_go_format(a) + b)
    result = operator.add(a, b)
    # str and list concatenation drop celpy's types (and with them methods like .contains()).
    if type(result) is str:
        return celtypes.StringType(result)
    return celtypes.ListType(result) if type(result) is list else result


def _arithmetic(op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    return _unknown_is_false(lambda a, b: op(*_zero_nulls(a, b)))


@_errors_first
def _size(value: Any) -> Any:
    return celtypes.IntType(0) if value is MISSING else base_functions["size"](value)


@_errors_first
def _index(container: Any, key: Any) -> Any:
    if container is MISSING or container is None:
        return MISSING
    if isinstance(container, dict):
        return dict.get(container, key, MISSING)  # bypass MapType.get, which raises
    if isinstance(container, list) and _kind(key) is float and float(key).is_integer():
        position = int(key)
        return container[position] if 0 <= position < len(container) else MISSING
    raise TypeError("no such overload for index")


def _truthy(value: Any) -> bool:
    """unknown.go ``isTruthy``: unknown, errors, null, false, "" and 0 are falsy."""
    if value is MISSING or value is None or isinstance(value, CELEvalError):
        return False
    return bool(value) if isinstance(value, (int, float, str)) else True


def _logical(is_or: bool) -> Callable[[Any, Any], Any]:
    cel_op = celtypes.logical_or if is_or else celtypes.logical_and

    def combine(a: Any, b: Any) -> Any:
        bools = [isinstance(v, celtypes.BoolType) for v in (a, b)]
        errors = [isinstance(v, CELEvalError) for v in (a, b)]
        if all(errors):
            return a
        if all(bools) or (any(bools) and any(errors)):
            return cel_op(a, b)  # CEL's commutative rules: `false && error` is false
        if is_or:
            return a if _truthy(a) else b
        return b if _truthy(a) else a

    return combine


def _conditional(cond: Any, when_true: Any, when_false: Any) -> Any:
    # Both branches arrive evaluated (errors as values); only the chosen one counts.
    if isinstance(cond, CELEvalError) or cond is MISSING:
        return cond
    if not isinstance(cond, celtypes.BoolType):
        raise TypeError("no such overload for ?:")
    return when_true if cond else when_false


def _path(root: Any, names: tuple[str, ...]) -> Any:
    """``event.a.b``: walk the raw dicts; a missing key or a non-map on the way is MISSING."""
    value = root
    for name in names:
        if not isinstance(value, Mapping):
            return MISSING  # includes MISSING and null: cel-go's error there acts as unknown
        value = value.get(name, MISSING)
    if type(value) is int and -(2**63) <= value < 2**63:
        # celpy's IntType() builds its range-checking wrapper on every call (~5 µs).
        return int.__new__(celtypes.IntType, value)
    return value if value is MISSING else celpy.json_to_cel(value)


def _dot(value: Any, name: str) -> Any:
    """Field selection on an already-converted value (list items bound by macros)."""
    if isinstance(value, CELEvalError):
        return value
    return dict.get(value, name, MISSING) if isinstance(value, dict) else MISSING


def _has(value: Any, name: str) -> Any:
    if isinstance(value, CELEvalError):
        return value
    return celtypes.BoolType(isinstance(value, Mapping) and name in value)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: _unknown_is_false(fn) for name, fn in base_functions.items()
}
_FUNCTIONS.update(
    {
        "_==_": _eq,
        "_!=_": _ne,
        "_<_": _ordering(operator.lt, True),
        "_<=_": _ordering(operator.le, True),
        "_>_": _ordering(operator.gt, False),
        "_>=_": _ordering(operator.ge, False),
        "_+_": _add,
        "_-_": _arithmetic(operator.sub),
        "_*_": _arithmetic(operator.mul),
        "_/_": _arithmetic(operator.truediv),
        "_%_": _arithmetic(operator.mod),
        "size": _size,
        "_[_]": _index,
        "_&&_": _logical(is_or=False),
        "_||_": _logical(is_or=True),
        "_?_:_": _conditional,
    }
)


class _Scope:
    """Variables for transpiled code. celpy's ``Activation`` costs ~6 µs per name lookup."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise NameError(name) from None  # celpy's result() turns this into an error value

    resolve_variable = get

    def nested_activation(self, annotations: Any = None, vars: Any = None) -> _Scope:
        return _Scope({**self.values, **(vars or {})})  # a macro's bind variable
