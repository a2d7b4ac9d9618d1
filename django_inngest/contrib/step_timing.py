"""``StepTimingMiddleware``: logs how long each step took, once per executed step.

Add it to a client or a function::

    from django_inngest.contrib.step_timing import StepTimingMiddleware

    inngest_client = Inngest(app_id="shop", middleware=[StepTimingMiddleware])

Each ``step.run`` (and ``step.send_event``) that actually executes logs one INFO record on the
``django_inngest.contrib.step_timing`` logger::

    step 'charge-card' took 182.4 ms (ok) run_id=01J... function_id=shop-checkout

The record also carries ``step_id``, ``run_id``, ``function_id``, ``duration_ms`` and ``outcome``
(``ok``, ``error`` for an attempt that will be retried, ``failed`` for the last one) as
attributes, for structured log handlers. Memoized steps replayed from the database are never
logged: timing starts at ``before_execution`` (replay is over) and ends at ``after_execution``,
and a segment (see ``middleware.manager``) executes at most one new step between the two.
Sleeps, waits and invokes are not logged: they are pauses, not work.

It is a ``MiddlewareSync``, so sync and async functions can both use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django_inngest.middleware import MiddlewareSync, Opcode, StepMemos, TransformOutputResult

if TYPE_CHECKING:
    from django_inngest.client import Inngest
    from django_inngest.engine.context import BaseContext as Context
    from django_inngest.function import Function

logger = logging.getLogger(__name__)

_OUTCOMES = {Opcode.STEP_RUN: "ok", Opcode.STEP_ERROR: "error", Opcode.STEP_FAILED: "failed"}


class StepTimingMiddleware(MiddlewareSync):
    """Logs each executed step's name, run ID, function ID and duration in milliseconds."""

    #: The clock, in seconds; a class attribute so that tests can substitute a fake one.
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, client: Inngest, raw_request: object) -> None:
        super().__init__(client, raw_request)
        self._run_id = ""
        self._function_id = ""
        self._started: float | None = None
        self._elapsed: float | None = None

    def transform_input(self, ctx: Context, function: Function, steps: StepMemos) -> None:
        self._run_id = ctx.run_id
        self._function_id = function.id

    def before_execution(self) -> None:
        self._started = self.clock()

    def after_execution(self) -> None:
        if self._started is not None:
            self._elapsed = self.clock() - self._started

    def transform_output(self, result: TransformOutputResult) -> None:
        step = result.step
        if step is None or self._elapsed is None or step.op not in _OUTCOMES:
            return
        duration_ms = round(self._elapsed * 1000, 1)
        outcome = _OUTCOMES[step.op]
        if step.op is Opcode.STEP_RUN and result.error is not None:
            outcome = "failed"  # a middleware turned the result into the step's final error
        logger.info(
            "step %r took %.1f ms (%s) run_id=%s function_id=%s",
            step.id,
            duration_ms,
            outcome,
            self._run_id,
            self._function_id,
            extra={
                "step_id": step.id,
                "run_id": self._run_id,
                "function_id": self._function_id,
                "duration_ms": duration_ms,
                "outcome": outcome,
            },
        )
