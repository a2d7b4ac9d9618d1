"""A ``wait_for_event`` expression is checked when the handler calls the step, once per
distinct expression in a process: a mistake fails the run at once, naming the step, instead of
surfacing as a retried error from deep inside the listener index."""

from __future__ import annotations

import functools

from django_inngest import expressions
from django_inngest.engine.control import WaitOp
from django_inngest.exceptions import ExpressionError

#: ``if_exp`` may refer to the run's trigger (``event``) and to the awaited event (``async``).
VARIABLES = ("event", "async")


@functools.lru_cache(maxsize=1024)
def _problem(expression: str) -> str | None:
    """Why the expression is invalid, or None; failures are cached as well as successes."""
    try:
        expressions.validate(expression, variables=VARIABLES)
    except ExpressionError as exc:
        return exc.message
    return None


def check(op: WaitOp) -> None:
    """Raise ``ExpressionError`` naming the step if its expression is not valid CEL over
    ``event`` and ``async``; ``retries`` treats it as non-retriable."""
    if not op.if_exp:
        return
    problem = _problem(op.if_exp)
    if problem is not None:
        raise ExpressionError(op.if_exp, f"wait_for_event step {op.name!r}: {problem}")
