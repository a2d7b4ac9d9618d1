"""Interpolation (Inngest's residual.go) and the equality predicates the listener index uses."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from celpy import celtypes
from celpy.evaluation import (
    CELEvalError,
    celstr,
)

from django_inngest.exceptions import ExpressionError
from django_inngest.expressions.compiler import _free_names, _parse, _program, _run, _unwrap
from django_inngest.expressions.semantics import _BOOLS, _WRAPPERS, MISSING

# --- Interpolation (Inngest's residual.go) -------------------------------------------------

_OPERATORS = {
    "relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
    "relation_eq": "==", "relation_ne": "!=", "relation_in": "in", "addition_add": "+",
    "addition_sub": "-", "multiplication_mul": "*", "multiplication_div": "/",
    "multiplication_mod": "%",
}  # fmt: skip
_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _source(node: Any, child: Callable[[Any], str]) -> str:
    """Print a parse tree as CEL, rendering each sub-tree with ``child``."""
    kids = node.children
    data = node.data
    if data in _WRAPPERS and len(kids) == 1:
        return child(kids[0])
    if data == "expr":
        return f"{child(kids[0])} ? {child(kids[1])} : {child(kids[2])}"
    if data in ("conditionalor", "conditionaland"):
        return f"{child(kids[0])} {'||' if data == 'conditionalor' else '&&'} {child(kids[1])}"
    if data in ("relation", "addition", "multiplication"):
        return f"{child(kids[0].children[0])} {_OPERATORS[kids[0].data]} {child(kids[1])}"
    if data == "unary":
        operand = child(kids[1])
        return ("!" if kids[0].data == "unary_not" else "- ") + operand
    if data == "member_dot":
        return f"{child(kids[0])}.{kids[1].value}"
    if data in ("member_dot_arg", "dot_ident_arg", "ident_arg"):
        prefix = (
            f"{child(kids[0])}." if data == "member_dot_arg" else "." * (data == "dot_ident_arg")
        )
        name, args = (kids[1], kids[2:]) if data == "member_dot_arg" else (kids[0], kids[1:])
        return f"{prefix}{name.value}({child(args[0]) if args else ''})"
    if data == "member_index":
        return f"{child(kids[0])}[{child(kids[1])}]"
    if data == "member_object":
        return f"{child(kids[0])}{{{child(kids[1]) if len(kids) == 2 else ''}}}"
    if data in ("ident", "dot_ident", "literal"):
        return ("." if data == "dot_ident" else "") + kids[0].value
    if data in ("paren_expr", "list_lit", "map_lit"):
        brackets = {"paren_expr": "()", "list_lit": "[]", "map_lit": "{}"}[data]
        return f"{brackets[0]}{child(kids[0]) if kids else ''}{brackets[1]}"
    if data == "exprlist":
        return ", ".join(child(k) for k in kids)
    if data == "fieldinits":
        return ", ".join(f"{kids[i].value}: {child(kids[i + 1])}" for i in range(0, len(kids), 2))
    if data == "mapinits":
        return ", ".join(f"{child(kids[i])}: {child(kids[i + 1])}" for i in range(0, len(kids), 2))
    raise ValueError(f"unsupported syntax {data!r}")  # pragma: no cover - grammar is closed


def _print(node: Any) -> str:
    return _source(node, _print)


def _literal(value: Any) -> str:
    """CEL source for a value; every value an event can hold has one."""
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, _BOOLS):
        return "true" if value else "false"
    if isinstance(value, celtypes.UintType):
        return f"{int(value)}u"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value)) if math.isfinite(value) else f'double("{float(value)}")'
    if isinstance(value, str):
        escaped = (
            _STRING_ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c)
            for c in value
        )
        return '"' + "".join(escaped) + '"'
    if isinstance(value, bytes):
        return 'b"' + "".join(f"\\x{byte:02x}" for byte in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, datetime):
        return f'timestamp("{value.isoformat()}")'
    if isinstance(value, timedelta):
        return f'duration("{value.total_seconds()}s")'
    raise ValueError(f"no CEL literal for {type(value).__name__}")


_NOT_EXPRESSIONS = frozenset({"literal", "exprlist", "fieldinits", "mapinits"})


class _Known(NamedTuple):
    value: Any


def _residual(node: Any, event: Mapping[str, Any], memo: dict[int, Any]) -> _Known | str:
    """Fold what depends only on ``event`` to literals; keep the rest as source."""
    node = _unwrap(node)
    if node.data not in _NOT_EXPRESSIONS and _free_names(node, memo).keys() <= {"event"}:
        try:
            value = _run(_print(node), event, MISSING)
            if not isinstance(value, CELEvalError):
                _literal(value)  # must be printable
                return _Known(value)
        except Exception:
            pass  # leave it to fail (to false) at evaluation time; still fold its operands

    kids = node.children
    if node.data in ("conditionaland", "conditionalor") and len(kids) == 2:
        is_or = node.data == "conditionalor"
        left, right = _residual(kids[0], event, memo), _residual(kids[1], event, memo)
        for side, other in ((left, right), (right, left)):
            if isinstance(side, _Known) and isinstance(side.value, celtypes.BoolType):
                # true || x is true, false && x is false; false || x and true && x are x
                return _Known(side.value) if bool(side.value) is is_or else other
        return f"{_lit(left)} {'||' if is_or else '&&'} {_lit(right)}"
    if node.data == "expr" and len(kids) == 3:
        cond = _residual(kids[0], event, memo)
        if isinstance(cond, _Known) and cond.value is MISSING:
            return cond  # an unknown condition makes the whole conditional unknown
        if isinstance(cond, _Known) and isinstance(cond.value, celtypes.BoolType):
            return _residual(kids[1] if cond.value else kids[2], event, memo)
    if node.data == "paren_expr":
        inner = _residual(kids[0], event, memo)
        return inner if isinstance(inner, _Known) else f"({inner})"
    return _source(node, lambda child: _lit(_residual(child, event, memo)))


def _lit(result: _Known | str) -> str:
    return _literal(result.value) if isinstance(result, _Known) else result


def interpolate(expression: str, event: Mapping[str, Any]) -> str:
    """Inngest's ``Interpolate``: substitute the trigger's values for every ``event.`` reference
    (a missing field becomes ``null``) and fold what is then known. The result refers only to
    ``async``; it is ``"true"`` or ``"false"`` when nothing is left to decide."""
    _program(expression)  # raises ExpressionError
    try:
        result = _residual(_parse(expression), event, {})
    except RecursionError:
        raise ExpressionError(expression, "the expression is nested too deeply") from None
    if isinstance(result, _Known) and not isinstance(result.value, celtypes.BoolType):
        return "false"  # a known non-boolean result evaluates to false
    return _lit(result)


# --- Index predicates -----------------------------------------------------------------------


def _conjuncts(node: Any) -> Iterator[Any]:
    node = _unwrap(node)
    if node.data == "paren_expr":
        yield from _conjuncts(node.children[0])
    elif node.data == "conditionaland" and len(node.children) == 2:
        yield from _conjuncts(node.children[0])
        yield from _conjuncts(node.children[1])
    else:
        yield node


def _async_path(node: Any) -> str | None:
    names: list[str] = []
    node = _unwrap(node)
    while node.data == "member_dot":
        names.append(node.children[1].value)
        node = _unwrap(node.children[0])
    if node.data == "ident" and node.children[0].value == "async" and names:
        return ".".join(reversed(names))
    return None


def _literal_value(node: Any) -> tuple[Any] | None:
    node = _unwrap(node)
    if node.data != "literal":
        return None
    token = node.children[0]
    if token.type in ("STRING_LIT", "MLSTRING_LIT"):
        return (str(celstr(token)),)
    if token.type in ("INT_LIT", "UINT_LIT"):
        digits = token.value.rstrip("uU")
        return (int(digits, 16 if "x" in digits.lower() else 10),)
    if token.type == "FLOAT_LIT":
        return (float(token.value),)
    if token.type == "BOOL_LIT":
        return (token.value == "true",)
    return None  # null and bytes are not indexed


def equality_predicate(expression: str) -> tuple[str, Any] | None:
    """One top-level ``async.<path> == <literal>`` conjunct of an interpolated expression, as
    ``(path, value)``; strings are preferred. None when there is none (or it does not parse)."""
    try:
        conjuncts = list(_conjuncts(_parse(expression)))
    except (ExpressionError, RecursionError):
        return None
    found: tuple[str, Any] | None = None
    for conjunct in conjuncts:
        kids = conjunct.children
        if conjunct.data != "relation" or kids[0].data != "relation_eq":
            continue
        left, right = kids[0].children[0], kids[1]
        for path_node, value_node in ((left, right), (right, left)):
            path, value = _async_path(path_node), _literal_value(value_node)
            if path is not None and value is not None:
                if isinstance(value[0], str):
                    return (path, value[0])
                found = found or (path, value[0])
    return found
