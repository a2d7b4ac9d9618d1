"""Advancing a run: claim it, replay the handler over memoized steps, run new steps, commit each.

No django-q2 here: ``executor`` calls ``advance(run_id)`` from a worker task. The run row's lease
(``lease_owner``/``lease_expires_at``) guarantees that at most one worker advances a run; a
duplicate or late task finds the lease held, or the run not ready, and returns at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_inngest import expressions
from django_inngest.conf import settings
from django_inngest.context import Context, FunctionLogger
from django_inngest.definitions import Event as EventValue
from django_inngest.exceptions import NonRetriableError, RetryAfterError, StepError
from django_inngest.function import INVOKED_EVENT, Function
from django_inngest.lifecycle import error_dict, finish_run
from django_inngest.models import (
    ACTIVE_STATUSES,
    Cancellation,
    CancelSource,
    Event,
    FunctionRun,
    Listener,
    RunStatus,
    StepKind,
    StepRun,
    StepStatus,
    WaitKind,
)
from django_inngest.registry import registry
from django_inngest.steps import Abandon, Group, PlannedStep, Step, Suspend, check_output

logger = logging.getLogger(__name__)
_REPLAYED = (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SLEEPING, StepStatus.WAITING)
WORKER_LOST = {"name": "WorkerLostError", "message": "the worker running this step stopped"}


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: base·2^(attempt-1), capped, times 0.5 to 1.0."""
    base = float(settings.RETRY_BACKOFF_SECONDS)
    cap = float(settings.RETRY_BACKOFF_MAX_SECONDS)
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.0)


class LeaseKeeper:
    """Extends the run's lease from a background thread while a long step runs.

    It touches the database only after a third of the lease has passed, so short steps cost
    nothing. If the lease was taken over (we were presumed dead), ``lost`` is set and the step's
    result will be dropped at commit.
    """

    def __init__(self, run_id: str, owner: str) -> None:
        self.run_id, self.owner = run_id, owner
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._loop, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        lease = float(settings.LEASE_SECONDS)
        touched = False
        try:
            while not self._stop.wait(lease / 3):
                touched = True
                extended = FunctionRun.objects.filter(
                    pk=self.run_id, lease_owner=self.owner
                ).update(lease_expires_at=timezone.now() + timedelta(seconds=lease))
                if not extended:
                    self.lost = True
                    return
        finally:
            if touched:
                connection.close()


class Invocation:
    """One worker's turn at a run: the memo table, the budget and the commit protocol."""

    def __init__(self, run: FunctionRun, function: Function, owner: str, recovered: bool) -> None:
        self.run = run
        self.function = function
        self.owner = owner
        self.recovered = recovered
        self.deadline = time.monotonic() + float(settings.INVOCATION_BUDGET_SECONDS)
        self.memos: dict[str, StepRun] = {m.step_id: m for m in run.steps.all()}
        # Steps reached in an earlier invocation replay silently; a sleep or wait that is
        # being resolved now counts too, as Inngest memoizes it on wake.
        self._unconsumed = sum(1 for m in self.memos.values() if m.status in _REPLAYED)
        self._positions = len(self.memos)
        self._cancellations: list[Cancellation] | None = None
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

    def consume_memo(self) -> None:
        self._unconsumed = max(0, self._unconsumed - 1)

    def _new_step(
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
        run = (
            FunctionRun.objects.select_for_update().select_related("event").get(pk=self.run.run_id)
        )
        if run.status != RunStatus.RUNNING or run.lease_owner != self.owner:
            raise Abandon()
        self.run = run
        return run

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
            if dispatch:
                run.dispatched_at = timezone.now()
            run.save(
                update_fields=[
                    "ready_at",
                    "wait_kind",
                    "lease_owner",
                    "lease_expires_at",
                    "dispatched_at",
                ]
            )
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
        if memo is not None and memo.status == StepStatus.RUNNING:
            # Our lease replaced an expired one: the previous worker died inside this step.
            # That attempt counts, so a step that always kills its worker ends in Failed.
            memo.attempt_log[-1].update({"ended_at": now.isoformat(), "error": WORKER_LOST})
            self._step_failed(memo, dict(WORKER_LOST), retriable=True, retry_delay=None)
        if (
            memo is not None
            and memo.status == StepStatus.RETRYING
            and memo.wake_at
            and memo.wake_at > now
        ):
            self.pause(memo.wake_at, WaitKind.RETRY)
        self.before_step()
        step = self._start_attempt(
            memo or self._new_step(uid, name, StepKind.RUN, StepStatus.RUNNING)
        )
        with transaction.atomic():
            self.locked_run()
            step.save()
        with LeaseKeeper(self.run.run_id, self.owner):
            ok, outcome = _call_step(handler, args)
        if not ok:
            assert isinstance(outcome, Exception)
            error, retriable, delay = self._failure_of(step, outcome)
            self._step_failed(step, error, retriable=retriable, retry_delay=delay)
        self._complete(step, outcome)
        with transaction.atomic():
            self.locked_run()  # a cancel that landed mid-step wins: the late result is dropped
            step.save()
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
        with transaction.atomic():
            self.locked_run()
            for plan in planned:
                memo = plan.memo
                if memo is not None and memo.status == StepStatus.RUNNING:  # its worker died
                    memo.attempt_log[-1].update({"ended_at": now.isoformat(), "error": WORKER_LOST})
                    wake = self._settle_failure(
                        memo, dict(WORKER_LOST), retriable=True, retry_delay=None
                    )
                    memo.save()
                    wakes += [wake] if wake else []
                elif (
                    memo is not None
                    and memo.status == StepStatus.RETRYING
                    and memo.wake_at
                    and memo.wake_at > now
                ):
                    wakes.append(memo.wake_at)
                else:
                    step = memo or self._new_step(
                        plan.uid, plan.name, StepKind.RUN, StepStatus.RUNNING
                    )
                    attempts.append((self._start_attempt(step), plan.handler, plan.args))
                    step.save()
        if attempts:
            self.before_step()
            with (
                LeaseKeeper(self.run.run_id, self.owner),
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

    def consume_memo_gap(self) -> None:
        # Reaching a step without a usable memo means replay is over; log lines are real again.
        self._unconsumed = 0

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

    # -- sleep ----------------------------------------------------------------------------------
    def sleep(self, uid: str, name: str, memo: StepRun | None, wake_at: datetime) -> None:
        self.consume_memo() if memo is not None else self.consume_memo_gap()
        now = timezone.now()
        if memo is None:
            self.before_step()
            step = self._new_step(uid, name, StepKind.SLEEP, StepStatus.SLEEPING, wake_at=wake_at)
            if wake_at > now:
                self.pause(wake_at, WaitKind.SLEEP, step=step)
            memo = step
        elif memo.wake_at and memo.wake_at > now:
            self.pause(memo.wake_at, WaitKind.SLEEP)
        memo.status = StepStatus.COMPLETED
        memo.ended_at = now
        with transaction.atomic():
            self.locked_run()
            memo.save()

    # -- wait_for_event -------------------------------------------------------------------------
    def wait_for_event(
        self,
        uid: str,
        name: str,
        memo: StepRun | None,
        event_name: str,
        if_exp: str | None,
        timeout: timedelta,
    ) -> dict[str, Any] | None:
        from django_inngest import listeners

        self.consume_memo() if memo is not None else self.consume_memo_gap()
        now = timezone.now()
        if memo is None:
            self.before_step()
            step = self._new_step(
                uid, name, StepKind.WAIT, StepStatus.WAITING, wake_at=now + timeout
            )

            def add_listener(run: FunctionRun) -> None:
                listeners.create_wait_listener(
                    run, uid, event_name, if_exp, self.trigger, now, timeout
                )

            self.pause(step.wake_at, WaitKind.EVENT, step=step, extra=add_listener)
        assert memo is not None
        with transaction.atomic():
            self.locked_run()
            memo.refresh_from_db()
            if memo.status == StepStatus.COMPLETED:  # the event arrived as we were woken
                self.memos[uid] = memo
                return memo.output
            if memo.wake_at and memo.wake_at > now:
                pass  # woken early (a duplicate task); fall through to pause again
            else:
                Listener.objects.filter(run_id=self.run.run_id, step_id=uid).delete()
                memo.status = StepStatus.COMPLETED
                memo.output = None
                memo.ended_at = now
                memo.save()
                return None
        self.pause(memo.wake_at, WaitKind.EVENT)
        return None

    # -- send_event -----------------------------------------------------------------------------
    def send_events(self, uid: str, name: str, payloads: list[dict[str, Any]]) -> list[str]:
        from django_inngest.events import send_events

        self.consume_memo_gap()
        self.before_step()
        step = self._new_step(uid, name, StepKind.SEND, StepStatus.RUNNING)
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

    # -- invoke ---------------------------------------------------------------------------------
    def invoke(
        self,
        uid: str,
        name: str,
        memo: StepRun | None,
        target: Function,
        data: dict[str, Any],
        timeout: timedelta | None,
    ) -> Any:
        from django_inngest.events import store_events, validate_event
        from django_inngest.runs import create_run

        self.consume_memo() if memo is not None else self.consume_memo_gap()
        now = timezone.now()
        if memo is None:
            self.before_step()
            wake_at = now + timeout if timeout else None
            step = self._new_step(uid, name, StepKind.INVOKE, StepStatus.WAITING, wake_at=wake_at)
            payload = {
                "name": INVOKED_EVENT,
                "data": {
                    **data,
                    "_inngest": {
                        "fn_id": target.id,
                        "source_fn_id": self.function.id,
                        "source_run_id": self.run.run_id,
                    },
                },
            }
            fields = validate_event(
                payload, received_ms=int(now.timestamp() * 1000), allow_internal=True
            )

            def start_child(run: FunctionRun) -> None:
                step.save()
                (event,) = store_events([fields], now)
                create_run(target, event, now, parent=run, parent_step_id=uid)

            self.pause(wake_at, WaitKind.INVOKE, extra=start_child)
        assert memo is not None
        memo.refresh_from_db()
        if memo.status == StepStatus.COMPLETED:
            return memo.output
        if memo.status == StepStatus.FAILED:
            raise StepError.from_dict(memo.error or {}, uid)
        if memo.wake_at and memo.wake_at <= now:
            error = {
                "name": "InvokeTimeoutError",
                "message": f"invoked function {target.id} timed out",
            }
            memo.status, memo.error, memo.ended_at = StepStatus.FAILED, error, now
            with transaction.atomic():
                self.locked_run()
                memo.save()
            raise StepError.from_dict(error, uid)
        self.pause(memo.wake_at, WaitKind.INVOKE)


# -- entry points -----------------------------------------------------------------------------

MAX_PARALLEL_THREADS = 8


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


def claim(run_id: str, owner: str) -> tuple[FunctionRun, bool] | None:
    """Take the run's lease if it is ready and free; returns (run, recovered) or None.

    ``select_for_update(skip_locked=True)`` on PostgreSQL (a no-op on SQLite, where IMMEDIATE
    transactions serialise writers) plus the lease columns make the claim exclusive.
    """
    now = timezone.now()
    lease = timedelta(seconds=float(settings.LEASE_SECONDS))
    with transaction.atomic():
        run = (
            FunctionRun.objects.select_for_update(skip_locked=True)
            .filter(pk=run_id, status__in=ACTIVE_STATUSES, ready_at__lte=now)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
            .first()
        )
        if run is None:
            return None
        recovered = bool(run.lease_owner)
        FunctionRun.objects.filter(pk=run_id).update(
            lease_owner=owner,
            lease_expires_at=now + lease,
            status=RunStatus.RUNNING,
            wait_kind=WaitKind.NONE,
            started_at=Coalesce("started_at", now),
        )
    run = FunctionRun.objects.select_related("event").get(pk=run_id)
    return run, recovered


def advance(run_id: str) -> str:
    """Advance a run as far as it can go now. Returns what happened, for logs and tests."""
    owner = uuid.uuid4().hex
    claimed = claim(run_id, owner)
    if claimed is None:
        return "skipped"
    run, recovered = claimed
    function = registry.get(run.function_id)
    if function is None:
        _fail_locked(
            run_id,
            owner,
            {
                "name": "FunctionNotFoundError",
                "message": f"function {run.function_id!r} is not defined in this worker",
            },
        )
        return "failed"
    invocation = Invocation(run, function, owner, recovered)
    if recovered and not any(m.status == StepStatus.RUNNING for m in invocation.memos.values()):
        # The worker died outside any step: count it against the run so a crash loop ends.
        run.attempt += 1
        FunctionRun.objects.filter(pk=run_id).update(attempt=run.attempt)
        if run.attempt > function.retry_limit:
            _fail_locked(run_id, owner, dict(WORKER_LOST))
            return "failed"
    return _run_handler(invocation)


def _context(inv: Invocation) -> Context:
    event = EventValue(
        **{k: v for k, v in inv.trigger.items() if k in ("name", "data", "id", "ts", "user", "v")}
    )
    base = logging.getLogger(f"django_inngest.functions.{inv.function.id}")
    fn_logger = FunctionLogger(
        base, {"run_id": inv.run.run_id, "function_id": inv.function.id}, lambda: inv.replaying
    )
    step = Step(inv)
    return Context(
        attempt=inv.run.attempt,
        event=event,
        events=[event],
        group=Group(inv, step),
        logger=fn_logger,
        run_id=inv.run.run_id,
        step=step,
        function_id=inv.function.id,
        _is_cancelled=inv.is_cancelled,
    )


def _run_handler(inv: Invocation) -> str:
    try:
        output = inv.function.handler(_context(inv))
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    except Exception as exc:
        return _handler_failed(inv, exc)
    try:
        output = check_output(output, int(settings.MAX_STEP_OUTPUT_BYTES))
    except Exception as exc:
        return _handler_failed(inv, exc)
    try:
        with transaction.atomic():
            run = inv.locked_run()
            finish_run(run, RunStatus.COMPLETED, timezone.now(), output=output)
    except Abandon:
        return "abandoned"
    return "completed"


def _handler_failed(inv: Invocation, exc: Exception) -> str:
    """An error outside any step: retry the handler unless it is final (Inngest's last 'step')."""
    final = isinstance(exc, NonRetriableError | StepError)
    try:
        if not final and inv.run.attempt < inv.function.retry_limit:
            attempt = inv.run.attempt + 1
            delay = (
                exc.delay_seconds(timezone.now())
                if isinstance(exc, RetryAfterError)
                else backoff_seconds(attempt)
            )
            logger.warning(
                "Run failed, will retry run_id=%s attempt=%s error=%s", inv.run.run_id, attempt, exc
            )

            def bump(run: FunctionRun) -> None:
                FunctionRun.objects.filter(pk=run.pk).update(attempt=attempt)

            inv.pause(timezone.now() + timedelta(seconds=delay), WaitKind.RETRY, extra=bump)
        with transaction.atomic():
            run = inv.locked_run()
            finish_run(run, RunStatus.FAILED, timezone.now(), error=error_dict(exc))
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    return "failed"


def _fail_locked(run_id: str, owner: str, error: dict[str, Any]) -> None:
    with transaction.atomic():
        run = FunctionRun.objects.select_for_update().select_related("event").get(pk=run_id)
        if run.status == RunStatus.RUNNING and run.lease_owner == owner:
            finish_run(run, RunStatus.FAILED, timezone.now(), error=error)


def resume_wait(listener: Listener, event: Event) -> bool:
    """An event matched a wait: store it as the step's result and make the run ready."""
    from django_inngest.runs import dispatch_on_commit

    with transaction.atomic():
        run = FunctionRun.objects.select_for_update().filter(pk=listener.run_id).first()
        if run is None or run.status not in ACTIVE_STATUSES:
            return False
        # Deleting the listener is the consume: a second matching event finds nothing.
        if not Listener.objects.filter(pk=listener.pk).delete()[0]:
            return False
        now = timezone.now()
        StepRun.objects.filter(
            run_id=run.run_id, step_id=listener.step_id, status=StepStatus.WAITING
        ).update(status=StepStatus.COMPLETED, output=event.as_payload(), ended_at=now)
        run.ready_at = now
        run.dispatched_at = now
        run.save(update_fields=["ready_at", "dispatched_at"])
        dispatch_on_commit([run.run_id])
    return True


def resolve_invoke(
    parent_run_id: str, step_id: str, status: str, output: Any, error: dict[str, Any] | None
) -> None:
    """A child run ended: memoize its result in the parent's invoke step and wake the parent."""
    from django_inngest.runs import dispatch_on_commit

    now = timezone.now()
    parent = FunctionRun.objects.select_for_update().filter(pk=parent_run_id).first()
    if parent is None or parent.status not in ACTIVE_STATUSES:
        return
    if status == RunStatus.COMPLETED:
        fields: dict[str, Any] = {"status": StepStatus.COMPLETED, "output": output}
    else:
        message = (
            "invoked function was cancelled"
            if status == RunStatus.CANCELLED
            else ((error or {}).get("message", "invoked function failed"))
        )
        fields = {
            "status": StepStatus.FAILED,
            "error": {
                **(error or {}),
                "name": (error or {}).get("name", "Error"),
                "message": message,
            },
        }
    updated = StepRun.objects.filter(
        run_id=parent_run_id, step_id=step_id, status=StepStatus.WAITING
    ).update(ended_at=now, **fields)
    if updated:
        FunctionRun.objects.filter(pk=parent_run_id).update(ready_at=now, dispatched_at=now)
        dispatch_on_commit([parent_run_id])


def poll_due_runs(limit: int = 200) -> list[str]:
    """Runs whose time has come and that no live worker holds, and that were not dispatched
    since (a sleep ended, a timeout passed, a retry is due, a task was lost, a worker died).
    Marks them dispatched and returns their IDs; ``skip_locked`` lets several pollers share.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=float(settings.REDISPATCH_AFTER_SECONDS))
    lease_free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    not_recently_dispatched = (
        Q(dispatched_at__isnull=True)
        | Q(dispatched_at__lt=stale)
        | Q(dispatched_at__lt=F("ready_at"))
        | Q(lease_expires_at__lt=now)
    )
    with transaction.atomic():
        ids = list(
            FunctionRun.objects.select_for_update(skip_locked=True)
            .filter(status__in=ACTIVE_STATUSES, ready_at__lte=now)
            .filter(lease_free)
            .filter(not_recently_dispatched)
            .order_by("ready_at")
            .values_list("run_id", flat=True)[:limit]
        )
        if ids:
            FunctionRun.objects.filter(pk__in=ids).update(dispatched_at=now)
    return ids
