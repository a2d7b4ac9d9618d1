"""Finding events (and the runs they started) by a value inside the event payload.

The syntax, shared by the admin's search boxes and ``GET /v1/events?data.<path>=<value>``::

    importId=abc                 data.importId == "abc"
    data.importId:abc            the same (``data.`` and ``:`` are optional spellings)
    user.id=42                   data.user.id == 42 or == "42"
    importId=abc plan=pro        every term must match

A value that reads as a JSON number, ``true``, ``false`` or ``null`` matches both that literal
and the same text as a string (senders are not consistent about ``42`` vs ``"42"``); anything
else is a string. Write ``"42"`` (with quotes) to match the string only.

On PostgreSQL each term is a containment test, ``data @> '{"importId": "abc"}'``, which the
``jsonb_path_ops`` GIN index on the event data answers without a scan (migration
``0002_console_search_and_dashboard_indexes``). Elsewhere it is a ``JSON_EXTRACT`` comparison.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, JSONField, Q, Value
from django.db.models.fields.json import KeyTransform

#: A path is dot-separated keys: letters, digits, ``_`` and ``-`` (no dots or quotes in keys).
_KEY = r"[A-Za-z0-9_\-$]+"
_TERM = re.compile(rf"^(?:data\.)?(?P<path>{_KEY}(?:\.{_KEY})*)\s*[=:]\s*(?P<value>.*)$", re.S)
MAX_TERMS = 5
MAX_DEPTH = 8


class PayloadSearchError(ValueError):
    """The search text is not valid payload search syntax; the message says why."""


@dataclass(frozen=True)
class PayloadTerm:
    path: tuple[str, ...]
    #: Each value the term accepts (a literal and its string form, or one string).
    values: tuple[Any, ...]


def looks_like_payload_search(text: str) -> bool:
    """True for ``key=value`` / ``data.key:value`` terms, as opposed to an ID to look up."""
    return bool(re.match(rf"^\s*(?:data\.)?{_KEY}(?:\.{_KEY})*\s*[=:]", text))


def _split(text: str) -> list[str]:
    # Terms are separated by whitespace, except inside a double-quoted value.
    # An unclosed quote runs to the end, so that parse_value can say what is wrong.
    return [m.group(0) for m in re.finditer(r'(?:[^\s"]+|"(?:[^"\\]|\\.)*"?)+', text)]


def parse_value(raw: str) -> tuple[Any, ...]:
    raw = raw.strip()
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError:
            raise PayloadSearchError(f"bad quoted value {raw}: close the quotes") from None
        return (value,)
    try:
        literal = json.loads(raw)
    except ValueError:
        return (raw,)
    if isinstance(literal, bool | int | float) or literal is None:
        return (literal, raw)
    return (raw,)


def parse_term(text: str) -> PayloadTerm:
    match = _TERM.match(text.strip())
    if not match:
        raise PayloadSearchError(
            f"{text!r} is not a payload search term: write key=value or data.key:value"
        )
    path = tuple(match.group("path").split("."))
    if len(path) > MAX_DEPTH:
        raise PayloadSearchError(f"{match.group('path')}: at most {MAX_DEPTH} levels deep")
    value = match.group("value")
    if not value.strip():
        raise PayloadSearchError(f"{match.group('path')}: give a value after = or :")
    return PayloadTerm(path, parse_value(value))


def parse_payload_search(text: str) -> list[PayloadTerm]:
    parts = _split(text)
    if not parts:
        raise PayloadSearchError("empty payload search")
    if len(parts) > MAX_TERMS:
        raise PayloadSearchError(f"at most {MAX_TERMS} payload search terms")
    return [parse_term(part) for part in parts]


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    nested: Any = value
    for key in reversed(path):
        nested = {key: nested}
    return dict(nested)


def payload_q(terms: list[PayloadTerm], *, field: str = "data") -> Q:
    """A filter for a model whose ``field`` is the event data (``event__data`` on runs)."""
    result = Q()
    for term in terms:
        either = Q()
        for value in term.values:
            if connection.vendor == "postgresql":
                # Containment (@>), the operator the jsonb_path_ops GIN index serves.
                either |= Q(**{f"{field}__contains": _nest(term.path, value)})
            else:
                either |= Q(_key_lookup(field, term.path, value))
        result &= either
    return result


def _key_lookup(field: str, path: tuple[str, ...], value: Any) -> Any:
    # Built from expressions, not a "data__key" string, so that a key named like a lookup
    # ("contains", "isnull") is still a key.
    expression: Any = F(field)
    for key in path:
        expression = KeyTransform(key, expression)
    if value is None:
        return expression.get_lookup("isnull")(expression, True)
    # The value as a typed JSON expression: a bare Python value would not be JSON-encoded,
    # because the lookup is built before its left side knows its field.
    return expression.get_lookup("exact")(expression, Value(value, output_field=JSONField()))
