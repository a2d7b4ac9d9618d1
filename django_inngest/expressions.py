"""Inngest-compatible CEL expressions: validation, evaluation, interpolation and index predicates.

This is the only module that imports ``celpy``. celpy parses the expression and its transpiler
turns it into Python; we swap in operator implementations with Inngest's semantics
(``pkg/expressions/unknown.go``), because stock CEL raises on every missing field:

- a missing field ("unknown") is ``MISSING``: ``== null`` is true, ``== value`` false, ``!=`` the
  opposite; ``<``/``<=`` are true and ``>``/``>=`` false when it is the left operand (the reverse
  when it is the right one); ``size()`` is 0; ``+`` yields the other operand; other calls are false;
- an explicit ``null`` compared or combined with an int, double or string acts as its zero value;
- ints and doubles compare with each other; values of different types are unequal;
- ``&&``/``||`` on non-booleans use JS-like truthiness; a final result that is not a boolean is false.

Variables are ``event`` (the trigger) and ``async`` (the incoming event). They are passed as plain
dicts: each ``event.a.b`` path is walked in Python and only the value it reaches goes through
``celpy.json_to_cel``, so evaluation does not pay to convert the whole event.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import (
    CELEvalError,
    Phase1Transpiler,
    Phase2Transpiler,
    Transpiler,
    TranspilerTree,
    base_functions,
    celstr,
)

from django_inngest.exceptions import ExpressionError

logger = logging.getLogger(__name__)

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


# --- Parsing and compiling ------------------------------------------------------------------

_parser_lock = threading.Lock()
_parser_instance: lark.Lark | None = None


def _parser() -> lark.Lark:
    """Our own copy of celpy's Lark parser, built for the transpiler's tree class.

    celpy keeps one class-level parser whose tree class is fixed by whoever builds it first; a
    private instance cannot be broken by, or break, any other celpy user in the process.
    """
    global _parser_instance
    with _parser_lock:
        if _parser_instance is None:
            saved, celpy.CELParser.CEL_PARSER = celpy.CELParser.CEL_PARSER, None
            try:
                celpy.CELParser(tree_class=TranspilerTree)
                _parser_instance = celpy.CELParser.CEL_PARSER
            finally:
                celpy.CELParser.CEL_PARSER = saved
        assert _parser_instance is not None
        return _parser_instance


def _parse_fresh(expression: str) -> TranspilerTree:
    try:
        return cast(TranspilerTree, _parser().parse(expression))
    except lark.exceptions.UnexpectedInput as exc:
        if isinstance(exc, lark.exceptions.UnexpectedCharacters):
            what = repr(exc.char)
        elif isinstance(exc, lark.exceptions.UnexpectedToken) and exc.token.type != "$END":
            what = repr(exc.token.value)
        else:
            what = "end of expression"
        context = exc.get_context(expression).rstrip("\n") if exc.line > 0 else expression
        message = f"syntax error: unexpected {what} at line {exc.line}, column {exc.column}"
        raise ExpressionError(expression, f"{message}\n{context}") from None
    except lark.exceptions.LarkError as exc:
        raise ExpressionError(expression, f"syntax error: {exc}") from None


# Shared read-only trees for the analyses below; compiling parses afresh because it annotates.
_parse = functools.lru_cache(maxsize=_CACHE_SIZE)(_parse_fresh)


def _unwrap(node: Any) -> Any:
    while (
        isinstance(node, lark.Tree)
        and node.data in _WRAPPERS
        and len(node.children) == 1
        and isinstance(node.children[0], lark.Tree)
    ):
        node = node.children[0]
    return node


class _Phase1(Phase1Transpiler):
    """celpy's transpiler, emitting calls to our operators, paths and ``has``."""

    def __init__(self, facade: Transpiler) -> None:
        super().__init__(facade)
        self.unknown_functions: list[str] = []
        self.paths: dict[int, tuple[str, tuple[str, ...]]] = {}
        self.constants: list[Any] = []

    def func_name(self, label: str) -> str:
        if label in _FUNCTIONS:
            return f"_fns[{label!r}]"
        self.unknown_functions.append(label)
        return super().func_name(label)

    def literal(self, tree: TranspilerTree) -> None:
        # Build each literal once per program rather than on every evaluation.
        super().literal(tree)
        self.constants.append(eval(tree.transpiled, {"celpy": celpy}))  # celpy's own literal code
        tree.transpiled = f"_k[{len(self.constants) - 1}]"

    def ident(self, tree: TranspilerTree) -> None:
        name = cast(lark.Token, tree.children[0]).value
        code = f"activation.get({name!r})"  # celpy's `activation.async` is a Python syntax error
        if name in ROOT_VARIABLES:
            self.paths[id(tree)] = (code, ())
            code = f"_path({code}, ())"
        tree.transpiled = code

    def member_dot(self, tree: TranspilerTree) -> None:
        member, token = cast(tuple[TranspilerTree, lark.Token], tree.children)
        root = self.paths.get(id(_unwrap(member)))
        if root is None:
            tree.transpiled = f"_dot({member.transpiled}, {token.value!r})"
        else:
            names = (*root[1], token.value)
            self.paths[id(tree)] = (root[0], names)
            tree.transpiled = f"_path({root[0]}, {names!r})"

    def dot_ident(self, tree: TranspilerTree) -> None:
        self.ident(tree)  # `.event` is `event` resolved from the root scope: the same for us

    def member_dot_arg(self, tree: TranspilerTree) -> None:
        kids = tree.children
        if cast(lark.Token, kids[1]).value in _MACROS and len(kids) == 3:
            first: Any = cast(TranspilerTree, kids[2]).children[0]
            bind = _unwrap(first)
            name = bind.children[0].value if bind.data == "ident" else None
            if name is None or name in ROOT_VARIABLES:
                raise ValueError("a macro's variable must be a name other than event and async")
            first.transpiled = f"activation.{name}"  # celpy reads the name back by splitting on "."
        super().member_dot_arg(tree)

    def ident_arg(self, tree: TranspilerTree) -> None:
        if cast(lark.Token, tree.children[0]).value != "has":
            super().ident_arg(tree)
            return
        args: Any = cast(Any, tree.children[1]).children if len(tree.children) == 2 else []
        target = _unwrap(args[0]) if len(args) == 1 else None
        if target is None or target.data != "member_dot":
            raise ValueError("has() needs a field selection such as has(event.data.x)")
        tree.transpiled = f"_has({target.children[0].transpiled}, {target.children[1].value!r})"


_GLOBALS = {
    "celpy": celpy,
    "CELEvalError": CELEvalError,
    "_fns": _FUNCTIONS,
    "_path": _path,
    "_dot": _dot,
    "_has": _has,
}


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _program(expression: str) -> Callable[[_Scope], Any]:
    tree = _parse_fresh(expression)
    try:
        facade = Transpiler(ast=tree, activation=celpy.Activation())
        phase1 = _Phase1(facade)
        phase1.visit(tree)
        if phase1.unknown_functions:
            raise ValueError(f"unknown function {phase1.unknown_functions[0]!r}")
        phase2 = Phase2Transpiler(facade)
        phase2.visit(tree)
        *body, last = phase2.statements(tree)
        if not last.startswith("CEL = "):
            raise ValueError("unexpected transpiler output")  # pragma: no cover - celpy pinned
        # celpy ends with `CEL = result(base_activation, ...)` and execs per call in one shared
        # module namespace (not thread-safe). Define a function once instead, in our namespace.
        source = "\n".join([*body, "def _main(base_activation):", "    return " + last[6:]])
        namespace = {**_GLOBALS, "_k": phase1.constants}
        exec(compile(source, f"<cel {expression[:60]!r}>", "exec"), namespace)
    except Exception as exc:
        raise ExpressionError(expression, f"cannot compile: {exc}") from None
    return cast(Callable[[_Scope], Any], namespace["_main"])


def _free_names(node: Any, memo: dict[int, dict[str, lark.Token]]) -> dict[str, lark.Token]:
    """Variables a sub-tree refers to (macro bind variables excluded), with a token for each."""
    if id(node) in memo:
        return memo[id(node)]
    names: dict[str, lark.Token] = {}
    children = node.children
    if node.data in ("ident", "dot_ident"):
        names[children[0].value] = children[0]
    elif node.data == "member_dot_arg" and children[1].value in _MACROS and len(children) == 3:
        bind, *body = children[2].children
        bound = _unwrap(bind)
        bound_name = bound.children[0].value if bound.data == "ident" else None
        for part in body:
            names.update((k, v) for k, v in _free_names(part, memo).items() if k != bound_name)
        names.update(_free_names(children[0], memo))
    else:
        for child in children:
            if isinstance(child, lark.Tree):
                names.update(_free_names(child, memo))
    memo[id(node)] = names
    return names


def validate(expression: str, *, variables: tuple[str, ...] = ROOT_VARIABLES) -> None:
    """Raise ``ExpressionError`` if the expression does not parse and compile, or refers to a
    variable outside ``variables`` (bulk cancellation allows only ``event``)."""
    try:
        names = _free_names(_parse(expression), {})
    except RecursionError:
        raise ExpressionError(expression, "the expression is nested too deeply") from None
    for name, token in names.items():
        if name not in variables:
            raise ExpressionError(
                expression,
                f"unknown variable {name!r} at line {token.line}, column {token.column}; "
                f"allowed: {', '.join(variables)}",
            )
    _program(expression)


def _run(expression: str, event: Any, async_: Any) -> Any:
    """The raw result, or a ``CELEvalError``. Raises ``ExpressionError`` for bad syntax."""
    program = _program(expression)
    return program(_Scope({"event": event, "async": async_}))


def evaluate(
    expression: str,
    *,
    event: Mapping[str, Any] | None = None,
    async_: Mapping[str, Any] | None = None,
) -> bool:
    """Evaluate with Inngest's semantics. Never raises: problems are logged and give False."""
    try:
        value = _run(
            expression, MISSING if event is None else event, MISSING if async_ is None else async_
        )
    except ExpressionError as exc:
        logger.warning("Expression %r is invalid: %s", expression, exc.message)
        return False
    except Exception:
        logger.warning("Expression %r failed to evaluate", expression, exc_info=True)
        return False
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if value is not MISSING:  # an unknown result is quietly false, as in Inngest
        reason = value.args[0] if isinstance(value, CELEvalError) else f"non-boolean {value!r}"
        logger.warning("Expression %r evaluated to an error: %s", expression, reason)
    return False


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


def match_expression(match: str) -> str:
    """TypeScript's ``match`` shorthand: ``"data.id"`` -> ``event.data.id == async.data.id``."""
    return f"event.{match} == async.{match}"
