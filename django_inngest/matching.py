"""Hash keys that pre-select the listeners an incoming event could match.

A listener's interpolated expression (``async`` only) may contain a top-level conjunct
``async.<path> == <literal>``; its key is ``listener_key(path, literal)``. An incoming event
yields the key of every scalar leaf it has, so one indexed ``IN`` query finds the listeners whose
predicate it satisfies. The key is only a pre-filter: candidates are still fully evaluated, and a
listener with no key (``None``) must always be a candidate.

Keys follow CEL equality as ``expressions.evaluate`` applies it: ``1`` and ``1.0`` share a key,
``true`` and ``1`` do not, and ``"1"`` differs from ``1``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from django_inngest import expressions

# Leaves at most this many segments deep (``data.a.b.c``) always get a key, whatever ``limit``.
ALWAYS_INDEXED_DEPTH = 4


def _canonical(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass, but true != 1 in CEL
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # CEL compares ints and doubles by value: 1 == 1.0
    return json.dumps(value)


def listener_key(path: str, value: Any) -> str:
    """A stable 32-hex-digit key for "the value at ``path`` equals ``value``"."""
    digest = hashlib.sha1(f"{path}\x00{_canonical(value)}".encode(), usedforsecurity=False)
    return digest.hexdigest()[:32]


def key_for_expression(expression: str) -> str | None:
    """The key of an interpolated expression's equality predicate; None if it has none."""
    predicate = expressions.equality_predicate(expression)
    return None if predicate is None else listener_key(*predicate)


def event_keys(event: Mapping[str, Any], *, limit: int = 1000) -> list[str]:
    """The keys of every scalar (string, number, bool) leaf of ``event``, e.g. ``data.importId``.

    Lists are not descended into (list items cannot be indexed). Leaves are visited breadth-first
    in key order, so shallow paths come first. Leaves up to ``ALWAYS_INDEXED_DEPTH`` segments deep
    are always included; deeper ones only while fewer than ``limit`` keys have been produced. A
    listener whose path is deeper than that, on an event with more than ``limit`` leaves, can
    therefore be missed by the index; that is the only way a matching listener is missed.
    """
    keys: list[str] = []
    level: list[tuple[str, Mapping[str, Any]]] = [("", event)]
    depth = 0
    while level:
        depth += 1
        next_level: list[tuple[str, Mapping[str, Any]]] = []
        for prefix, mapping in level:
            for name, value in mapping.items():
                if not isinstance(name, str):
                    continue
                path = f"{prefix}{name}"
                if isinstance(value, Mapping):
                    next_level.append((f"{path}.", value))
                elif isinstance(value, (str, int, float)) and (  # bool is an int; None is skipped
                    depth <= ALWAYS_INDEXED_DEPTH or len(keys) < limit
                ):
                    keys.append(listener_key(path, value))
        if depth >= ALWAYS_INDEXED_DEPTH and len(keys) >= limit:
            break  # nothing deeper can be added
        level = next_level
    return keys
