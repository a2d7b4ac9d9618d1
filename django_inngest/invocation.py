"""One worker's turn at a run: the memo table, the budget, cancellation checks and the commit
protocol for ``step.run``, ``group.parallel`` and ``step.send_event``.

Every new step's result is committed, under the run's row lock, before the handler continues;
if the run was cancelled (or our lease taken over) meanwhile, the result is dropped.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from django_inngest import expressions
from django_inngest.conf import settings
from django_inngest.exceptions import NonRetriableError, RetryAfterError, StepError
from django_inngest.function import Function
from django_inngest.leases import lease_keeper
from django_inngest.lifecycle import error_dict
from django_inngest.models import (
    Cancellation,
    CancelSource,
    FunctionRun,
    RunStatus,
    StepKind,
    StepRun,
    StepStatus,
    WaitKind,
)
from django_inngest.statements import insert_step_if_owner
from django_inngest.steps import Abandon, PlannedStep, Suspend, check_output

logger = logging.getLogger(__name__)
_REPLAYED = (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SLEEPING, StepStatus.WAITING)
WORKER_LOST = {"name": "WorkerLostError", "message": "the worker running this step stopped"}
MAX_PARALLEL_THREADS = 8


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: base·2^(attempt-1), capped, times 0.5 to 1.0."""
    base = float(settings.RETRY_BACKOFF_SECONDS)
    cap = float(settings.RETRY_BACKOFF_MAX_SECONDS)
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.0)


class Invocation:
    """One worker's turn at a run: the memo table, the budget and the commit protocol."""

    def __init__(self, run: FunctionRun, function: Function, owner: str, *, first: bool) -> None:
        self.run = run
        self.function = function
        self.owner = owner
        self.deadline = time.monotonic() + float(settings.INVOCATION_BUDGET_SECONDS)
        # A run claimed for the first time has no steps yet: skip the query.
        self.memos: dict[str, StepRun] = {} if first else {m.step_id: m for m in run.steps.all()}
        # Steps reached in an earlier invocation replay silently; a sleep or wait that is
        # being resolved now counts too, as Inngest memoizes it on wake.
        self._unconsumed = sum(1 for m in self.memos.values() if m.status in _REPLAYED)
        self._positions = len(self.memos)
        # The claim found whether the function has any bulk cancellation: if none, no query.
        self._cancellations: list[Cancellation] | None = (
            None if getattr(run, "has_bulk_cancellations", True) else []
        )
        self.progressed = False
        #: While ``group.parallel`` plans, new ``step.run`` calls are collected here, not run.
        self.planning: list[PlannedStep] | None = None
        self.trigger = run.event.as_payload()

    # -- replay bookkeeping ------------------------------------------------------------------
    @property
    def replaying(self) -> bool:
        return self._unconsumed > 0

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Silence the function logger and keep the replay count while parallel plans."""
        saved = self._unconsumed
        self._unconsumed = 1 << 30
        try:
            yield
        finally:
            self._unconsumed = saved

    def reach(self, memo: StepRun | None) -> None:
        """A pausing step was reached: resolving its memo replays; a new one ends the replay."""
        if memo is None:
            self.consume_memo_gap()
        else:
            self.consume_memo()

    def consume_memo_gap(self) -> None:
        # Reaching a step without a usable memo means replay is over; log lines are real again.
        self._unconsumed = 0

    def consume_memo(self) -> None:
        self._unconsumed = max(0, self._unconsumed - 1)

    def new_step(
        self, uid: str, name: str, kind: StepKind, status: StepStatus, **fields: Any
    ) -> StepRun:
        step = StepRun(
            run_id=self.run.run_id,
            step_id=uid,
            position=self._positions,
            kind=kind,
            status=status,
            started_at=timezone.now(),
            **fields,
        )
        self._positions += 1
        self.memos[uid] = step
        return step

    # -- cancellation and ownership -----------------------------------------------------------
    def is_cancelled(self) -> bool:
        status = (
            FunctionRun.objects.filter(pk=self.run.run_id).values_list("status", flat=True).first()
        )
        return status == RunStatus.CANCELLED or self._bulk_cancellation() is not None

    def _bulk_cancellation(self) -> Cancellation | None:
        """Inngest's lazy check: is this run inside an active bulk cancellation's window and `if`?"""
        if self._cancellations is None:
            created = self.run.created_at
            self._cancellations = list(
                Cancellation.objects.filter(
                    function__function_id=self.run.function_id, started_before__gte=created
                ).filter(Q(started_after__isnull=True) | Q(started_after__lte=created))
            )
        for cancellation in self._cancellations:
            if not cancellation.if_exp or expressions.evaluate(
                cancellation.if_exp, event=self.trigger
            ):
                return cancellation
        return None

    def before_step(self) -> None:
        """Before each new step: yield if over budget, stop if cancelled (in bulk or singly)."""
        cancellation = self._bulk_cancellation()
        if cancellation is not None:
            from django_inngest.cancellation import cancel_run

            cancel_run(
                self.run.run_id,
                source=CancelSource.BULK,
                reason=f"bulk cancellation {cancellation.id}",
                cancellation=cancellation,
            )
            raise Abandon()
        # Yield the worker once over budget, but only after progress, so a run always advances.
        if self.progressed and time.monotonic() > self.deadline:
            self.pause(timezone.now(), WaitKind.NONE, dispatch=True)

    def locked_run(self) -> FunctionRun:
        """Re-read and lock our run; raise Abandon if it was cancelled or taken over."""
        # Only the two columns that decide ownership are read: everything else on the row is
        # ours to change while we hold the lease.
        row = (
            FunctionRun.objects.select_for_update()
            .filter(pk=self.run.run_id)
            .values_list("status", "lease_owner")
            .first()
        )
        if row != (RunStatus.RUNNING, self.owner):
            raise Abandon()
        return self.run

    def pause(
        self,
        ready_at: datetime | None,
        wait_kind: WaitKind,
        *,
        dispatch: bool = False,
        step: StepRun | None = None,
        extra: Callable[[FunctionRun], None] | None = None,
    ) -> None:
        """Commit the pause (and the step row, if any), release the lease, raise Suspend."""
        with transaction.atomic():
            run = self.locked_run()
            if step is not None:
                step.save()
            if extra is not None:
                extra(run)
            run.ready_at = ready_at
            run.wait_kind = wait_kind
            run.lease_owner = ""
            run.lease_expires_at = None
            fields = ["ready_at", "wait_kind", "lease_owner", "lease_expires_at"]
            if dispatch:
                run.dispatched_at = timezone.now()
                fields.append("dispatched_at")
            run.save(update_fields=fields)
            if dispatch:
                from django_inngest.runs import dispatch_on_commit

                dispatch_on_commit([run.run_id])
        raise Suspend()

    # -- step.run -------------------------------------------------------------------------------
    def execute_step(
        self,
        uid: str,
        name: str,
        memo: StepRun | None,
        handler: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> Any:
        self.consume_memo_gap()
        now = timezone.now()
        if memo is not None and _worker_died_in(memo):
            # That attempt counts, so a step that always kills its worker ends in Failed.
            self._step_failed(
                memo, _charge_worker_lost(memo, now), retriable=True, retry_delay=None
            )
        if memo is not None and _retry_not_due(memo, now):
            self.pause(memo.wake_at, WaitKind.RETRY)
        self.before_step()
        step = self._start_attempt(
            memo or self.new_step(uid, name, StepKind.RUN, StepStatus.RUNNING)
        )
        # The step row is written once, with its result. Only a step that outlives a third of
        # the lease is first recorded as Running (by the keeper), so that a worker killed
        # inside it is charged to that step; a short step's crash is charged to the run.
        with lease_keeper.watch(self.run.run_id, self.owner, on_long=step.save):
            ok, outcome = _call_step(handler, args)
        if not ok:
            assert isinstance(outcome, Exception)
            error, retriable, delay = self._failure_of(step, outcome)
            self._step_failed(step, error, retriable=retriable, retry_delay=delay)
        self._complete(step, outcome)
        # A cancel that committed while the step ran wins: the late result is dropped.
        if not save_step_if_owner(step, self.owner):
            raise Abandon()
        self.progressed = True
        return outcome

    @staticmethod
    def _start_attempt(step: StepRun) -> StepRun:
        step.status = StepStatus.RUNNING
        step.attempts += 1
        step.wake_at = None
        started = {"attempt": step.attempts, "started_at": timezone.now().isoformat()}
        step.attempt_log = [*step.attempt_log, started]
        return step

    @staticmethod
    def _complete(step: StepRun, output: Any) -> None:
        ended = timezone.now()
        step.status = StepStatus.COMPLETED
        step.output = output
        step.error = None
        step.ended_at = ended
        step.attempt_log[-1]["ended_at"] = ended.isoformat()

    @staticmethod
    def _failure_of(step: StepRun, exc: Exception) -> tuple[dict[str, Any], bool, float | None]:
        """Log the failed attempt; returns (error, retriable, retry_delay) for the step."""
        error = error_dict(exc)
        step.attempt_log[-1].update({"ended_at": timezone.now().isoformat(), "error": error})
        delay = exc.delay_seconds(timezone.now()) if isinstance(exc, RetryAfterError) else None
        return error, not isinstance(exc, NonRetriableError), delay

    # -- group.parallel -------------------------------------------------------------------------
    def execute_parallel(self, planned: list[PlannedStep]) -> None:
        """Run the planned new steps of parallel branches concurrently, then commit each.

        Each step's user code runs in its own thread (with its own database connection); the
        results are committed here, one transaction for the batch. Failed steps follow the
        same retry rules as sequential ones; a retry pauses the run until the earliest is due.
        """
        self.consume_memo_gap()
        now = timezone.now()
        wakes: list[datetime] = []
        attempts: list[tuple[StepRun, Callable[..., Any], tuple[Any, ...]]] = []
        if any(
            plan.memo is None or not (_worker_died_in(plan.memo) or _retry_not_due(plan.memo, now))
            for plan in planned
        ):
            # Yield or stop before any attempt is recorded as started: a branch saved as
            # Running and then left would later look like a worker that died inside it.
            self.before_step()
        with transaction.atomic():
            self.locked_run()
            for plan in planned:
                memo = plan.memo
                if memo is not None and _worker_died_in(memo):
                    wake = self._settle_failure(
                        memo, _charge_worker_lost(memo, now), retriable=True, retry_delay=None
                    )
                    memo.save()
                    wakes += [wake] if wake else []
                elif memo is not None and _retry_not_due(memo, now):
                    assert memo.wake_at is not None
                    wakes.append(memo.wake_at)
                else:
                    step = memo or self.new_step(
                        plan.uid, plan.name, StepKind.RUN, StepStatus.RUNNING
                    )
                    attempts.append((self._start_attempt(step), plan.handler, plan.args))
                    step.save()
        if attempts:
            with (
                lease_keeper.watch(self.run.run_id, self.owner),
                ThreadPoolExecutor(
                    max_workers=min(len(attempts), MAX_PARALLEL_THREADS),
                    thread_name_prefix="inngest-step",
                ) as pool,
            ):
                outcomes = list(
                    pool.map(lambda a: _call_step(a[1], a[2], own_connection=True), attempts)
                )
            with transaction.atomic():
                self.locked_run()  # dropped whole if the run was cancelled meanwhile
                for (step, _, _), (ok, outcome) in zip(attempts, outcomes, strict=True):
                    if ok:
                        self._complete(step, outcome)
                    else:
                        assert isinstance(outcome, Exception)
                        error, retriable, delay = self._failure_of(step, outcome)
                        wake = self._settle_failure(
                            step, error, retriable=retriable, retry_delay=delay
                        )
                        wakes += [wake] if wake else []
                    step.save()
            self.progressed = True
        if wakes:
            self.pause(min(wakes), WaitKind.RETRY)

    def _step_failed(
        self, step: StepRun, error: dict[str, Any], *, retriable: bool, retry_delay: float | None
    ) -> NoReturn:
        """Record a failed attempt; pause for a retry (Suspend) or raise StepError for good."""
        wake_at = self._settle_failure(step, error, retriable=retriable, retry_delay=retry_delay)
        if wake_at is not None:
            self.pause(wake_at, WaitKind.RETRY, step=step)
        with transaction.atomic():
            self.locked_run()
            step.save()
        # The handler sees the final failure and may catch it, as in Inngest.
        raise StepError.from_dict(error, step.step_id)

    def _settle_failure(
        self, step: StepRun, error: dict[str, Any], *, retriable: bool, retry_delay: float | None
    ) -> datetime | None:
        """Mark the step Retrying (returns when) or Failed (returns None); the caller saves it."""
        now = timezone.now()
        step.error = error
        if retriable and step.attempts <= self.function.retry_limit:
            delay = retry_delay if retry_delay is not None else backoff_seconds(step.attempts)
            step.status = StepStatus.RETRYING
            step.wake_at = now + timedelta(seconds=delay)
            logger.warning(
                "Step failed, will retry run_id=%s step=%s attempt=%s error=%s",
                self.run.run_id,
                step.step_id,
                step.attempts,
                error.get("message"),
            )
            return step.wake_at
        step.status = StepStatus.FAILED
        step.ended_at = now
        return None

    # -- send_event -----------------------------------------------------------------------------
    def send_events(self, uid: str, name: str, payloads: list[dict[str, Any]]) -> list[str]:
        from django_inngest.events import send_events

        self.consume_memo_gap()
        self.before_step()
        step = self.new_step(uid, name, StepKind.SEND, StepStatus.RUNNING)
        with transaction.atomic():
            # The events and the step's memo commit together: a replay never sends twice.
            self.locked_run()
            ids = send_events(payloads)
            step.status = StepStatus.COMPLETED
            step.attempts = 1
            step.output = ids
            step.ended_at = timezone.now()
            step.save()
        return ids


def _worker_died_in(memo: StepRun) -> bool:
    # A step recorded as Running whose run we now hold under a new lease: the previous worker
    # died inside it (only our own keeper records a long step as Running).
    return memo.status == StepStatus.RUNNING


def _retry_not_due(memo: StepRun, now: datetime) -> bool:
    return memo.status == StepStatus.RETRYING and memo.wake_at is not None and memo.wake_at > now


def _charge_worker_lost(memo: StepRun, now: datetime) -> dict[str, Any]:
    """Close the dead worker's attempt in the step's log; returns the error to settle with."""
    memo.attempt_log[-1].update({"ended_at": now.isoformat(), "error": dict(WORKER_LOST)})
    return dict(WORKER_LOST)


def _call_step(
    handler: Callable[..., Any], args: tuple[Any, ...], *, own_connection: bool = False
) -> tuple[bool, Any]:
    """Run a step's user code: (True, checked output) or (False, the exception)."""
    try:
        return True, check_output(handler(*args), int(settings.MAX_STEP_OUTPUT_BYTES))
    except Exception as exc:
        return False, exc
    finally:
        if own_connection:
            connection.close()  # a step thread's connection must not outlive it


def save_step_if_owner(step: StepRun, owner: str) -> bool:
    """Write a finished step in one statement, only while its run is Running under our lease.

    This is the commit of every ``step.run``: one round trip instead of BEGIN, a row lock, the
    write and COMMIT. The condition is checked by the same statement that writes, so a cancel
    (or a lease takeover) committed before it makes it write nothing and return False. A cancel
    still in flight is ordered after it; the next commit or the run's end then sees it.
    """
    if step.pk is None:
        return insert_step_if_owner(step, owner)
    # A retried step, or a long one the keeper recorded as Running: its row exists.
    owned = {"run__status": RunStatus.RUNNING, "run__lease_owner": owner}
    fields = [f for f in StepRun._meta.concrete_fields if not f.primary_key]
    values = {f.attname: getattr(step, f.attname) for f in fields if f.attname != "run_id"}
    return bool(StepRun.objects.filter(pk=step.pk, **owned).update(**values))
