"""``Context``: what a handler receives, with inngest-py's field names."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django_inngest.definitions import EventValue

if TYPE_CHECKING:
    from django_inngest.engine.steps import Group, Step


class FunctionLogger(logging.LoggerAdapter[logging.Logger]):
    """A standard logger that tags records with run and function IDs and stays silent while
    memoized steps are replayed, so each line is logged once per run, not once per replay."""

    def __init__(
        self, logger: logging.Logger, extra: dict[str, Any], replaying: Callable[[], bool]
    ):
        super().__init__(logger, extra)
        self._replaying = replaying

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self._replaying():
            return
        super().log(level, msg, *args, **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


@dataclass
class Context:
    """Passed to ``def handler(ctx: Context)``; the fields of inngest-py's ``Context``."""

    attempt: int
    event: EventValue
    events: list[EventValue]
    group: Group
    logger: FunctionLogger
    run_id: str
    step: Step
    function_id: str = ""
    #: inngest-py 0.5.19's queue job and request IDs; always None here (no HTTP request).
    job_id: str | None = None
    request_id: str | None = None
    _is_cancelled: Callable[[], bool] = field(default=lambda: False, repr=False)

    def is_cancelled(self) -> bool:
        """Beyond Inngest: True once the run was cancelled, so a long step can stop early.

        Inngest never interrupts a running step; this lets a step cooperate. The step's result
        is dropped either way once the run is cancelled.
        """
        return self._is_cancelled()
