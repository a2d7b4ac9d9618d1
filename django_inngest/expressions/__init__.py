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

from django_inngest.expressions.compiler import NoValue, _program, evaluate, validate, value_of
from django_inngest.expressions.residual import equality_predicate, interpolate
from django_inngest.expressions.semantics import MISSING, ROOT_VARIABLES

__all__ = [
    "MISSING",
    "ROOT_VARIABLES",
    "NoValue",
    "_program",
    "equality_predicate",
    "evaluate",
    "interpolate",
    "validate",
    "value_of",
]
