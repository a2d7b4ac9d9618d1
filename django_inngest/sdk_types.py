"""Small value types of inngest-py's public API: ``ParallelMode``, ``JSON``, ``SendEventsResult``.

They carry inngest-py 0.5.19's names and values so that ported code keeps working; see
``docs/porting-notes.md`` for where each comes from and what the engine does with it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

#: A JSON value, as inngest-py's ``JSON`` alias (``_internal/types.py``). Like theirs it is not
#: recursive: mappings and sequences hold ``object``, which keeps TypedDicts assignable to it.
JSON: TypeAlias = bool | int | float | str | Mapping[str, object] | Sequence[object] | None


class ParallelMode(enum.Enum):
    """How ``ctx.group.parallel`` schedules its branches (inngest-py ``server_lib/consts.py``).

    ``WAIT`` (the default): each round, every branch runs to its next new step; those steps run
    concurrently, and the next round starts only when all of them have ended.

    ``RACE``: a branch goes on to its next step as soon as its own previous step has ended,
    without waiting for the other branches' steps. ``parallel`` still returns every branch's
    result, in order, once all branches have finished: "race" is about scheduling, not about
    returning the first result (unlike the TypeScript SDK's ``group.parallel`` with
    ``Promise.race``).
    """

    RACE = "race"
    WAIT = "wait"


@dataclass
class SendEventsResult:
    """What ``after_send_events`` middleware hooks receive (inngest-py ``client_lib/models.py``).

    ``ids`` are the IDs of the events that were stored; ``error`` is set when sending failed.
    """

    error: str | None = None
    ids: list[str] = field(default_factory=list)
