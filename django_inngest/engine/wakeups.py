"""What wakes a waiting step: a matching event (``wait_for_event``) or a finished child run
(``step.invoke``). Either way the step's result is memoized and the run made ready now.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from django_inngest import database, executor
from django_inngest.models import FunctionRun, Listener, RunStatus, StepRun, StepStatus


def _resolve(run_id: str, step_id: str, **result: Any) -> bool:
    """Memoize the result of a step still Waiting, and wake its run (dispatched on commit).
    The caller holds the run's row lock."""
    now = timezone.now()
    resolved = StepRun.objects.filter(
        run_id=run_id, step_id=step_id, status=StepStatus.WAITING
    ).update(ended_at=now, **result)
    if resolved and FunctionRun.objects.wake(run_id, now):
        executor.dispatch_on_commit([run_id])
        return True
    return False


def resume_wait(listener: Listener, event: dict[str, Any], *, event_id: str | None = None) -> bool:
    """An event (its payload) matched a wait: it becomes the step's result, and its internal
    ID (``event_id``) is kept on the step so that the admin links it without guessing."""
    with database.atomic():
        run = FunctionRun.objects.locked(listener.run_id)
        if run is None or run.is_ended:
            return False
        # Deleting the listener is the consume: a second matching event finds nothing.
        if not Listener.objects.filter(pk=listener.pk).delete()[0]:
            return False
        _resolve(
            run.run_id,
            listener.step_id,
            status=StepStatus.COMPLETED,
            output=event,
            matched_event_id=event_id,
        )
    return True


def resolve_invoke(parent_run_id: str, step_id: str, child: FunctionRun) -> bool:
    """A child run ended: its output, or its failure or cancellation as the step's error."""
    parent = FunctionRun.objects.locked(parent_run_id)
    if parent is None or parent.is_ended:
        return False
    if child.status == RunStatus.COMPLETED:
        return _resolve(parent_run_id, step_id, status=StepStatus.COMPLETED, output=child.output)
    error = child.error or {}
    message = (
        "invoked function was cancelled"
        if child.status == RunStatus.CANCELLED
        else error.get("message", "invoked function failed")
    )
    failure = {**error, "name": error.get("name", "Error"), "message": message}
    return _resolve(parent_run_id, step_id, status=StepStatus.FAILED, error=failure)
