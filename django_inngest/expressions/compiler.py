"""Parsing, validating, compiling (cached) and evaluating expressions."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import (
    CELEvalError,
    Phase1Transpiler,
    Phase2Transpiler,
    Transpiler,
    TranspilerTree,
)

from django_inngest.exceptions import ExpressionError
from django_inngest.expressions.semantics import (
    _CACHE_SIZE,
    _FUNCTIONS,
    _MACROS,
    _WRAPPERS,
    MISSING,
    ROOT_VARIABLES,
    _dot,
    _has,
    _path,
    _Scope,
)

logger = logging.getLogger("django_inngest.expressions")


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


def _python(value: Any) -> Any:
    """A CEL result as plain Python (JSON-like) data."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.BytesType):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, celtypes.ListType):
        return [_python(item) for item in value]
    if isinstance(value, celtypes.MapType):
        return {str(_python(k)): _python(v) for k, v in value.items()}
    if value is None or isinstance(value, celtypes.NullType):
        return None
    return value


class NoValue(Exception):
    """A value expression failed or reached a missing field (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def value_of(expression: str, *, event: Mapping[str, Any]) -> Any:
    """Evaluate a value expression over ``event`` (a flow-control key, ``priority.run``).
    Returns plain Python data; raises ``NoValue`` when it errs or reaches a missing field, and
    ``ExpressionError`` when it does not compile."""
    try:
        value = _run(expression, event, MISSING)
    except ExpressionError:
        raise
    except Exception as exc:
        raise NoValue(f"{type(exc).__name__}: {exc}") from None
    if value is MISSING:
        raise NoValue("it reached a field the event does not have")
    if isinstance(value, CELEvalError):
        raise NoValue(str(value.args[0] if value.args else value))
    return _python(value)
