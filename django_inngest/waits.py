"""Pausing steps and what wakes them: ``step.sleep``, ``step.wait_for_event`` and
``step.invoke`` on the run's side; a matching event and a finished child run on the other.

A pause commits the step row and the run's ``ready_at`` (the wake-up time or timeout), releases
the lease and frees the worker; the executor's poller dispatches the run again when it is due.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_inngest.exceptions import StepError
from django_inngest.function import INVOKED_EVENT, Function
from django_inngest.invocation import Invocation
from django_inngest.models import (
    ACTIVE_STATUSES,
    Event,
    FunctionRun,
    Listener,
    RunStatus,
    StepKind,
    StepRun,
    StepStatus,
    WaitKind,
)


def sleep(inv: Invocation, uid: str, name: str, memo: StepRun | None, wake_at: datetime) -> None:
    inv.reach(memo)
    now = timezone.now()
    if memo is None:
        inv.before_step()
        step = inv.new_step(uid, name, StepKind.SLEEP, StepStatus.SLEEPING, wake_at=wake_at)
        if wake_at > now:
            inv.pause(wake_at, WaitKind.SLEEP, step=step)
        memo = step
    elif memo.wake_at and memo.wake_at > now:
        inv.pause(memo.wake_at, WaitKind.SLEEP)
    memo.status = StepStatus.COMPLETED
    memo.ended_at = now
    with transaction.atomic():
        inv.locked_run()
        memo.save()


def wait_for_event(
    inv: Invocation,
    uid: str,
    name: str,
    memo: StepRun | None,
    event_name: str,
    if_exp: str | None,
    timeout: timedelta,
) -> dict[str, Any] | None:
    from django_inngest import listeners

    inv.reach(memo)
    now = timezone.now()
    if memo is None:
        inv.before_step()
        step = inv.new_step(uid, name, StepKind.WAIT, StepStatus.WAITING, wake_at=now + timeout)

        def add_listener(run: FunctionRun) -> None:
            listeners.create_wait_listener(run, uid, event_name, if_exp, inv.trigger, now, timeout)

        inv.pause(step.wake_at, WaitKind.EVENT, step=step, extra=add_listener)
    assert memo is not None
    with transaction.atomic():
        inv.locked_run()
        memo.refresh_from_db()
        if memo.status == StepStatus.COMPLETED:  # the event arrived as we were woken
            inv.memos[uid] = memo
            return memo.output
        if memo.wake_at and memo.wake_at > now:
            pass  # woken early (a duplicate task); fall through to pause again
        else:
            Listener.objects.filter(run_id=inv.run.run_id, step_id=uid).delete()
            memo.status = StepStatus.COMPLETED
            memo.output = None
            memo.ended_at = now
            memo.save()
            return None
    inv.pause(memo.wake_at, WaitKind.EVENT)
    return None


def invoke(
    inv: Invocation,
    uid: str,
    name: str,
    memo: StepRun | None,
    target: Function,
    data: dict[str, Any],
    timeout: timedelta | None,
) -> Any:
    from django_inngest.events import store_events, validate_event
    from django_inngest.runs import create_run

    inv.reach(memo)
    now = timezone.now()
    if memo is None:
        inv.before_step()
        wake_at = now + timeout if timeout else None
        step = inv.new_step(uid, name, StepKind.INVOKE, StepStatus.WAITING, wake_at=wake_at)
        payload = {
            "name": INVOKED_EVENT,
            "data": {
                **data,
                "_inngest": {
                    "fn_id": target.id,
                    "source_fn_id": inv.function.id,
                    "source_run_id": inv.run.run_id,
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

        inv.pause(wake_at, WaitKind.INVOKE, extra=start_child)
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
            inv.locked_run()
            memo.save()
        raise StepError.from_dict(error, uid)
    inv.pause(memo.wake_at, WaitKind.INVOKE)


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
