"""Which registered functions an event triggers: name (exact or wildcard) then the CEL expression."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from django_inngest import expressions
from django_inngest.definitions import TriggerEvent
from django_inngest.function import Function
from django_inngest.registry import registry


class _TriggerIndex:
    """Event name → (function, trigger) pairs, rebuilt whenever the registry changes."""

    def __init__(self) -> None:
        self._version: tuple[int, int] = (-1, -1)
        self._exact: dict[str, list[tuple[Function, TriggerEvent]]] = {}
        self._wildcards: list[tuple[Function, TriggerEvent]] = []
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        # Code and SDK apps' functions. Read before the build: a change during it rebuilds.
        version = registry.trigger_version()
        if self._version == version:
            return
        with self._lock:
            exact: dict[str, list[tuple[Function, TriggerEvent]]] = defaultdict(list)
            wildcards = []
            for function in registry.triggerable():
                for trigger in function.triggers:
                    if trigger.is_wildcard:
                        wildcards.append((function, trigger))
                    else:
                        exact[trigger.event].append((function, trigger))
            self._exact, self._wildcards = dict(exact), wildcards
            self._version = version

    def candidates(self, name: str) -> list[tuple[Function, TriggerEvent]]:
        self._refresh()
        found = list(self._exact.get(name, ()))
        found.extend((f, t) for f, t in self._wildcards if t.matches_name(name))
        return found


_index = _TriggerIndex()


def functions_triggered_by(payload: dict[str, Any]) -> list[Function]:
    """Each function at most once, even when several of its triggers match."""
    matched: dict[str, Function] = {}
    for function, trigger in _index.candidates(payload["name"]):
        if function.id in matched:
            continue
        if trigger.expression and not expressions.evaluate(trigger.expression, event=payload):
            continue
        matched[function.id] = function
    return list(matched.values())
